package record

import (
	"context"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ebpfrec/ebpfrec/bpf"
	"github.com/ebpfrec/ebpfrec/bpf/tracers"
	"github.com/ebpfrec/ebpfrec/bpf/tracers/common"
	"github.com/ebpfrec/ebpfrec/internal/kerneltest"
	"github.com/ebpfrec/ebpfrec/store"
)

// The recorder benchmark records the syscalls tracer under a getpid storm
// (a child process making stormEvents getpid calls: one op is one storm) and
// compares it, in the same run, with the same tracer read by a bare
// bpf.RingbufReader whose handler discards the events. Both read the same
// ring buffer size with the same wakeup batching. Reported:
//
//	bare-ev/s   events per second the discarding reader received
//	ev/s        events per second the recorder stored
//	ratio       ev/s / bare-ev/s (goal: >= 0.9)
//	drops       events lost in the kernel or user space by the recorder (goal: 0)
//	cpu-s/Mev   CPU seconds of the recorder's process per million events
//	B/ev        bytes on disk per recorded event
//
// Rates are measured between the first and the last event's read time.

const (
	benchRingSize = 4 << 20
	stormEvents   = 1_000_000
)

func stormCommand(b *testing.B) []string {
	b.Setenv(envStorm, strconv.Itoa(stormEvents))
	return []string{os.Args[0]}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func BenchmarkRecordSyscalls(b *testing.B) {
	kerneltest.Require(b)
	var bareRate, rate, drops, bareDrops, cpuPerMev, bytesPerEv float64
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		br, bl := benchBareReader(b)
		bareRate += br
		bareDrops += float64(bl)
		dir := filepath.Join(b.TempDir(), "rec")
		rec, err := New(Options{Dir: dir, Command: stormCommand(b), RingbufSize: benchRingSize})
		if err != nil {
			b.Fatal(err)
		}
		if err := rec.AddBuiltin("syscalls"); err != nil {
			b.Fatal(err)
		}
		cpu0 := cpuTime()
		b.StartTimer()
		sum, err := rec.Run(context.Background())
		b.StopTimer()
		cpu := cpuTime() - cpu0
		if err != nil {
			b.Fatal(err)
		}
		info, err := store.Info(dir)
		if err != nil {
			b.Fatal(err)
		}
		s := sum.Streams[0]
		rate += float64(s.Recorded) / info.To.Sub(info.From).Seconds()
		drops += float64(s.Lost())
		cpuPerMev += cpu.Seconds() / (float64(s.Recorded) / 1e6)
		bytesPerEv += float64(info.DiskBytes) / float64(s.Recorded)
	}
	n := float64(b.N)
	b.ReportMetric(bareRate/n, "bare-ev/s")
	b.ReportMetric(rate/n, "ev/s")
	b.ReportMetric(rate/bareRate, "ratio")
	b.ReportMetric(drops/n, "drops")
	b.ReportMetric(bareDrops/n, "bare-drops")
	b.ReportMetric(cpuPerMev/n, "cpu-s/Mev")
	b.ReportMetric(bytesPerEv/n, "B/ev")
}

// benchBareReader reads the same storm with a discarding RingbufReader and
// returns its event rate and the events the kernel dropped.
func benchBareReader(b *testing.B) (rate float64, lost int64) {
	b.Helper()
	f, err := common.NewFilter()
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	t, err := tracers.New("syscalls", tracers.Options{Filter: f, RingbufSize: benchRingSize})
	if err != nil {
		b.Fatal(err)
	}
	defer t.Close()
	if err := tracers.Load(t); err != nil {
		b.Fatal(err)
	}
	links, err := tracers.Attach(t)
	if err != nil {
		b.Fatal(err)
	}
	defer func() {
		for _, l := range links {
			l.Close()
		}
	}()
	if err := f.Restrict(); err != nil {
		b.Fatal(err)
	}
	if err := f.Follow(); err != nil {
		b.Fatal(err)
	}
	s := t.Streams()[0]
	var n atomic.Int64
	var first, last atomic.Int64
	handler := func(_ context.Context, evs []bpf.RingbufEvent) error {
		if first.Load() == 0 {
			first.Store(evs[0].Timestamp.UnixNano())
		}
		last.Store(evs[len(evs)-1].Timestamp.UnixNano())
		n.Add(int64(len(evs)))
		return nil
	}
	cfg := bpf.DefaultRingbufConfig()
	cfg.DropCounter = t.Map(s.DropCounter)
	rd, err := bpf.NewRingbufReader(t.Map(s.Map), s.Name, handler, cfg, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	g, err := startGated(stormCommand(b), nil, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	if err := f.AllowPID(uint32(g.pid())); err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- rd.Start(ctx) }()
	if err := g.release(); err != nil {
		b.Fatal(err)
	}
	if _, err := g.wait(); err != nil {
		b.Fatal(err)
	}
	for _, l := range links {
		l.Close()
	}
	links = nil
	cancel()
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	span := time.Duration(last.Load() - first.Load()).Seconds()
	return float64(n.Load()) / span, rd.Stats().EventsLost
}

// BenchmarkRecordProcCost measures what the proc stream (on by default)
// costs the recorder under the getpid storm: each op records the same storm
// with NoProc and without, in alternating order, and reports both rates and
// their ratio (goal: proc-ratio >= 0.95).
func BenchmarkRecordProcCost(b *testing.B) {
	kerneltest.Require(b)
	var with, without float64
	run := func(noProc bool) float64 {
		dir := filepath.Join(b.TempDir(), "rec")
		rec, err := New(Options{Dir: dir, Command: stormCommand(b), RingbufSize: benchRingSize, NoProc: noProc})
		if err != nil {
			b.Fatal(err)
		}
		if err := rec.AddBuiltin("syscalls"); err != nil {
			b.Fatal(err)
		}
		sum, err := rec.Run(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		info, err := store.Info(dir)
		if err != nil {
			b.Fatal(err)
		}
		var st StreamResult
		for _, s := range sum.Streams {
			if s.Name == "syscalls" {
				st = s
			}
		}
		if st.Lost() != 0 {
			b.Logf("noProc %v: %d events lost", noProc, st.Lost())
		}
		return float64(st.Recorded) / info.To.Sub(info.From).Seconds()
	}
	// The machine's noise moves single runs by 10% and more: the median of
	// the pairs' ratios says more than the ratio of the sums.
	var ratios []float64
	for i := 0; i < b.N; i++ {
		var w, wo float64
		if i%2 == 0 {
			wo = run(true)
			w = run(false)
		} else {
			w = run(false)
			wo = run(true)
		}
		with += w
		without += wo
		ratios = append(ratios, w/wo)
	}
	sort.Float64s(ratios)
	n := float64(b.N)
	b.ReportMetric(without/n, "noproc-ev/s")
	b.ReportMetric(with/n, "proc-ev/s")
	b.ReportMetric(with/without, "proc-ratio")
	b.ReportMetric(ratios[len(ratios)/2], "proc-ratio-median")
}
