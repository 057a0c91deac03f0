package open_test

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"unsafe"

	"github.com/ebpfrec/ebpfrec/bpf/tracers"
	"github.com/ebpfrec/ebpfrec/bpf/tracers/internal/tracertest"
	"github.com/ebpfrec/ebpfrec/bpf/tracers/open"
)

// op is one open of the workload: "SYSCALL:FLAGS:MODE:PATH".
type op struct {
	syscall string
	flags   uint64
	mode    uint32
	path    string
}

func (o op) String() string { return fmt.Sprintf("%s:%d:%d:%s", o.syscall, o.flags, o.mode, o.path) }

func parseOp(s string) op {
	f := strings.SplitN(s, ":", 4)
	flags, _ := strconv.ParseUint(f[1], 10, 64)
	mode, _ := strconv.ParseUint(f[2], 10, 32)
	return op{f[0], flags, uint32(mode), f[3]}
}

const sysOpenat2 = 437

func doOp(o op) (int, syscall.Errno) {
	p, err := syscall.BytePtrFromString(o.path)
	if err != nil {
		return -1, syscall.EINVAL
	}
	var r uintptr
	var errno syscall.Errno
	switch o.syscall {
	case "openat":
		r, _, errno = syscall.Syscall6(syscall.SYS_OPENAT, uintptr(0xffffff9c) /* AT_FDCWD */, uintptr(unsafe.Pointer(p)), uintptr(o.flags), uintptr(o.mode), 0, 0)
	case "open":
		r, _, errno = syscall.Syscall(sysOpen, uintptr(unsafe.Pointer(p)), uintptr(o.flags), uintptr(o.mode))
	case "creat":
		r, _, errno = syscall.Syscall(sysCreat, uintptr(unsafe.Pointer(p)), uintptr(o.mode), 0)
	case "openat2":
		how := struct{ flags, mode, resolve uint64 }{o.flags, uint64(o.mode), 0}
		r, _, errno = syscall.Syscall6(sysOpenat2, uintptr(0xffffff9c), uintptr(unsafe.Pointer(p)), uintptr(unsafe.Pointer(&how)), unsafe.Sizeof(how), 0, 0)
	}
	return int(r), errno
}

func TestMain(m *testing.M) {
	tracertest.Main(m, map[string]tracertest.Workload{
		// opens file args[0], whose second page begins with its own path,
		// maps it without touching it, and opens the path from the map
		"unmapped-path": func(args []string) int {
			f, err := os.Open(args[0])
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
			page := os.Getpagesize()
			m, err := syscall.Mmap(int(f.Fd()), 0, 2*page, syscall.PROT_READ, syscall.MAP_PRIVATE)
			f.Close()
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
			// &m[page] takes the address only: the page stays unmapped
			// until the kernel reads the path in the syscall.
			_, _, errno := syscall.Syscall6(syscall.SYS_OPENAT, uintptr(0xffffff9c), uintptr(unsafe.Pointer(&m[page])), syscall.O_RDONLY, 0, 0, 0)
			if errno != 0 {
				fmt.Fprintln(os.Stderr, "openat from the map:", errno)
				return 1
			}
			return 0
		},
		// performs each op, in order, keeping the files open
		"opens": func(args []string) int {
			for _, a := range args {
				if _, errno := doOp(parseOp(a)); errno != 0 && errno != syscall.ENOENT {
					fmt.Fprintln(os.Stderr, a, errno)
					return 1
				}
			}
			return 0
		},
	})
}

// TestOpenKnownWorkload: a child opens known paths through each syscall of
// the family, one of them missing (ENOENT); exactly those opens, with their
// flags, modes and results, are reported.
func TestOpenKnownWorkload(t *testing.T) {
	f := tracertest.NewFilter(t)
	tr := tracertest.Load(t, open.Name, tracers.Options{Filter: f, WakeupEvery: 3})
	rd := tracertest.NewReader(t, tr, open.StreamOpen)
	dir := t.TempDir()
	for _, n := range []string{"a", "b"} {
		if err := os.WriteFile(filepath.Join(dir, n), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ops := []op{
		{"openat", syscall.O_RDONLY | syscall.O_CLOEXEC, 0, filepath.Join(dir, "a")},
		{"openat", syscall.O_WRONLY | syscall.O_CREAT | syscall.O_TRUNC, 0o640, filepath.Join(dir, "new")},
		{"openat", syscall.O_RDONLY, 0, filepath.Join(dir, "missing")},
		{"openat2", syscall.O_RDWR | syscall.O_CLOEXEC, 0, filepath.Join(dir, "b")},
		{"open", syscall.O_RDONLY | syscall.O_DIRECTORY, 0, dir},
		{"creat", 0, 0o600, filepath.Join(dir, "created")},
		{"open", syscall.O_RDONLY, 0, filepath.Join(dir, "missing-too")},
	}
	if !haveLegacyOpen {
		ops = slices.DeleteFunc(ops, func(o op) bool { return o.syscall == "open" || o.syscall == "creat" })
	}
	var args []string
	for _, o := range ops {
		args = append(args, o.String())
	}
	child := tracertest.Start(t, "opens", args...)
	if err := f.AllowPID(child.PID); err != nil {
		t.Fatal(err)
	}
	if code := child.Run(t); code != 0 {
		t.Fatalf("workload exited %d", code)
	}
	evs := rd.Drain(t)
	for _, e := range evs {
		t.Log(string(tracers.AppendLine(nil, e)))
	}
	if len(evs) != len(ops) {
		t.Fatalf("got %d open events, want %d", len(evs), len(ops))
	}
	for i, ev := range evs {
		e := ev.(*open.Event)
		o := ops[i]
		wantFlags := o.flags
		if o.syscall == "creat" {
			wantFlags = syscall.O_CREAT | syscall.O_WRONLY | syscall.O_TRUNC
		}
		if e.Syscall != o.syscall || e.Path != o.path || e.Flags != wantFlags || e.Mode != o.mode ||
			e.Dfd != open.AtFDCWD || e.Pid != child.PID || e.Tid == 0 || e.Command != "open.test" {
			t.Errorf("event %d: %+v, want %v", i, e, o)
		}
		missing := strings.Contains(o.path, "missing")
		if missing && (e.Ret != -int32(syscall.ENOENT) || e.Errno() != syscall.ENOENT) {
			t.Errorf("event %d: ret %d, want -ENOENT", i, e.Ret)
		}
		if !missing && e.Ret < 0 {
			t.Errorf("event %d: ret %d, want a descriptor", i, e.Ret)
		}
		if e.KtimeNs == 0 || e.LatencyNs == 0 {
			t.Errorf("event %d: times %d %d", i, e.KtimeNs, e.LatencyNs)
		}
	}
	tracertest.CheckAccounting(t, tr, rd, len(evs))
}

// TestOpenPathNotYetMapped: the path of an open lies in a page that the
// process never touched (a file mapped and not read, as the strings of a
// program just exec'd are), so the tracer cannot read it at syscall entry
// (BPF does not fault pages in): the event still carries the path, read
// again at exit, after the syscall faulted it in (issue 14 item 4).
func TestOpenPathNotYetMapped(t *testing.T) {
	f := tracertest.NewFilter(t)
	tr := tracertest.Load(t, open.Name, tracers.Options{Filter: f, WakeupEvery: 1})
	rd := tracertest.NewReader(t, tr, open.StreamOpen)
	path := filepath.Join(t.TempDir(), "path-in-its-own-second-page")
	content := make([]byte, 2*os.Getpagesize())
	copy(content[os.Getpagesize():], path+"\x00")
	if err := os.WriteFile(path, content, 0o644); err != nil {
		t.Fatal(err)
	}
	child := tracertest.Start(t, "unmapped-path", path)
	if err := f.AllowPID(child.PID); err != nil {
		t.Fatal(err)
	}
	if code := child.Run(t); code != 0 {
		t.Fatalf("workload exited %d", code)
	}
	evs := rd.Drain(t)
	var paths []string
	for _, e := range evs {
		t.Log(string(tracers.AppendLine(nil, e)))
		paths = append(paths, e.(*open.Event).Path)
	}
	// The first open is os.Open's (a Go string, mapped), the second the
	// one from the untouched page.
	if len(paths) != 2 || paths[0] != path || paths[1] != path {
		t.Fatalf("open paths %q, want %q twice", paths, path)
	}
	if e := evs[1].(*open.Event); e.Ret < 0 || e.Pid != child.PID {
		t.Errorf("open from the map: %+v", e)
	}
}

func TestDecode(t *testing.T) {
	raw := make([]byte, open.EventSize)
	put := func(off int, v uint64, size int) {
		for i := 0; i < size; i++ {
			raw[off+i] = byte(v >> (8 * i))
		}
	}
	put(0, 100, 8)
	put(8, 5, 8)
	put(16, syscall.O_RDONLY|syscall.O_CLOEXEC, 8)
	put(24, 9, 4)
	put(28, 10, 4)
	put(32, 0xfffffffe, 4) // -ENOENT
	put(36, uint64(uint32(0xffffff9c)), 4)
	put(44, open.NROpenat, 4)
	copy(raw[48:], "cat\x00")
	copy(raw[64:], "/etc/nope\x00")
	put(320, 3, 4)
	var e open.Event
	if err := open.Decode(raw, &e); err != nil {
		t.Fatal(err)
	}
	want := open.Event{KtimeNs: 100, LatencyNs: 5, Pid: 9, Tid: 10, Command: "cat", Syscall: "openat", Path: "/etc/nope",
		Dfd: open.AtFDCWD, Flags: syscall.O_CLOEXEC, Ret: -2, CPU: 3}
	if e != want {
		t.Fatalf("got %+v want %+v", e, want)
	}
	if got := string(e.AppendText(nil)); got != `syscall=openat path=/etc/nope flags=O_RDONLY|O_CLOEXEC ret=-2 (ENOENT) latency=5ns` {
		t.Fatalf("text %q", got)
	}
	// An event of the earlier layout (before cpu): the same, its CPU unknown.
	if err := open.Decode(raw[:320], &e); err != nil {
		t.Fatalf("earlier layout: %v", err)
	}
	if want.CPU = tracers.UnknownCPU; e != want {
		t.Fatalf("earlier layout: got %+v want %+v", e, want)
	}
	for n := range open.EventSize {
		if slices.Contains(open.LayoutSizes, n) {
			continue
		}
		if err := open.Decode(raw[:n], &e); err == nil {
			t.Fatalf("decoded %d bytes", n)
		}
	}
	for i := 64; i < open.EventSize; i++ {
		raw[i] = 'x'
	}
	if err := open.Decode(raw, &e); err == nil {
		t.Fatal("unterminated path decoded")
	}
}

func FuzzDecodeOpen(f *testing.F) {
	f.Add(make([]byte, open.EventSize))
	f.Add([]byte{})
	for _, n := range open.LayoutSizes[1:] { // earlier layouts
		f.Add(make([]byte, n))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		var e open.Event
		if err := open.Decode(raw, &e); err == nil {
			_ = e.AppendText(nil)
		}
	})
}
