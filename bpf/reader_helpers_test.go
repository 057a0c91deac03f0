package bpf

import (
	"encoding/binary"
	"fmt"
	"os"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	"github.com/ebpfrec/ebpfrec/bpf/testdata"
	"github.com/ebpfrec/ebpfrec/internal/kerneltest"
)

// The test program's event: see bpf/testdata/testprog.c.
const (
	testEventSize = 64
	tagOffset     = 24
	tagLen        = 40
	slotRB        = 0
	slotPerf      = 1
)

// testProg is the test program loaded with plain cilium/ebpf (package bpf's
// Manager is tested elsewhere), its tracepoints attached.
type testProg struct {
	coll     *ebpf.Collection
	rb       *ebpf.Map
	perf     *ebpf.Map
	drops    *ebpf.Map
	counters *ebpf.Map
}

type progOpts struct {
	wakeupEvery uint32 // ring buffer: force a wakeup every this many events
	rbSize      uint32 // ring buffer size in bytes (0: the program's)
}

// loadTestProg loads the test program for this process and attaches its ring
// buffer and perf buffer producers. Everything is released at the end of the
// test. Tests using it must not run in parallel: the programs count every
// getppid/getpgid of this process.
func loadTestProg(tb testing.TB, o progOpts) *testProg {
	tb.Helper()
	kerneltest.Require(tb)
	spec, err := testdata.LoadTestprog()
	if err != nil {
		tb.Fatal(err)
	}
	delete(spec.Programs, testdata.TestprogProgCountKprobe)
	delete(spec.Programs, testdata.TestprogProgCountUprobe)
	if err := spec.Variables[testdata.TestprogVarTargetTgid].Set(uint32(os.Getpid())); err != nil {
		tb.Fatal(err)
	}
	if o.wakeupEvery == 0 {
		o.wakeupEvery = 1
	}
	if err := spec.Variables[testdata.TestprogVarWakeupEvery].Set(o.wakeupEvery); err != nil {
		tb.Fatal(err)
	}
	if o.rbSize != 0 {
		spec.Maps[testdata.TestprogMapEventsRb].MaxEntries = o.rbSize
	}
	coll, err := ebpf.NewCollectionWithOptions(spec, ebpf.CollectionOptions{})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { coll.Close() })
	for prog, tp := range map[string]string{
		testdata.TestprogProgRbGetppid:   "sys_enter_getppid",
		testdata.TestprogProgPerfGetpgid: "sys_enter_getpgid",
	} {
		l, err := link.Tracepoint("syscalls", tp, coll.Programs[prog], nil)
		if err != nil {
			tb.Fatalf("attach %s: %v", prog, err)
		}
		tb.Cleanup(func() { l.Close() })
	}
	return &testProg{
		coll:     coll,
		rb:       coll.Maps[testdata.TestprogMapEventsRb],
		perf:     coll.Maps[testdata.TestprogMapEventsPerf],
		drops:    coll.Maps[testdata.TestprogMapRbDrops],
		counters: coll.Maps[testdata.TestprogMapCounters],
	}
}

// emitted is how many events the program tried to emit into slot's buffer.
func (p *testProg) emitted(tb testing.TB, slot uint32) int64 {
	tb.Helper()
	var v uint64
	if err := p.counters.Lookup(slot, &v); err != nil {
		tb.Fatal(err)
	}
	return int64(v)
}

func emitRingbuf(n int) {
	for range n {
		syscall.Getppid()
	}
}

func emitPerf(n int) {
	for range n {
		_, _ = syscall.Getpgid(0)
	}
}

// pinToOneCPU locks the calling goroutine to its thread and that thread to
// the first CPU it may run on, so that every perf event it causes lands in
// one per-CPU buffer. The returned function undoes both.
func pinToOneCPU(tb testing.TB) func() {
	tb.Helper()
	runtime.LockOSThread()
	var old, mask [16]uint64
	if _, _, e := syscall.RawSyscall(syscall.SYS_SCHED_GETAFFINITY, 0, unsafe.Sizeof(old), uintptr(unsafe.Pointer(&old[0]))); e != 0 {
		runtime.UnlockOSThread()
		tb.Fatalf("sched_getaffinity: %v", e)
	}
	for i, w := range old {
		if w != 0 {
			mask[i] = w & -w // lowest set bit
			break
		}
	}
	if _, _, e := syscall.RawSyscall(syscall.SYS_SCHED_SETAFFINITY, 0, unsafe.Sizeof(mask), uintptr(unsafe.Pointer(&mask[0]))); e != 0 {
		runtime.UnlockOSThread()
		tb.Fatalf("sched_setaffinity: %v", e)
	}
	return func() {
		syscall.RawSyscall(syscall.SYS_SCHED_SETAFFINITY, 0, unsafe.Sizeof(old), uintptr(unsafe.Pointer(&old[0])))
		runtime.UnlockOSThread()
	}
}

// checkEvent verifies one test event's contents and returns its sequence
// number and CPU.
func checkEvent(raw []byte) (seq uint64, cpu uint32, err error) {
	if len(raw) < testEventSize {
		return 0, 0, fmt.Errorf("event of %d bytes, want at least %d", len(raw), testEventSize)
	}
	seq = binary.NativeEndian.Uint64(raw[0:8])
	if tgid := binary.NativeEndian.Uint32(raw[16:20]); tgid != uint32(os.Getpid()) {
		return seq, 0, fmt.Errorf("event %d: tgid %d, want %d", seq, tgid, os.Getpid())
	}
	cpu = binary.NativeEndian.Uint32(raw[20:24])
	for i := range tagLen {
		if raw[tagOffset+i] != byte(seq+uint64(i)) {
			return seq, cpu, fmt.Errorf("event %d: tag[%d] = %d, want %d", seq, i, raw[tagOffset+i], byte(seq+uint64(i)))
		}
	}
	return seq, cpu, nil
}

// waitFor polls cond until it holds. It is a hang guard, not a timing
// assertion: the limit is far beyond anything a working reader needs.
func waitFor(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	limit := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(limit) {
			tb.Fatalf("gave up waiting (10 s) for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// runReader runs start in a goroutine and returns a function that cancels
// it and returns Start's error, failing the test if Start does not return
// within 5 s of the cancellation.
func runReader(tb testing.TB, ctxCancel func(), start func() error) (stop func() error) {
	tb.Helper()
	done := make(chan error, 1)
	go func() { done <- start() }()
	return func() error {
		tb.Helper()
		ctxCancel()
		select {
		case err := <-done:
			return err
		case <-time.After(5 * time.Second):
			tb.Fatal("Start did not return within 5 s of the cancellation")
			return nil
		}
	}
}

// waitBlockedIn waits until a goroutine is blocked in a system call (the
// epoll wait of a buffer reader) with fn on its stack: what the tests of
// cancellation and Close need before they act, where a sleep only hoped
// for it. It fails the test after a generous bound (a hang guard).
func waitBlockedIn(tb testing.TB, fn string) {
	tb.Helper()
	buf := make([]byte, 1<<20)
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(time.Millisecond) {
		for _, g := range strings.Split(string(buf[:runtime.Stack(buf, true)]), "\n\n") {
			if strings.Contains(g, "[syscall") && strings.Contains(g, fn) {
				return
			}
		}
		if time.Now().After(deadline) {
			tb.Fatalf("no goroutine blocked in a system call under %s", fn)
		}
	}
}
