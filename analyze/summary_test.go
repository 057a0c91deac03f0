package analyze

import (
	"bytes"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ebpfrec/ebpfrec/bpf/tracers/open"
	"github.com/ebpfrec/ebpfrec/replay/replaytest"
	"github.com/ebpfrec/ebpfrec/store"
)

func TestSummarize(t *testing.T) {
	rec, want := mixed(t)
	s, err := Summarize(t.Context(), rec, SummaryOptions{Top: 3})
	if err != nil {
		t.Fatal(err)
	}
	if s.Events != uint64(want.Events) || !s.From.Equal(want.First) || !s.To.Equal(want.Last) || s.Host != "web-1" {
		t.Errorf("events %d (want %d), range %v..%v (want %v..%v), host %q", s.Events, want.Events, s.From, s.To, want.First, want.Last, s.Host)
	}
	if s.Execs != 200 || s.Exits != uint64(want.Exits) || s.Killed != uint64(want.Signaled) {
		t.Errorf("execs %d exits %d killed %d", s.Execs, s.Exits, s.Killed)
	}
	if len(s.TopExecs) == 0 || s.TopExecs[0] != (NameCount{"/usr/bin/curl", 100}) {
		t.Errorf("top execs %v", s.TopExecs)
	}
	if len(s.TopFiles) != 3 || s.TopFiles[0].Path != "/etc/hosts" || s.TopFiles[0].Opens != 50 {
		t.Errorf("top files %+v", s.TopFiles)
	}
	s2, _ := Summarize(t.Context(), rec, SummaryOptions{Top: 10})
	var failed []string
	for _, f := range s2.TopFiles {
		if f.Failed > 0 {
			failed = append(failed, f.Path+":"+strings.Join(f.Errors, ","))
		}
	}
	if strings.Join(failed, " ") != "/nonexistent:ENOENT /root/secret:EACCES" {
		t.Errorf("failed opens %v", failed)
	}
	if len(s.TCPPeers) != 2 || s.TCPPeers[0].Sockets != 50 || s.TCPPeers[0].Events != 100 {
		t.Errorf("peers %+v", s.TCPPeers)
	}
	peers := map[string]bool{}
	for _, p := range s.TCPPeers {
		peers[p.Peer] = true
	}
	for p := range want.Peers {
		if !peers[p] {
			t.Errorf("peer %s missing", p)
		}
	}
	if len(s.TopProcesses) != 3 || s.TopProcesses[0].Comm == "" {
		t.Errorf("top processes %+v", s.TopProcesses)
	}
	// Loss: exec ring buffer drops and exit perf samples (counted once).
	if len(s.Loss) != 2 || s.Loss[0].Stream != "exec" || s.Loss[0].KernelLostRingbuf != want.LossRing ||
		s.Loss[1].Stream != "exit" || s.Loss[1].KernelLostPerfbuf != want.PerfLost {
		t.Fatalf("loss %+v", s.Loss)
	}
	for _, l := range s.Loss {
		var sum uint64
		for _, b := range l.Series {
			sum += b.Lost
		}
		if sum != l.Total() {
			t.Errorf("%s: series sums to %d, total %d", l.Stream, sum, l.Total())
		}
	}
	if len(s.Warnings) != 2 || !strings.Contains(s.Warnings[0], "stream exec: 16 events not recorded (kernel_lost_perfbuf 0, kernel_lost_ringbuf 16, ebpfrec_dropped 0)") {
		t.Errorf("warnings %q", s.Warnings)
	}
	var buf bytes.Buffer
	if err := s.WriteText(&buf); err != nil {
		t.Fatal(err)
	}
	for _, x := range []string{"execs: 200", "/usr/bin/curl", "10.0.0.1:443", "[2001:db8::1]:8080", "exec: 16 not recorded (kernel_lost_perfbuf 0, kernel_lost_ringbuf 16, ebpfrec_dropped 0)"} {
		if !strings.Contains(buf.String(), x) {
			t.Errorf("text lacks %q:\n%s", x, buf.String())
		}
	}
}

func TestSummarizeDamaged(t *testing.T) {
	src, _ := mixed(t)
	rec := copyRecording(t, src)
	damage(t, rec)
	s, err := Summarize(t.Context(), rec, SummaryOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if s.DamagedBatches == 0 || !strings.Contains(strings.Join(s.Warnings, "\n"), "damaged") {
		t.Errorf("damaged %d, warnings %q", s.DamagedBatches, s.Warnings)
	}
}

func TestProgress(t *testing.T) {
	rec, want := mixed(t)
	var last Progress
	calls := 0
	export(t, rec, Options{Progress: func(p Progress) { last = p; calls++ }})
	if calls < 2 || last.Events != uint64(want.Events) || last.TotalEvents != uint64(want.Events) {
		t.Errorf("%d calls, last %+v", calls, last)
	}
}

// TestSummarizeRetention: a flight recorder's summary says what retention
// deleted (it said nothing: its counts read as the whole recording), with
// the counts of what remains and of what was deleted adding up to what
// was written.
func TestSummarizeRetention(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "rec")
	const n = 3001
	replaytest.Generate(t, dir, n, store.WriterOptions{MaxSegmentBytes: 64 << 10, FlushInterval: time.Hour, KeepSegments: 2, Sync: store.SyncNever})
	s, err := Summarize(t.Context(), dir, SummaryOptions{})
	if err != nil {
		t.Fatal(err)
	}
	d := s.Deleted
	if d == nil || d.Segments == 0 || d.Batches == 0 {
		t.Fatalf("deleted %+v: want the history retention deleted", d)
	}
	// The batches left and those deleted are the batches written.
	if s.Batches+d.Batches != n {
		t.Errorf("%d batches left + %d deleted, want the %d written", s.Batches, d.Batches, n)
	}
	var text strings.Builder
	if err := s.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("history:   starts after what retention deleted: %d events in %d batches (%d segment(s))", d.Events, d.Batches, d.Segments); !strings.Contains(text.String(), want) {
		t.Errorf("text does not say %q:\n%s", want, text.String())
	}
}

// TestSummaryErrnoNames: failed opens are named by the tracers' one errno
// table (tracers.ErrnoName), every errno, not only those a list of the
// summary's own knew: EINVAL is "EINVAL", not "errno 22".
func TestSummaryErrnoNames(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "rec")
	meta := replaytest.Meta()
	meta.Streams = append(meta.Streams, store.StreamInfo{Name: open.StreamOpen, Tracer: open.Name, Map: "open_events", Kind: store.KindRingbuf, EventType: open.EventType})
	w, err := store.Create(dir, meta, store.WriterOptions{Sync: store.SyncNever})
	if err != nil {
		t.Fatal(err)
	}
	var evs []store.Event
	for i, ret := range []int32{-22, -2, -22} {
		kt := uint64(replaytest.Mono) + uint64(i)*1000
		evs = append(evs, store.Event{Raw: replaytest.OpenRaw(kt, 10, 100, open.NROpenat, ret, "cat", "/etc/x"), Timestamp: replaytest.Start.Add(time.Second), CPU: -1})
	}
	if err := w.Append(&store.Batch{Stream: open.StreamOpen, Kind: store.KindRingbuf, Events: evs}); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	s, err := Summarize(t.Context(), dir, SummaryOptions{Top: 3})
	if err != nil {
		t.Fatal(err)
	}
	if len(s.TopFiles) != 1 || s.TopFiles[0].Failed != 3 || strings.Join(s.TopFiles[0].Errors, ",") != "EINVAL,ENOENT" {
		t.Errorf("top files %+v, want /etc/x with 3 failed opens, EINVAL and ENOENT", s.TopFiles)
	}
}
