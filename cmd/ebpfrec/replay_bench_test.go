package main

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// BenchmarkReplayVsPerfScript compares, per event, `ebpfrec replay` (text
// output) of the demo fixture, which holds the syscalls tracer's events of
// the demo workload among others, with `perf script` on a `perf record` of
// the same workload's raw_syscalls tracepoints, in the same run. Both run as
// processes writing to /dev/null, start-up included. Goal: replay faster per
// event (ratio = perf ns/event ÷ replay ns/event > 1).
//
// It needs perf, root and tracefs (make bench mounts it), and skips
// otherwise.
func BenchmarkReplayVsPerfScript(b *testing.B) {
	perf, err := exec.LookPath("perf")
	if err != nil {
		b.Skip("perf not installed")
	}
	if os.Geteuid() != 0 {
		b.Skip("perf record of tracepoints needs root")
	}
	fixture, _ := filepath.Abs(filepath.Join("..", "..", "fixtures", "demo"))
	if _, err := os.Stat(filepath.Join(fixture, "000001.seg")); err != nil {
		b.Skip("no demo fixture")
	}
	tmp := b.TempDir()
	bin := filepath.Join(tmp, "ebpfrec")
	wl := filepath.Join(tmp, "workload")
	for _, c := range [][]string{{"go", "build", "-o", bin, "."}, {"go", "build", "-o", wl, "../../internal/cmd/workload"}} {
		if out, err := exec.Command(c[0], c[1:]...).CombinedOutput(); err != nil {
			b.Fatalf("%v: %v\n%s", c, err, out)
		}
	}
	data := filepath.Join(tmp, "perf.data")
	rec := exec.Command(perf, "record", "-q", "-o", data, "-e", "raw_syscalls:sys_enter", "-e", "raw_syscalls:sys_exit",
		"--", wl, "demo", filepath.Join(tmp, "demo"))
	if out, err := rec.CombinedOutput(); err != nil {
		b.Skipf("perf record: %v\n%s", err, out)
	}
	lines := func(name string, args ...string) int {
		out, err := exec.Command(name, args...).Output()
		if err != nil {
			b.Fatalf("%s %v: %v", name, args, err)
		}
		n := 0
		for sc := bufio.NewScanner(bytes.NewReader(out)); sc.Scan(); {
			n++
		}
		return n
	}
	perfEvents := lines(perf, "script", "-i", data)
	replayEvents := lines(bin, "replay", fixture)
	if perfEvents == 0 || replayEvents == 0 {
		b.Fatalf("events: perf %d, replay %d", perfEvents, replayEvents)
	}
	devnull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer devnull.Close()
	timed := func(name string, args ...string) time.Duration {
		c := exec.Command(name, args...)
		c.Stdout = devnull
		start := time.Now()
		if err := c.Run(); err != nil {
			b.Fatalf("%s %v: %v", name, args, err)
		}
		return time.Since(start)
	}
	var perfT, replayT time.Duration
	for b.Loop() {
		replayT += timed(bin, "replay", fixture)
		perfT += timed(perf, "script", "-i", data)
	}
	n := float64(b.N)
	replayPer := float64(replayT.Nanoseconds()) / n / float64(replayEvents)
	perfPer := float64(perfT.Nanoseconds()) / n / float64(perfEvents)
	b.ReportMetric(replayPer, "replay_ns/event")
	b.ReportMetric(perfPer, "perf_script_ns/event")
	b.ReportMetric(perfPer/replayPer, "ratio")
	b.ReportMetric(float64(replayEvents), "replay_events")
	b.ReportMetric(float64(perfEvents), "perf_events")
}
