package record

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	"github.com/ebpfrec/ebpfrec/bpf"
	"github.com/ebpfrec/ebpfrec/bpf/testdata"
	"github.com/ebpfrec/ebpfrec/internal/kerneltest"
	"github.com/ebpfrec/ebpfrec/store"
)

// TestRecordKernelMissed: the kernel skips a recorded program, on_printk
// (bpf/testdata/missed.c), each time another BPF program calls
// bpf_trace_printk. A perf_event program on this thread's CPU clock calls
// it P times (counted in its map): on a kernel that counts these skips the
// summary, the recording's last loss point and its stream summary say
// kernel_missed P; on one that does not, the stream says "not counted"
// (KernelMissedCounted false), not 0 counted. A tracepoint program calling
// it at each of N getpid calls makes N more skips, which perf's own
// recursion guard makes and no kernel counts: they stay out of the count.
func TestRecordKernelMissed(t *testing.T) {
	kerneltest.Require(t)
	const n = 500
	release, err := kernelRelease()
	if err != nil {
		t.Fatal(err)
	}
	counted := bpf.RecursionMissesCounted(ebpf.TracePoint, ebpf.AttachNone, release)

	// The events come from this thread alone.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	tid := unix.Gettid()
	spec, err := testdata.LoadMissed()
	if err != nil {
		t.Fatal(err)
	}
	if err := spec.Variables[testdata.MissedVarTargetTid].Set(uint32(tid)); err != nil {
		t.Fatal(err)
	}
	// The recorder loads on_printk alone; the test, the programs that
	// make the kernel skip it.
	recSpec := spec.Copy()
	for name := range recSpec.Programs {
		if name != testdata.MissedProgOnPrintk {
			delete(recSpec.Programs, name)
		}
	}
	var objs struct {
		Sample *ebpf.Program `ebpf:"sample_printk"`
		Getpid *ebpf.Program `ebpf:"getpid_printk"`
		Calls  *ebpf.Map     `ebpf:"printk_calls"`
	}
	if err := spec.LoadAndAssign(&objs, nil); err != nil {
		t.Fatal(err)
	}
	defer objs.Sample.Close()
	defer objs.Getpid.Close()
	defer objs.Calls.Close()

	dir := filepath.Join(t.TempDir(), "rec")
	started := make(chan struct{})
	rec, err := New(Options{Dir: dir, NoProc: true, Started: func() { close(started) }})
	if err != nil {
		t.Fatal(err)
	}
	if err := rec.AddCollection(Collection{Name: "missed", Spec: recSpec, Streams: []Stream{{Map: testdata.MissedMapMissedEvents}}}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	type result struct {
		sum *Summary
		err error
	}
	done := make(chan result, 1)
	go func() {
		sum, err := rec.Run(ctx)
		done <- result{sum, err}
	}()
	select {
	case <-started:
	case r := <-done:
		t.Fatalf("recording ended before it started: %v", r.err)
	case <-time.After(30 * time.Second):
		t.Fatal("recording did not start in 30 s")
	}

	tp, err := link.Tracepoint("syscalls", "sys_enter_getpid", objs.Getpid, nil)
	if err != nil {
		t.Fatal(err)
	}
	for range n {
		unix.Getpid() // a system call each time (Go caches no pid)
	}
	tp.Close()
	serr := sampleThread(t, objs.Sample, tid, func() bool { return readSlot(t, objs.Calls, 0) >= 200 })
	cancel()
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	getpids, p := readSlot(t, objs.Calls, 1), readSlot(t, objs.Calls, 0)
	if getpids != n || p == 0 || serr != nil {
		t.Fatalf("getpid_printk ran %d times (want %d), sample_printk %d times (want some): %v", getpids, n, p, serr)
	}
	if len(r.sum.Streams) != 1 {
		t.Fatalf("%d streams", len(r.sum.Streams))
	}
	st := r.sum.Streams[0]
	// For the raw tracepoint row of bpf.RecursionMissesCounted: the
	// function that counts their skips appeared with that count.
	ksyms, _ := os.ReadFile("/proc/kallsyms")
	t.Logf("kernel %s: bpf_prog_inc_misses_counter in kallsyms: %v", release, bytes.Contains(ksyms, []byte(" bpf_prog_inc_misses_counter\n")))
	t.Logf("kernel %s: on_printk skipped under %d perf_event and %d tracepoint calls: kernel_missed %d, counted %v (recorded %d)",
		release, p, n, st.KernelMissed, st.KernelMissedCounted, st.Recorded)
	if st.KernelMissedCounted != counted {
		t.Fatalf("KernelMissedCounted %v, want %v on %s", st.KernelMissedCounted, counted, release)
	}
	want := uint64(0) // skipped all the same, but not counted
	if counted {
		want = p
	}
	// on_printk never runs: nothing is emitted, recorded or lost.
	if st.KernelMissed != want || st.Recorded != 0 || st.Lost() != 0 {
		t.Fatalf("kernel_missed %d, recorded %d, lost %d; want %d, 0, 0", st.KernelMissed, st.Recorded, st.Lost(), want)
	}

	// The recording holds the count: the last loss point, the stream's
	// summary and its declaration.
	var last store.Loss
	rd, err := store.Open(dir, store.ReaderOptions{OnLoss: func(p store.LossPoint) { last = p.Loss }})
	if err != nil {
		t.Fatal(err)
	}
	for _, err := range rd.All() {
		if err != nil {
			t.Fatal(err)
		}
	}
	rd.Close()
	info, err := store.Info(dir)
	if err != nil {
		t.Fatal(err)
	}
	if last.KernelMissed != want || len(info.Streams) != 1 || info.Streams[0].Loss.KernelMissed != want || info.Meta.Streams[0].KernelMissedCounted != counted {
		t.Fatalf("recording: last loss point %+v, streams %+v, counted %v; want kernel_missed %d, counted %v", last, info.Streams, info.Meta.Streams[0].KernelMissedCounted, want, counted)
	}
}

// sampleThread runs prog on a CPU clock event of thread tid (this one,
// locked) every millisecond of its CPU time, spinning until enough says
// so (at most 20 s), then closes the event.
func sampleThread(t *testing.T, prog *ebpf.Program, tid int, enough func() bool) error {
	attr := unix.PerfEventAttr{
		Type:   unix.PERF_TYPE_SOFTWARE,
		Config: unix.PERF_COUNT_SW_CPU_CLOCK,
		Size:   uint32(unsafe.Sizeof(unix.PerfEventAttr{})),
		Sample: 1_000_000, // ns
		Bits:   unix.PerfBitDisabled,
	}
	fd, err := unix.PerfEventOpen(&attr, tid, -1, -1, unix.PERF_FLAG_FD_CLOEXEC)
	if err != nil {
		return fmt.Errorf("perf_event_open: %w", err)
	}
	defer unix.Close(fd)
	if err := unix.IoctlSetInt(fd, unix.PERF_EVENT_IOC_SET_BPF, prog.FD()); err != nil {
		return fmt.Errorf("PERF_EVENT_IOC_SET_BPF: %w", err)
	}
	if err := unix.IoctlSetInt(fd, unix.PERF_EVENT_IOC_ENABLE, 0); err != nil {
		return fmt.Errorf("PERF_EVENT_IOC_ENABLE: %w", err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for !enough() {
		if time.Now().After(deadline) {
			return errors.New("not enough samples in 20 s")
		}
		spin := time.Now().Add(10 * time.Millisecond)
		for time.Now().Before(spin) {
		}
	}
	return unix.IoctlSetInt(fd, unix.PERF_EVENT_IOC_DISABLE, 0)
}

// readSlot reads slot i of an array of counters.
func readSlot(t *testing.T, m *ebpf.Map, i uint32) uint64 {
	t.Helper()
	var v uint64
	if err := m.Lookup(i, &v); err != nil {
		t.Fatal(err)
	}
	return v
}
