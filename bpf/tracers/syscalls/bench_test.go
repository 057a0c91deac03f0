package syscalls_test

import (
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/cilium/ebpf/ringbuf"

	"github.com/ebpfrec/ebpfrec/bpf/tracers"
	"github.com/ebpfrec/ebpfrec/bpf/tracers/common"
	"github.com/ebpfrec/ebpfrec/bpf/tracers/internal/tracertest"
	"github.com/ebpfrec/ebpfrec/bpf/tracers/syscalls"
)

// BenchmarkGetpidStorm measures a child's getpid storm (b.N calls) recorded
// by the syscalls tracer, with a reader in this process (not selected)
// that decodes and discards: getpid/s and events/s, drops (want 0).
// "off" is the storm without the tracer.
func BenchmarkGetpidStorm(b *testing.B) {
	b.Run("off", func(b *testing.B) {
		c := tracertest.Start(b, "getpid", strconv.Itoa(b.N))
		b.ResetTimer()
		start := time.Now()
		c.Run(b)
		b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "getpid/s")
	})
	for _, every := range []uint32{1, 64, 256} {
		b.Run("wakeup_every="+strconv.Itoa(int(every)), func(b *testing.B) {
			f := tracertest.NewFilter(b)
			storm(b, f, tracertest.Load(b, syscalls.Name, tracers.Options{Filter: f, WakeupEvery: every}))
		})
	}
}

// BenchmarkCPUField measures what the cpu field costs (issue 14): the
// getpid storm recorded with the 40-byte event and with the earlier
// 32-byte one (the test-only SYS_NO_CPU build), in the same run; compare
// their getpid/s. Run with -count to interleave them.
func BenchmarkCPUField(b *testing.B) {
	for _, v := range []struct{ name, variant string }{{"event=40B", syscalls.VariantTaskStorage}, {"event=32B", syscalls.VariantNoCPU}} {
		b.Run(v.name, func(b *testing.B) {
			f := tracertest.NewFilter(b)
			tr := syscalls.NewWithNoCPU(tracers.Options{Filter: f, Variant: v.variant})
			tracertest.LoadTracer(b, tr)
			storm(b, f, tr)
		})
	}
}

// storm runs a child's getpid storm of b.N calls, selected in f and
// recorded by tr, with a reader that decodes and discards.
func storm(b *testing.B, f *common.Filter, tr tracers.Builtin) {
	rd, err := ringbuf.NewReader(tr.Map(syscalls.MapEvents))
	if err != nil {
		b.Fatal(err)
	}
	defer rd.Close()
	done := make(chan int)
	go func() {
		n := 0
		var rec ringbuf.Record
		var e syscalls.Event
		for {
			rd.SetDeadline(time.Now().Add(100 * time.Millisecond))
			err := rd.ReadInto(&rec)
			if errors.Is(err, ringbuf.ErrClosed) {
				break
			}
			if err == nil {
				_ = syscalls.Decode(rec.RawSample, &e)
				n++
			}
		}
		done <- n
	}()
	c := tracertest.Start(b, "getpid", strconv.Itoa(b.N))
	if err := f.AllowPID(c.PID); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	start := time.Now()
	c.Run(b)
	el := time.Since(start)
	b.StopTimer()
	time.Sleep(200 * time.Millisecond) // let the reader catch up
	rd.Close()
	n := <-done
	emitted, drops := tracertest.Counters(b, tr, syscalls.StreamSyscalls)
	b.ReportMetric(float64(b.N)/el.Seconds(), "getpid/s")
	b.ReportMetric(float64(n)/float64(b.N), "received/op")
	b.ReportMetric(float64(emitted)/float64(b.N), "emitted/op")
	b.ReportMetric(float64(drops), "drops")
}
