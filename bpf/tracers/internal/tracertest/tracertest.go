// Package tracertest runs built-in tracers on the real kernel for tests,
// with plain cilium/ebpf (no bpf.Manager or bpf readers), and starts child
// processes that wait for the test's go-ahead before their workload, so the
// test can select them in the filter first.
package tracertest

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/perf"
	"github.com/cilium/ebpf/ringbuf"
	"github.com/cilium/ebpf/rlimit"

	"github.com/ebpfrec/ebpfrec/bpf/tracers"
	"github.com/ebpfrec/ebpfrec/bpf/tracers/common"
	"github.com/ebpfrec/ebpfrec/internal/kerneltest"
)

const envChild = "EBPFREC_TRACERTEST_CHILD"

// Workload is a child's job: it gets the arguments after the mode and
// returns the exit code.
type Workload func(args []string) int

// Main is called from TestMain: in a child started by Start it runs the
// workload named by the environment (after the test's go-ahead on stdin)
// and exits; in the test process it runs the tests.
func Main(m *testing.M, workloads map[string]Workload) {
	if mode := os.Getenv(envChild); mode != "" {
		w, ok := workloads[mode]
		if !ok {
			fmt.Fprintf(os.Stderr, "tracertest: unknown workload %q\n", mode)
			os.Exit(100)
		}
		// Go's first process start probes clone(CLONE_PIDFD) with a child
		// that exits at once: get it over with before the workload.
		if err := exec.Command("/bin/true").Run(); err != nil {
			fmt.Fprintf(os.Stderr, "tracertest: warm-up: %v\n", err)
			os.Exit(103)
		}
		// Tell the test we are running (our exec is complete), then wait.
		ready := os.NewFile(3, "ready")
		if _, err := ready.Write([]byte{1}); err != nil {
			fmt.Fprintf(os.Stderr, "tracertest: signalling readiness: %v\n", err)
			os.Exit(102)
		}
		ready.Close()
		var b [1]byte
		if _, err := io.ReadFull(os.Stdin, b[:]); err != nil {
			fmt.Fprintf(os.Stderr, "tracertest: waiting for go-ahead: %v\n", err)
			os.Exit(101)
		}
		os.Exit(w(os.Args[1:]))
	}
	os.Exit(m.Run())
}

// Proc is a child process waiting for Go.
type Proc struct {
	Cmd   *exec.Cmd
	PID   uint32
	stdin io.WriteCloser
}

// Start starts the test binary as a child running workload mode with args;
// it returns once the child runs (its exec is complete) and waits for Go
// before doing anything.
func Start(t testing.TB, mode string, args ...string) *Proc {
	t.Helper()
	return start(t, os.Args[0], nil, mode, args)
}

// StartAs is Start with the child's command name (comm) set to name (at
// most 15 bytes): it runs the test binary through a symlink called name.
func StartAs(t testing.TB, name, mode string, args ...string) *Proc {
	t.Helper()
	return StartWith(t, name, nil, mode, args...)
}

// StartWith is StartAs ("" name: Start) with files open in the child
// from descriptor 4 on (3 is the readiness pipe).
func StartWith(t testing.TB, name string, files []*os.File, mode string, args ...string) *Proc {
	t.Helper()
	if name == "" {
		return start(t, os.Args[0], files, mode, args)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(t.TempDir(), name)
	if err := os.Symlink(exe, link); err != nil {
		t.Fatal(err)
	}
	return start(t, link, files, mode, args)
}

func start(t testing.TB, bin string, files []*os.File, mode string, args []string) *Proc {
	t.Helper()
	cmd := exec.Command(bin, args...)
	// No asynchronous preemption: it makes the runtime call getpid and
	// tgkill, which would add syscalls to the child's known workload.
	cmd.Env = append(os.Environ(), envChild+"="+mode, "GODEBUG=asyncpreemptoff=1")
	cmd.Stdout = os.Stderr
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	rr, rw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.ExtraFiles = append([]*os.File{rw}, files...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	rw.Close()
	var b [1]byte
	_, rerr := io.ReadFull(rr, b[:])
	rr.Close()
	if rerr != nil {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("child %s did not start: %v", mode, rerr)
	}
	p := &Proc{Cmd: cmd, PID: uint32(cmd.Process.Pid), stdin: in}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	return p
}

// Run lets the child run its workload and waits for it; it returns its
// exit code.
func (p *Proc) Run(t testing.TB) int {
	t.Helper()
	p.Go(t)
	return p.Wait(t)
}

// Go lets the child run its workload and returns at once.
func (p *Proc) Go(t testing.TB) {
	t.Helper()
	if _, err := p.stdin.Write([]byte{1}); err != nil {
		t.Fatal(err)
	}
	p.stdin.Close()
}

// Wait waits for a child that Go let run; it returns its exit code.
func (p *Proc) Wait(t testing.TB) int {
	t.Helper()
	err := p.Cmd.Wait()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatal(err)
	}
	return p.Cmd.ProcessState.ExitCode()
}

// NewFilter makes a shared filter, closed at the end of the test, that
// selects nothing until the test allows a process (Restrict).
func NewFilter(t testing.TB) *common.Filter {
	t.Helper()
	kerneltest.Require(t)
	_ = rlimit.RemoveMemlock()
	f, err := common.NewFilter()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	if err := f.Restrict(); err != nil {
		t.Fatal(err)
	}
	return f
}

// Load creates, loads and attaches the tracer called name with opts; it
// is detached and closed at the end of the test. It skips the test (or
// fails it in CI) without root, through kerneltest.Require.
func Load(t testing.TB, name string, opts tracers.Options) tracers.Builtin {
	t.Helper()
	kerneltest.Require(t)
	_ = rlimit.RemoveMemlock()
	tr, err := tracers.New(name, opts)
	if err != nil {
		t.Fatal(err)
	}
	LoadTracer(t, tr)
	return tr
}

// EachVariant runs f as a subtest, named after the variant, for every
// variant of tracer name that this kernel can run (the kernel matrix runs
// the others on the kernels that need them); it fails if none can run.
func EachVariant(t *testing.T, name string, f func(t *testing.T, variant string)) {
	t.Helper()
	kerneltest.Require(t)
	tr, err := tracers.New(name, tracers.Options{})
	if err != nil {
		t.Fatal(err)
	}
	vs, ok := tr.(interface{ Variants() []tracers.Variant })
	if !ok {
		t.Fatalf("tracer %s does not list its variants", name)
	}
	ran := 0
	for _, v := range vs.Variants() {
		probe, err := tracers.New(name, tracers.Options{Variant: v.Name})
		if err != nil {
			t.Fatal(err)
		}
		if err := probe.Variant().Err; err != nil {
			t.Logf("variant %s cannot run on this kernel: %v", v.Name, err)
			continue
		}
		ran++
		t.Run(v.Name, func(t *testing.T) { f(t, v.Name) })
	}
	if ran == 0 {
		t.Fatalf("no variant of tracer %s runs on this kernel", name)
	}
}

// LoadTracer loads and attaches tr, as Load does.
func LoadTracer(t testing.TB, tr tracers.Builtin) {
	t.Helper()
	kerneltest.Require(t)
	_ = rlimit.RemoveMemlock()
	name := tr.Name()
	if err := tr.Supported(); err != nil {
		t.Fatalf("tracer %s not supported here: %v", name, err)
	}
	if err := tracers.Load(tr); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	links, err := tracers.Attach(tr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, l := range links {
			l.Close()
		}
	})
}

// Reader reads one stream of a loaded tracer.
type Reader struct {
	tr     tracers.Builtin
	stream tracers.Stream
	rb     *ringbuf.Reader
	pf     *perf.Reader
	// Lost counts the samples perf reported lost.
	Lost uint64
}

// NewReader opens a reader on the tracer's named stream (64 KiB per CPU
// for perf buffers).
func NewReader(t testing.TB, tr tracers.Builtin, stream string) *Reader {
	return NewReaderSize(t, tr, stream, 64*1024)
}

// NewReaderSize is NewReader with the perf buffer size per CPU.
func NewReaderSize(t testing.TB, tr tracers.Builtin, stream string, perCPU int) *Reader {
	t.Helper()
	s, ok := tracers.StreamByName(tr, stream)
	if !ok {
		t.Fatalf("tracer %s has no stream %s", tr.Name(), stream)
	}
	r := &Reader{tr: tr, stream: s}
	var err error
	switch s.Kind {
	case tracers.Ringbuf:
		r.rb, err = ringbuf.NewReader(tr.Map(s.Map))
	case tracers.Perfbuf:
		r.pf, err = perf.NewReader(tr.Map(s.Map), perCPU)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// Close closes the reader.
func (r *Reader) Close() {
	if r.rb != nil {
		r.rb.Close()
	}
	if r.pf != nil {
		r.pf.Close()
	}
}

// Drain reads the stream's events until none came for 100 ms.
func (r *Reader) Drain(t testing.TB) []tracers.Event {
	t.Helper()
	return r.DrainAtLeast(t, 0, 0)
}

// DrainAtLeast reads the stream's events until none came for 100 ms and
// at least want arrived, or patience passed: for events the kernel makes
// after the workload ended (a TCP close completed in softirq, which a slow
// VM runs late). More than want are returned too, so excess still shows.
func (r *Reader) DrainAtLeast(t testing.TB, want int, patience time.Duration) []tracers.Event {
	t.Helper()
	start := time.Now()
	var out []tracers.Event
	add := func(raw []byte) {
		ev, err := r.tr.Decode(r.stream.Name, raw)
		if err != nil {
			t.Fatalf("decode %s event of %d bytes: %v", r.stream.Name, len(raw), err)
		}
		if r.rb != nil {
			// A ring buffer does not say which CPU wrote an event: every
			// ring buffer tracer's event says it.
			ce, ok := ev.(tracers.CPUEvent)
			if !ok {
				t.Fatalf("%s event %T does not carry its CPU (tracers.CPUEvent)", r.stream.Name, ev)
			}
			if c := ce.EventCPU(); c < 0 || c >= possibleCPUs(t) {
				t.Fatalf("%s event on CPU %d, want 0 to %d: %+v", r.stream.Name, c, possibleCPUs(t)-1, ev)
			}
		}
		out = append(out, ev)
	}
	for {
		deadline := time.Now().Add(100 * time.Millisecond)
		var err error
		if r.rb != nil {
			var rec ringbuf.Record
			r.rb.SetDeadline(deadline)
			if err = r.rb.ReadInto(&rec); err == nil {
				add(rec.RawSample)
			}
		} else {
			var rec perf.Record
			r.pf.SetDeadline(deadline)
			if err = r.pf.ReadInto(&rec); err == nil {
				r.Lost += rec.LostSamples
				if rec.LostSamples == 0 {
					add(rec.RawSample)
				}
			}
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			if len(out) >= want || time.Since(start) > patience {
				return out
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

func possibleCPUs(t testing.TB) int {
	n, err := ebpf.PossibleCPU()
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// Counters returns the stream's emitted and dropped counts.
func Counters(t testing.TB, tr tracers.Builtin, stream string) (emitted, drops uint64) {
	t.Helper()
	s, _ := tracers.StreamByName(tr, stream)
	var err error
	if emitted, err = tracers.ReadCounter(tr.Map(s.EmittedCounter)); err != nil {
		t.Fatal(err)
	}
	if drops, err = tracers.ReadCounter(tr.Map(s.DropCounter)); err != nil {
		t.Fatal(err)
	}
	return emitted, drops
}

// CheckAccounting asserts emitted = received + drops for a stream, and for
// perf streams that perf's lost samples are among the drops.
func CheckAccounting(t testing.TB, tr tracers.Builtin, r *Reader, received int) {
	t.Helper()
	emitted, drops := Counters(t, tr, r.stream.Name)
	if emitted != uint64(received)+drops {
		t.Errorf("%s: emitted %d != received %d + drops %d (perf lost %d)", r.stream.Name, emitted, received, drops, r.Lost)
	}
	if r.Lost > drops {
		t.Errorf("%s: perf lost %d samples, more than the %d drops", r.stream.Name, r.Lost, drops)
	}
}
