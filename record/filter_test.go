package record

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/ebpfrec/ebpfrec/bpf/testdata"
	"github.com/ebpfrec/ebpfrec/bpf/tracers/common"
	"github.com/ebpfrec/ebpfrec/internal/kerneltest"
	"github.com/ebpfrec/ebpfrec/store"
)

// envGetsid makes the test binary call getsid(2) this many times and exit
// (see TestMain); with envWait set it first waits for a line, or the end,
// on its standard input.
const (
	envGetsid = "EBPFREC_TEST_GETSID"
	envWait   = "EBPFREC_TEST_WAIT"
)

func getsidChild(n int) {
	if os.Getenv(envWait) != "" {
		var b [1]byte
		_, _ = os.Stdin.Read(b[:])
	}
	for i := 0; i < n; i++ {
		_, _ = unix.Getsid(0)
	}
	os.Exit(0)
}

// gatedChild is the test binary (under path, which names its comm) waiting
// to make n getsid calls.
type gatedChild struct {
	cmd  *exec.Cmd
	gate io.WriteCloser
}

func startGetsid(t *testing.T, path string, n int) *gatedChild {
	t.Helper()
	cmd := exec.Command(path)
	cmd.Env = append(os.Environ(), envGetsid+"="+strconv.Itoa(n), envWait+"=1")
	gate, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	return &gatedChild{cmd: cmd, gate: gate}
}

func (c *gatedChild) pid() uint32 { return uint32(c.cmd.Process.Pid) }

// run lets the child make its calls and waits until it has exited.
func (c *gatedChild) run() error {
	_, _ = c.gate.Write([]byte("go\n"))
	c.gate.Close()
	return c.cmd.Wait()
}

// filteredCollection is the user object that opts into the process filter
// (bpf/testdata/filtered.c), with its hits counter (every getsid call the
// program saw, selected or not) replaced by a map of the test's own, to
// read after the recording.
func filteredCollection(t *testing.T) (Collection, *ebpf.Map) {
	t.Helper()
	spec, err := testdata.LoadFiltered()
	if err != nil {
		t.Fatal(err)
	}
	hits, err := ebpf.NewMap(spec.Maps["hits"].Copy())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hits.Close() })
	return Collection{
		Name:    "filtered",
		Spec:    spec,
		Options: &ebpf.CollectionOptions{MapReplacements: map[string]*ebpf.Map{"hits": hits}},
		Streams: []Stream{{Map: "events", DropCounter: "events_drops", EmittedCounter: "events_emitted"}},
	}, hits
}

// recordedTgids returns the tgid of every event of the filtered object's
// stream in the recording in dir.
func recordedTgids(t *testing.T, dir string) map[uint32]int {
	t.Helper()
	r, err := store.Open(dir, store.ReaderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	out := map[uint32]int{}
	for {
		b, err := r.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range b.Events {
			if len(e.Raw) < 16 {
				t.Fatalf("batch %d: event of %d bytes, want 16", b.Seq, len(e.Raw))
			}
			out[binary.LittleEndian.Uint32(e.Raw)]++
		}
	}
}

// TestUserObjectProcessFilter: a user object that includes ebpfrec_filter.h
// records only the selected process, whether selected by Command, PIDs or
// Comms, while another process makes the same calls during the recording:
// its calls reach the program (its hits counter) but not the recording.
// Before, a Command with a user object alone dereferenced a nil filter, and
// PIDs and Comms were ignored for user objects.
func TestUserObjectProcessFilter(t *testing.T) {
	kerneltest.Require(t)
	const nSel, nOther = 300, 500
	byComm := filepath.Join(t.TempDir(), "ebpfrec-fsel")
	self, err := os.Executable() // os.Args[0] may be relative (./record.test in the VMs)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(self, byComm); err != nil {
		t.Fatal(err)
	}
	for _, how := range []string{"command", "pid", "comm"} {
		t.Run(how, func(t *testing.T) {
			other := startGetsid(t, os.Args[0], nOther)
			dir := filepath.Join(t.TempDir(), "rec")
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			opts := Options{Dir: dir, NoProc: true, Store: store.WriterOptions{FlushInterval: 50 * time.Millisecond}}
			var sel *gatedChild
			switch how {
			case "command":
				// Inherited through the gate by the command.
				t.Setenv(envGetsid, strconv.Itoa(nSel))
				opts.Command = []string{os.Args[0]}
				opts.CommandStdout, opts.CommandStderr = io.Discard, io.Discard
			case "pid":
				sel = startGetsid(t, os.Args[0], nSel)
				opts.PIDs = []uint32{sel.pid()} // the recording ends when it exits
			case "comm":
				sel = startGetsid(t, byComm, nSel)
				opts.Comms = []string{"ebpfrec-fsel"}
			}
			var runErr error
			opts.Started = func() {
				// While attached: the other process first, all of it, then
				// the selected one (a command starts after Started).
				if err := other.run(); err != nil {
					runErr = err
				}
				if sel != nil {
					if err := sel.run(); err != nil && runErr == nil {
						runErr = err
					}
				}
				if how == "comm" {
					cancel()
				}
			}
			rec, err := New(opts)
			if err != nil {
				t.Fatal(err)
			}
			coll, hits := filteredCollection(t)
			if err := rec.AddCollection(coll); err != nil {
				t.Fatal(err)
			}
			sum, err := rec.Run(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if runErr != nil {
				t.Fatalf("workload: %v", runErr)
			}
			if how == "command" && sum.CommandExit != 0 {
				t.Fatalf("command exited %d", sum.CommandExit)
			}
			var perCPU []uint64
			if err := hits.Lookup(uint32(0), &perCPU); err != nil {
				t.Fatal(err)
			}
			var seen uint64
			for _, n := range perCPU {
				seen += n
			}
			if seen < nSel+nOther {
				t.Fatalf("the program saw %d getsid calls, want at least %d: the workload did not run while attached", seen, nSel+nOther)
			}
			s := sum.Streams[0]
			if s.Recorded != nSel || !s.HasEmitted || s.Emitted != nSel || s.Lost() != 0 {
				t.Errorf("summary: recorded %d, emitted %d (%v), lost %d; want %d recorded and emitted, none lost", s.Recorded, s.Emitted, s.HasEmitted, s.Lost(), nSel)
			}
			tgids := recordedTgids(t, dir)
			if len(tgids) != 1 {
				t.Fatalf("events by process: %v, want %d of one process", tgids, nSel)
			}
			for tgid, n := range tgids {
				if n != nSel || tgid == other.pid() || tgid == uint32(os.Getpid()) || (sel != nil && tgid != sel.pid()) {
					t.Errorf("recorded %d events of process %d; want %d of the selected one (other %d, recorder %d)", n, tgid, nSel, other.pid(), os.Getpid())
				}
			}
		})
	}
}

// A collection that cannot be filtered is refused when the recording
// selects processes, with an error naming the collection and the way to opt
// in; a hook declared in part or wrongly is refused even without a
// selection. Nothing here loads anything: AddCollection checks the spec.
func TestUserObjectFilterRefused(t *testing.T) {
	plain := func() *ebpf.CollectionSpec {
		spec, err := testdata.LoadTestprog()
		if err != nil {
			t.Fatal(err)
		}
		return spec
	}
	filtered := func() *ebpf.CollectionSpec {
		spec, err := testdata.LoadFiltered()
		if err != nil {
			t.Fatal(err)
		}
		return spec
	}
	plainStreams := []Stream{{Map: "events_rb"}}
	filteredStreams := []Stream{{Map: "events"}}
	for _, tc := range []struct {
		name    string
		opts    Options
		spec    *ebpf.CollectionSpec
		streams []Stream
		is      error
		want    []string // in the message
	}{
		{"pid without hook", Options{PIDs: []uint32{1}}, plain(), plainStreams, ErrNoProcessFilter, []string{"collection testprog", "pids [1]", "ebpfrec_filter.h", "ebpfrec_selected()"}},
		{"comm without hook", Options{Comms: []string{"nginx"}}, plain(), plainStreams, ErrNoProcessFilter, []string{`comms ["nginx"]`, "ebpfrec_filter.h"}},
		{"command without hook", Options{Command: []string{"true"}}, plain(), plainStreams, ErrNoProcessFilter, []string{`the command "true" and its descendants`, "ebpfrec_filter.h"}},
		{"hook in part", Options{}, func() *ebpf.CollectionSpec {
			s := filtered()
			delete(s.Maps, common.UserMapPIDBlock)
			return s
		}(), filteredStreams, common.ErrBadUserHook, []string{"but not ebpfrec_pid_block"}},
		{"hook map changed", Options{}, func() *ebpf.CollectionSpec {
			s := filtered()
			s.Maps[common.UserMapPIDAllow].MaxEntries = 1024
			return s
		}(), filteredStreams, common.ErrBadUserHook, []string{"map ebpfrec_pid_allow: max_entries 1024, want 65536"}},
		{"program ignores the hook", Options{PIDs: []uint32{1}}, func() *ebpf.CollectionSpec {
			// The maps alone are not the opt-in: testprog's programs never
			// ask the filter.
			s, f := plain(), filtered()
			for _, n := range []string{common.UserMapFilterConfig, common.UserMapPIDAllow, common.UserMapPIDBlock, common.UserMapCommAllow} {
				s.Maps[n] = f.Maps[n]
			}
			return s
		}(), plainStreams, ErrNoProcessFilter, []string{"program rb_getppid writes to events_rb without calling ebpfrec_selected()"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := tc.opts
			opts.Dir = filepath.Join(t.TempDir(), "rec")
			rec, err := New(opts)
			if err != nil {
				t.Fatal(err)
			}
			name := "testprog"
			if tc.streams[0].Map == "events" {
				name = "filtered"
			}
			err = rec.AddCollection(Collection{Name: name, Spec: tc.spec, Streams: tc.streams})
			if !errors.Is(err, tc.is) {
				t.Fatalf("AddCollection: %v, want %v", err, tc.is)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
	// Without a selection, an object without the hook records as before,
	// and one with it is accepted.
	for _, c := range []Collection{{Name: "testprog", Spec: plain(), Streams: plainStreams}, {Name: "filtered", Spec: filtered(), Streams: filteredStreams}} {
		rec, err := New(Options{Dir: filepath.Join(t.TempDir(), "rec")})
		if err != nil {
			t.Fatal(err)
		}
		if err := rec.AddCollection(c); err != nil {
			t.Errorf("%s without a selection: %v", c.Name, err)
		}
	}
	// A selection with the hook is accepted.
	rec, err := New(Options{Dir: filepath.Join(t.TempDir(), "rec"), PIDs: []uint32{1}, Comms: []string{"x"}, Command: []string{"true"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := rec.AddCollection(Collection{Name: "filtered", Spec: filtered(), Streams: filteredStreams}); err != nil {
		t.Errorf("filtered with a selection: %v", err)
	}
}

// TestUnbalancedStreamIsAnError: the library, not the command line, holds
// a recording to emitted = recorded + lost. Here the emitted counter is
// the filtered object's hits (every getsid call, selected or not) while
// only one process is selected, so the equation cannot hold: Run returns
// ErrUnbalanced with the summary, and the recording stays valid.
func TestUnbalancedStreamIsAnError(t *testing.T) {
	kerneltest.Require(t)
	const nSel, nOther = 50, 70
	other := startGetsid(t, os.Args[0], nOther)
	sel := startGetsid(t, os.Args[0], nSel)
	dir := filepath.Join(t.TempDir(), "rec")
	var runErr error
	opts := Options{Dir: dir, NoProc: true, PIDs: []uint32{sel.pid()}, Started: func() {
		runErr = errors.Join(other.run(), sel.run())
	}}
	rec, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	coll, _ := filteredCollection(t)
	coll.Options = nil // the program's own hits counter, read as emitted
	coll.Streams[0].EmittedCounter = "hits"
	if err := rec.AddCollection(coll); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	sum, err := rec.Run(ctx)
	if runErr != nil {
		t.Fatalf("workload: %v", runErr)
	}
	if !errors.Is(err, ErrUnbalanced) || sum == nil {
		t.Fatalf("Run: %v (summary %v), want ErrUnbalanced with the summary", err, sum != nil)
	}
	s := sum.Streams[0]
	if s.Recorded != nSel || s.Emitted < nSel+nOther {
		t.Fatalf("recorded %d, emitted %d: want %d recorded of at least %d", s.Recorded, s.Emitted, nSel, nSel+nOther)
	}
	if rep, err := store.Verify(dir); err != nil || !rep.OK() {
		t.Fatalf("the recording does not verify: %v %v", err, rep.Problems)
	}
}
