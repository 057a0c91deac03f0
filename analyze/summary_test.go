package analyze

import (
	"bytes"
	"strings"
	"testing"
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
	if len(s.Loss) != 2 || s.Loss[0].Stream != "exec" || s.Loss[0].RingbufDropped != want.LossRing ||
		s.Loss[1].Stream != "exit" || s.Loss[1].KernelLost != want.PerfLost {
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
	if len(s.Warnings) != 2 || !strings.Contains(s.Warnings[0], "stream exec lost 16") {
		t.Errorf("warnings %q", s.Warnings)
	}
	var buf bytes.Buffer
	if err := s.WriteText(&buf); err != nil {
		t.Fatal(err)
	}
	for _, x := range []string{"execs: 200", "/usr/bin/curl", "10.0.0.1:443", "[2001:db8::1]:8080", "exec: 16 lost"} {
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
