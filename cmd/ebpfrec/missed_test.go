package main

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ebpfrec/ebpfrec/internal/lossterms"
	"github.com/ebpfrec/ebpfrec/record"
	"github.com/ebpfrec/ebpfrec/store"
)

// TestKernelMissedShown: kernel_missed, the runs of a stream's programs
// the kernel skipped, is shown by every output that shows loss, as a count
// where the kernel counted them and as "not counted" (replay: "-", JSON
// null) where it did not: record's summary, info, replay (text and JSON)
// and summary (text and JSON). The --help of each explains it.
func TestKernelMissedShown(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "rec")
	t0 := time.Date(2026, 12, 7, 3, 0, 0, 0, time.UTC)
	meta := store.Meta{RecordingID: "missed", KernelRelease: "6.12.0", Started: t0, Streams: []store.StreamInfo{
		{Name: "counted", Map: "a", Kind: store.KindRingbuf, KernelMissedCounted: true},
		{Name: "uncounted", Map: "b", Kind: store.KindRingbuf},
	}}
	w, err := store.Create(dir, meta, store.WriterOptions{Sync: store.SyncNever})
	if err != nil {
		t.Fatal(err)
	}
	for i, s := range []string{"counted", "uncounted"} {
		b := &store.Batch{Stream: s, Kind: store.KindRingbuf, Events: []store.Event{{Raw: []byte("event-1"), Timestamp: t0.Add(time.Millisecond), CPU: -1}}}
		if err := w.Append(b); err != nil {
			t.Fatal(err)
		}
		l := store.Loss{KernelMissed: 7} // 7 runs skipped
		if i == 1 {
			l = store.Loss{RingbufDropped: 3} // its misses not counted
		}
		if err := w.AppendLoss(s, t0.Add(2*time.Millisecond), l); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}

	outputs := map[string]string{}
	run := func(name string, args ...string) {
		stdout, stderr, code := runCmd(t, args...)
		if code != 0 {
			t.Fatalf("%s: exit %d: %s", name, code, stderr)
		}
		outputs[name] = stdout
	}
	run("info", "info", dir)
	run("replay", "replay", dir)
	run("replay json", "replay", "--format", "json", dir)
	run("summary", "summary", dir)
	run("summary json", "summary", "--json", dir)
	var sum bytes.Buffer
	printRecordSummary(&sum, &record.Summary{Dir: "rec", CommandExit: -1, Streams: []record.StreamResult{
		{Name: "counted", Kind: store.KindRingbuf, Recorded: 1, KernelMissed: 7, KernelMissedCounted: true},
		{Name: "uncounted", Kind: store.KindRingbuf, Recorded: 1},
	}})
	outputs["record summary"] = sum.String()
	if testing.Verbose() {
		for n, o := range outputs {
			t.Logf("%s:\n%s", n, o)
		}
	}

	row := func(out, stream string) string {
		for _, l := range strings.Split(out, "\n") {
			if f := strings.Fields(l); len(f) > 0 && f[0] == stream {
				return l
			}
		}
		return ""
	}
	for name, c := range map[string]struct{ counted, uncounted string }{
		"info":           {row(outputs["info"], "counted"), row(outputs["info"], "uncounted")},
		"record summary": {row(outputs["record summary"], "counted"), row(outputs["record summary"], "uncounted")},
	} {
		if !strings.HasSuffix(c.counted, " 7") || !strings.HasSuffix(c.uncounted, " "+lossterms.NotCounted) ||
			!strings.Contains(outputs[name], strings.ToUpper(lossterms.KernelMissed)) && !strings.Contains(outputs[name], lossterms.KernelMissed) {
			t.Errorf("%s: the kernel_missed column is not 7 and %q:\n%s", name, lossterms.NotCounted, outputs[name])
		}
	}
	for name, ws := range map[string][]string{
		"replay":         {"LOSS stream=counted kernel_lost_perfbuf_total=0 kernel_lost_ringbuf_total=0 ebpfrec_dropped_total=0 kernel_missed_total=7\n", "LOSS stream=uncounted kernel_lost_perfbuf_total=0 kernel_lost_ringbuf_total=3 ebpfrec_dropped_total=0 kernel_missed_total=-\n"},
		"replay json":    {`"stream":"counted"`, `"kernel_missed_total":7}`, `"kernel_missed_total":null}`},
		"summary":        {"counted: 7 not recorded (kernel_lost_perfbuf 0, kernel_lost_ringbuf 0, ebpfrec_dropped 0, kernel_missed 7)", "uncounted: 3 not recorded (kernel_lost_perfbuf 0, kernel_lost_ringbuf 3, ebpfrec_dropped 0)\n", "kernel_missed not counted (runs the kernel skipped): uncounted\n"},
		"summary json":   {`"kernel_missed": 7`, `"kernel_missed_counted": true`, `"kernel_missed_uncounted": [`},
		"record summary": {"warning: the kernel skipped runs of the programs"},
	} {
		for _, w := range ws {
			if !strings.Contains(outputs[name], w) {
				t.Errorf("%s does not say %q:\n%s", name, w, outputs[name])
			}
		}
	}
	for _, cmd := range []string{"record", "replay", "summary", "info"} {
		stdout, _, _ := runCmd(t, cmd, "--help")
		if !strings.Contains(stdout, lossterms.KernelMissed+"  ") {
			t.Errorf("%s --help does not explain %s:\n%s", cmd, lossterms.KernelMissed, stdout)
		}
	}
}
