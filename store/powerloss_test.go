package store

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The power-cut test runs a writer on ext4 over device-mapper's dm-flakey
// target over a RAM disk (brd), and cuts the power by switching dm-flakey
// to drop every write: what the device holds at that moment is what a
// machine that lost power would find on its disk. It is an approximation:
// every write the device completed before the cut persists, as on a disk
// without a volatile write cache (a RAM disk has none to lose), so it does
// not test whether the cache flushes that fdatasync sends are enough for a
// disk with one.

const (
	// envPowerChild holds the JSON powerChildConfig of a writer child.
	envPowerChild = "EBPFREC_STORE_POWERCUT_CHILD"
	powerDMName   = "ebpfrec-powercut"
	// powerRAMKiB is the RAM disk's size: ext4 with its 4 MiB journal and
	// a recording that retention keeps to three 64 KiB segments.
	powerRAMKiB = 32 << 10
)

// powerChildConfig tells a writer child of TestPowerCut what to do.
type powerChildConfig struct {
	Dir           string
	Sync          SyncPolicy
	FlushInterval time.Duration
	// Stop is where the child reports "at <Stop> <committed>" and waits
	// for a line on its stdin before it goes on: "append" after Append of
	// batch StopBatch, or a stage of segment creation (createStageHook)
	// of segment StopSegment. "": never.
	Stop        string
	StopSegment int
	StopBatch   int
}

// powerCutChild is the writer of TestPowerCut, run in a child process
// (from TestMain): it appends crashBatch(0), crashBatch(1), ... forever
// with small segments (so that it rotates every ~20 batches) and retention
// (from segment 4 on), flushes every 10 batches, and prints "c <committed>"
// after each Append and Flush.
func powerCutChild(cfgJSON string) {
	var cfg powerChildConfig
	if err := json.Unmarshal([]byte(cfgJSON), &cfg); err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	var mu sync.Mutex
	out := bufio.NewWriter(os.Stdout)
	say := func(format string, a ...any) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(out, format+"\n", a...)
		out.Flush()
	}
	var w atomic.Pointer[Writer]
	stdin := bufio.NewReader(os.Stdin)
	stop := func(label string) {
		// Held in createStageHook, the committer cannot commit more:
		// this is all that is committed.
		say("at %s %d", label, w.Load().Committed())
		if _, err := stdin.ReadString('\n'); err != nil {
			for { // the parent is gone: wait to be killed
				time.Sleep(time.Hour)
			}
		}
	}
	if cfg.Stop != "" && cfg.Stop != "append" {
		createStageHook = func(stage, path string) {
			if stage == cfg.Stop && segmentIndexOf(path) == cfg.StopSegment {
				stop(fmt.Sprintf("%s-%d", stage, cfg.StopSegment))
			}
		}
	}
	wr, err := Create(cfg.Dir, testMeta(), WriterOptions{
		Sync:            cfg.Sync,
		FlushInterval:   cfg.FlushInterval,
		FlushBytes:      16 << 10,
		MaxSegmentBytes: 64 << 10,
		KeepSegments:    3,
	})
	if err != nil {
		say("error %v", err)
		os.Exit(1)
	}
	w.Store(wr)
	for i := 0; ; i++ {
		if err := wr.Append(crashBatch(i)); err != nil {
			say("error %v", err)
			os.Exit(1)
		}
		say("c %d", wr.Committed())
		if cfg.Stop == "append" && i+1 == cfg.StopBatch {
			stop("append")
		}
		if (i+1)%10 == 0 {
			if err := wr.Flush(); err != nil {
				say("error %v", err)
				os.Exit(1)
			}
			say("c %d", wr.Committed())
		}
	}
}

// segmentIndexOf returns the index of the segment file at path (named
// 000005.seg, or 000005.seg.creating while it is made), or 0.
func segmentIndexOf(path string) int {
	name := strings.TrimSuffix(filepath.Base(path), creatingSuffix)
	n, err := strconv.Atoi(strings.TrimSuffix(name, segSuffix))
	if err != nil {
		return 0
	}
	return n
}

// cutPoint is one power cut of TestPowerCut.
type cutPoint struct {
	name string
	cfg  powerChildConfig
	// reports: without a Stop, cut once the child has printed this many
	// "c" lines (one per Append and per Flush).
	reports int
	// inIO: suspend the device at the point, let the writer go on until
	// one of its threads waits for the device (in a write or sync), and
	// cut there; otherwise cut at the point itself.
	inIO bool
}

// powerCutPoints lists the cut points, under the default sync policy and
// under SyncAlways: at every stage of creating a segment, at a plain
// rotation (segment 2) and at one where retention deletes the oldest
// segment (segment 5: its creation carries the deletion record, and "done"
// is followed by the removal); between appends with records pending; and
// at moments of a running writer. Each is taken at the point itself (the
// writer stopped there, its earlier writes done) and in the first write or
// sync the writer blocks in after it.
func powerCutPoints() []cutPoint {
	var pts []cutPoint
	for _, sp := range []SyncPolicy{SyncInterval, SyncAlways} {
		base := powerChildConfig{Sync: sp, FlushInterval: 20 * time.Millisecond}
		for _, inIO := range []bool{false, true} {
			for _, seg := range []int{2, 5} {
				for _, stage := range []string{"opened", "metadata", "synced", "renamed", "done"} {
					c := base
					c.Stop, c.StopSegment = stage, seg
					pts = append(pts, cutPoint{name: fmt.Sprintf("%s/create-%d-%s%s", sp, seg, stage, ioSuffix(inIO)), cfg: c, inIO: inIO})
				}
			}
			// An hour's FlushInterval: at the cut, the batches appended
			// since the last commit (the flush at 20, or 16 KiB pending)
			// wait in memory.
			c := base
			c.FlushInterval = time.Hour
			c.Stop, c.StopBatch = "append", 25
			pts = append(pts, cutPoint{name: fmt.Sprintf("%s/append-25%s", sp, ioSuffix(inIO)), cfg: c, inIO: inIO})
			for _, n := range []int{15, 40, 70, 100, 130} {
				pts = append(pts, cutPoint{name: fmt.Sprintf("%s/running-%d%s", sp, n, ioSuffix(inIO)), cfg: base, reports: n, inIO: inIO})
			}
		}
	}
	return pts
}

func ioSuffix(inIO bool) string {
	if inIO {
		return "-in-io"
	}
	return ""
}

// TestPowerCut cuts the power under a writer on ext4 at the points of
// powerCutPoints (and kills it there): after each cut the file system
// mounts (replaying its journal), and the recording opens, verifies
// without a problem and holds every batch the writer reported committed
// before the cut, exactly as written, in sequence from the first batch
// that retention did not record deleting. Where the writer was stopped in
// segment creation, where nothing more can commit, it holds no batch more.
//
// The writer opens bbolt with NoGrowSync, which bbolt documents as unsafe
// on ext3/ext4: these cuts are the evidence for keeping it. They pass with
// it, as without it, on ext4 (mke2fs's defaults, data=ordered) of 5.10, 6.1
// and 6.12: bbolt writes the meta page only after the fdatasync that makes
// the pages, and the size they grew the file to, durable.
//
// It needs device-mapper, dm-flakey, a RAM disk, ext4, dmsetup and mke2fs,
// and formats a block device: it runs in the VMs of the kernel matrix
// (scripts/kernels/run.sh packs the modules and tools) and skips elsewhere.
func TestPowerCut(t *testing.T) {
	rig := newPowerRig(t)
	where := map[string]int{}
	pts := powerCutPoints()
	for _, p := range pts {
		t.Run(p.name, func(t *testing.T) {
			if w := rig.cut(t, p); w != "" {
				where[w]++
			}
		})
	}
	var ws []string
	for w, n := range where {
		ws = append(ws, fmt.Sprintf("%s %d", w, n))
	}
	sort.Strings(ws)
	t.Logf("%d cut points; in-io cuts found the writer blocked in: %s", len(pts), strings.Join(ws, ", "))
}

// powerRig is the device stack of TestPowerCut: dm device powerDMName over
// the RAM disk ram.
type powerRig struct {
	ram     string
	dev     string // /dev/mapper/powerDMName
	sectors int64
	dmsetup string
	mke2fs  string
}

// newPowerRig loads the modules that run.sh packed for this kernel, and
// makes the dm device; outside the VMs it skips.
func newPowerRig(t *testing.T) *powerRig {
	if os.Getenv("EBPFREC_IN_VM") == "" {
		why := "this kernel has device-mapper, but the test formats block devices only in the VMs"
		if _, err := os.Stat("/dev/mapper/control"); err != nil {
			why = "this kernel has no device-mapper (no /dev/mapper/control)"
		}
		t.Skipf("skipping: the power-cut test runs ext4 on dm-flakey over a RAM disk, which it sets up only in the kernel matrix's VMs (make test-kernels sets EBPFREC_IN_VM): %s", why)
	}
	var uts unix.Utsname
	if err := unix.Uname(&uts); err != nil {
		t.Fatal(err)
	}
	release := string(bytes.TrimRight(uts.Release[:], "\x00"))
	mods := filepath.Join("/lib/modules", release, "powerloss")
	if b, err := os.ReadFile(filepath.Join(mods, "error")); err == nil {
		t.Fatalf("scripts/kernels/run.sh could not pack the modules for %s:%s", release, b)
	}
	order, err := os.ReadFile(filepath.Join(mods, "order"))
	if err != nil {
		t.Fatalf("no kernel modules for %s in the VM (scripts/kernels/run.sh packs them): %v", release, err)
	}
	for _, m := range strings.Fields(string(order)) {
		params := ""
		if m == "brd.ko" {
			params = fmt.Sprintf("rd_nr=1 rd_size=%d", powerRAMKiB)
		}
		f, err := os.Open(filepath.Join(mods, m))
		if err != nil {
			t.Fatal(err)
		}
		err = unix.FinitModule(int(f.Fd()), params, 0)
		f.Close()
		if err != nil && err != unix.EEXIST {
			t.Fatalf("loading %s: %v", m, err)
		}
	}
	r := &powerRig{ram: "/dev/ram0", dev: "/dev/mapper/" + powerDMName}
	b, err := os.ReadFile("/sys/block/ram0/size")
	if err != nil {
		t.Fatalf("brd loaded but no RAM disk: %v", err)
	}
	if r.sectors, err = strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64); err != nil || r.sectors < 2*powerRAMKiB {
		t.Fatalf("RAM disk of %s sectors, want %d", b, 2*powerRAMKiB)
	}
	for _, tool := range []struct {
		path      *string
		name, pkg string
	}{{&r.dmsetup, "dmsetup", "dmsetup"}, {&r.mke2fs, "mke2fs", "e2fsprogs"}} {
		if *tool.path, err = exec.LookPath(tool.name); err != nil {
			t.Fatalf("%s is not in the VM (run.sh copies it from the host: apt-get install %s): %v", tool.name, tool.pkg, err)
		}
	}
	r.dm(t, "create", powerDMName, "--table", r.table(false))
	t.Cleanup(func() { r.dmCmd("remove", powerDMName).Run() })
	r.dm(t, "mknodes", powerDMName)
	if _, err := os.Stat(r.dev); err != nil {
		t.Fatalf("dmsetup made no device node: %v", err)
	}
	return r
}

// table returns the dm table: a pass-through (linear) one, or one that
// drops every write (dm-flakey with no up time: always down).
func (r *powerRig) table(drop bool) string {
	if drop {
		return fmt.Sprintf("0 %d flakey %s 0 0 1 1 drop_writes", r.sectors, r.ram)
	}
	return fmt.Sprintf("0 %d linear %s 0", r.sectors, r.ram)
}

// dmCmd returns dmsetup with args, made to work without udev (there is
// none in the VM: waiting for it would hang).
func (r *powerRig) dmCmd(args ...string) *exec.Cmd {
	cmd := exec.Command(r.dmsetup, append([]string{"--noudevsync"}, args...)...)
	cmd.Env = append(os.Environ(), "DM_DISABLE_UDEV=1")
	return cmd
}

// dm runs dmsetup with args.
func (r *powerRig) dm(t *testing.T, args ...string) {
	t.Helper()
	if out, err := r.dmCmd(args...).CombinedOutput(); err != nil {
		t.Fatalf("dmsetup %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// suspend holds the device's new I/O, after what is in flight completes.
// --nolockfs: the default freezes the file system first, which writes
// everything out.
func (r *powerRig) suspend(t *testing.T) { r.dm(t, "suspend", "--nolockfs", powerDMName) }

// swap loads a table into the suspended device and resumes it.
func (r *powerRig) swap(t *testing.T, drop bool) {
	r.dm(t, "load", powerDMName, "--table", r.table(drop))
	r.dm(t, "resume", powerDMName)
}

// mount mounts the device's ext4 on a new directory.
func (r *powerRig) mount(t *testing.T) string {
	t.Helper()
	mnt := t.TempDir()
	if err := unix.Mount(r.dev, mnt, "ext4", 0, ""); err != nil {
		t.Fatalf("mount ext4: %v\n%s", err, kernelLogTail())
	}
	return mnt
}

func unmount(t *testing.T, mnt string) {
	t.Helper()
	if err := unix.Unmount(mnt, 0); err != nil {
		t.Fatalf("unmount: %v", err)
	}
}

// unmountRead unmounts mnt after reading a recording there: a Reader's
// Close leaves the segment it was loading ahead to a goroutine, which may
// still open it and then closes it, so the file system can be busy for a
// moment.
func unmountRead(t *testing.T, mnt string) {
	t.Helper()
	var err error
	for range 10000 { // a bound against a hang only
		if err = unix.Unmount(mnt, 0); err != unix.EBUSY {
			break
		}
		time.Sleep(time.Millisecond)
	}
	if err != nil {
		t.Fatalf("unmount: %v", err)
	}
}

// kernelLogTail returns the last lines of the kernel's log.
func kernelLogTail() string {
	buf := make([]byte, 1<<16)
	n, err := unix.Klogctl(unix.SYSLOG_ACTION_READ_ALL, buf)
	if err != nil || n <= 0 {
		return ""
	}
	lines := strings.Split(strings.TrimSpace(string(buf[:n])), "\n")
	return "kernel log: " + strings.Join(lines[max(0, len(lines)-8):], "\n")
}

// cut runs one cut point: a fresh ext4, a writer child, the cut, and the
// checks on the file system as the power cut left it. It returns the
// syscall an in-io cut found the writer blocked in.
func (r *powerRig) cut(t *testing.T, p cutPoint) (where string) {
	out, err := exec.Command(r.mke2fs, "-t", "ext4", "-F", "-q", "-b", "4096",
		"-E", "nodiscard,lazy_itable_init=0,lazy_journal_init=0", r.dev).CombinedOutput()
	if err != nil {
		t.Fatalf("mke2fs: %v\n%s", err, out)
	}
	mnt := r.mount(t)
	mounted := true
	defer func() {
		if mounted {
			unix.Unmount(mnt, unix.MNT_DETACH)
		}
	}()
	cfg := p.cfg
	cfg.Dir = filepath.Join(mnt, "rec")
	cj, _ := json.Marshal(&cfg)
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), envPowerChild+"="+string(cj))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	// A pipe of our own: draining it needs its descriptor (FIONREAD).
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	cmd.Stdout = pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	pid := cmd.Process.Pid
	killed := false
	kill := func() {
		if !killed {
			cmd.Process.Signal(syscall.SIGKILL)
			cmd.Wait()
			killed = true
		}
	}
	defer kill()

	// committed: the most the child reported committed before the cut.
	// exact: the child is held in segment creation, where nothing more
	// can commit, and committed is what it had committed then.
	var committed uint64
	exact := false
	reports := 0
	br := bufio.NewReader(pr)
	// next reads a line of the child and says whether it reached the
	// point.
	next := func() bool {
		line, err := br.ReadString('\n')
		if err != nil {
			kill()
			t.Fatalf("the writer exited before the cut (%v): %s", err, stderr.String())
		}
		f := strings.Fields(line)
		switch {
		case len(f) == 2 && f[0] == "c":
			n, _ := strconv.ParseUint(f[1], 10, 64)
			committed = max(committed, n)
			reports++
			return p.cfg.Stop == "" && reports >= p.reports
		case len(f) == 3 && f[0] == "at":
			n, _ := strconv.ParseUint(f[2], 10, 64)
			if n < committed {
				t.Fatalf("child: %s after reporting %d committed", strings.TrimSpace(line), committed)
			}
			committed = n
			exact = p.cfg.Stop != "append"
			return true
		}
		kill()
		t.Fatalf("child: %s%s", line, stderr.String())
		return false
	}
	for !next() {
	}
	// Stop the child and read everything it printed: all of it was
	// committed before the cut starts.
	cmd.Process.Signal(syscall.SIGSTOP)
	waitThreads(t, pid, "stopped", func(state byte) bool { return state == 'T' || state == 't' }, true)
	for br.Buffered() > 0 || pipeBytes(t, pr) > 0 {
		next()
	}
	// The cut: from the suspension on, no write reaches the RAM disk.
	r.suspend(t)
	if p.inIO {
		cmd.Process.Signal(syscall.SIGCONT)
		if p.cfg.Stop != "" {
			io.WriteString(stdin, "go\n")
		}
		where = blockedIn(t, pid)
	}
	r.swap(t, true)
	kill()
	stdin.Close()
	// Unmounting writes out the page cache and the journal: dropped.
	unmount(t, mnt)
	mounted = false
	r.suspend(t)
	r.swap(t, false)
	// The RAM disk now holds what the power cut left; no page of the
	// cache may stand in for it.
	os.WriteFile("/proc/sys/vm/drop_caches", []byte("3"), 0)
	mnt = r.mount(t)
	mounted = true
	first, last, notes := checkAfterCut(t, filepath.Join(mnt, "rec"), committed, exact)
	unmountRead(t, mnt)
	mounted = false
	t.Logf("cut%s: %d reported committed; recording holds batches %d-%d; verify notes: %q",
		map[bool]string{true: " in " + where, false: ""}[where != ""], committed, first, last, notes)
	return where
}

// pipeBytes returns how many bytes wait in the pipe read by f.
func pipeBytes(t *testing.T, f *os.File) int {
	n, err := unix.IoctlGetInt(int(f.Fd()), unix.TIOCINQ) // FIONREAD
	if err != nil {
		t.Fatalf("FIONREAD: %v", err)
	}
	return n
}

// waitThreads waits until the threads of process pid are in a state that
// ok accepts: all of them (all), or one. It returns that thread's id.
func waitThreads(t *testing.T, pid int, what string, ok func(state byte) bool, all bool) string {
	t.Helper()
	task := fmt.Sprintf("/proc/%d/task", pid)
	for range 200000 { // a bound against a hang only
		ents, err := os.ReadDir(task)
		if err != nil {
			t.Fatalf("the writer is gone: %v", err)
		}
		n := 0
		for _, e := range ents {
			st, err := os.ReadFile(filepath.Join(task, e.Name(), "stat"))
			if err != nil {
				continue
			}
			// The state follows the command name's ")".
			f := bytes.Fields(st[bytes.LastIndexByte(st, ')')+1:])
			if len(f) == 0 || !ok(f[0][0]) {
				continue
			}
			if !all {
				return e.Name()
			}
			n++
		}
		if all && n == len(ents) {
			return ""
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatalf("the writer's threads never %s", what)
	return ""
}

// blockedIn waits until a thread of process pid sleeps uninterruptibly,
// which with the device suspended means it waits for the device (in a
// write or sync: the writer blocks in one within a few batches), and
// returns the syscall it is in.
func blockedIn(t *testing.T, pid int) string {
	t.Helper()
	names := map[int]string{
		unix.SYS_READ: "read", unix.SYS_WRITE: "write", unix.SYS_PREAD64: "pread64", unix.SYS_PWRITE64: "pwrite64",
		unix.SYS_FSYNC: "fsync", unix.SYS_FDATASYNC: "fdatasync", unix.SYS_FTRUNCATE: "ftruncate",
		unix.SYS_OPENAT: "openat", unix.SYS_CLOSE: "close", unix.SYS_UNLINKAT: "unlinkat",
		unix.SYS_RENAMEAT: "renameat", unix.SYS_RENAMEAT2: "renameat2", unix.SYS_FCHMODAT: "fchmodat",
		unix.SYS_MMAP: "mmap", unix.SYS_MUNMAP: "munmap",
	}
	tid := waitThreads(t, pid, "blocked on the suspended device", func(state byte) bool { return state == 'D' }, false)
	sc, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/syscall", pid, tid))
	f := strings.Fields(string(sc))
	if len(f) == 0 {
		return "?"
	}
	n, err := strconv.Atoi(f[0])
	if err != nil || n < 0 {
		return "no syscall (" + f[0] + ")"
	}
	if name, ok := names[n]; ok {
		return name
	}
	return "syscall " + f[0]
}

// checkAfterCut checks the recording in dir after a power cut: it verifies
// without a problem, opens, and reads in sequence, each batch as written,
// from the first batch retention did not record deleting up to at least
// committed (exactly committed if exact). It returns the first and last
// batch read and verify's notes.
func checkAfterCut(t *testing.T, dir string, committed uint64, exact bool) (first, last uint64, notes []string) {
	t.Helper()
	rep, err := Verify(dir)
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	if !rep.OK() {
		t.Fatalf("verify after the cut: %v (notes %q)", rep.Problems, append(rep.Skipped, rep.Notes...))
	}
	rd, err := Open(dir, ReaderOptions{})
	if err != nil {
		t.Fatalf("open after the cut: %v", err)
	}
	defer rd.Close()
	n := 0
	for b, err := range rd.All() {
		if err != nil {
			t.Fatalf("read after the cut (after batch %d): %v", last, err)
		}
		if n > 0 && b.Seq != last+1 {
			t.Fatalf("batch %d follows batch %d", b.Seq, last)
		}
		want := crashBatch(int(b.Seq - 1))
		want.Seq = b.Seq
		batchesEqual(t, b, want)
		if n == 0 {
			first = b.Seq
		}
		last = b.Seq
		n++
	}
	from := uint64(1)
	if d := rd.Deleted(); d != nil {
		from = d.LastSeq + 1
	}
	switch {
	case committed > 0 && n == 0:
		t.Fatalf("no batch readable: %d reported committed", committed)
	case committed > 0 && first > from:
		t.Fatalf("batches %d-%d lost: %d reported committed, retention recorded deleting up to %d, the recording holds %d batches from %d", from, min(first-1, committed), committed, from-1, n, first)
	case last < committed:
		t.Fatalf("batches %d-%d lost: the writer reported them committed before the cut, the recording ends at %d", last+1, committed, last)
	case exact && last != committed:
		t.Fatalf("the recording holds batches up to %d, but the writer, held in segment creation, had committed only up to %d", last, committed)
	}
	if _, err := Info(dir); err != nil {
		t.Fatalf("info after the cut: %v", err)
	}
	return first, last, append(rep.Skipped, rep.Notes...)
}
