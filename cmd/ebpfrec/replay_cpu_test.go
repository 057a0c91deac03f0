package main

import (
	"encoding/binary"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	execTracer "github.com/ebpfrec/ebpfrec/bpf/tracers/exec"
	tcpTracer "github.com/ebpfrec/ebpfrec/bpf/tracers/tcp"
	"github.com/ebpfrec/ebpfrec/store"
)

// TestReplayEventCPU: a ring buffer stream's batches give no CPU, so
// replay shows the CPU the event records (issue 14): [003] in text, "cpu":3
// once in JSON; events of the earlier layouts, without it (560 bytes, and
// the 304 bytes of v1, which replay refused before), show [---] and null.
func TestReplayEventCPU(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "rec")
	w, err := store.Create(dir, store.Meta{RecordingID: "cpu-test",
		Streams: []store.StreamInfo{{Name: "exec", Tracer: execTracer.Name, Map: execTracer.MapEvents, Kind: store.KindRingbuf, EventType: execTracer.EventType}}},
		store.WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	raw := make([]byte, execTracer.EventSize)
	binary.NativeEndian.PutUint64(raw, 1e9)
	binary.NativeEndian.PutUint32(raw[8:], 42)
	copy(raw[24:], "cpuer\x00")
	copy(raw[40:], "/bin/cpuer\x00")
	binary.NativeEndian.PutUint32(raw[560:], 3)
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	evs := []store.Event{{Raw: raw, Timestamp: t0, CPU: -1}, {Raw: raw[:560], Timestamp: t0, CPU: -1}, {Raw: raw[:304], Timestamp: t0, CPU: -1}}
	if err := w.Append(&store.Batch{Stream: "exec", Kind: store.KindRingbuf, Events: evs}); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	out, errOut, code := runReplay(t, dir)
	if code != 0 {
		t.Fatalf("replay: exit %d: %s", code, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || !strings.Contains(lines[0], " [003] 42 cpuer exec: ") || !strings.Contains(lines[1], " [---] 42 cpuer exec: ") ||
		!strings.Contains(lines[2], " [---] 42 cpuer exec: filename=/bin/cpuer") {
		t.Fatalf("text lines %q: want [003] then [---] twice", lines)
	}
	out, errOut, code = runReplay(t, "--format", "json", dir)
	if code != 0 {
		t.Fatalf("replay json: exit %d: %s", code, errOut)
	}
	lines = strings.Split(strings.TrimSpace(out), "\n")
	for i, want := range []any{3.0, nil, nil} {
		if strings.Count(lines[i], `"cpu":`) != 1 {
			t.Errorf("line %q: want one cpu key", lines[i])
		}
		var v map[string]any
		if err := json.Unmarshal([]byte(lines[i]), &v); err != nil {
			t.Fatal(err)
		}
		if v["cpu"] != want || v["comm"] != "cpuer" {
			t.Errorf("line %q: cpu %v, want %v", lines[i], v["cpu"], want)
		}
	}
}

// TestReplayUnknownOwner: a tcp event whose owner the tracer could not
// know (pid 0, comm "") prints "- -" where the pid and comm go, not a
// process 0.
func TestReplayUnknownOwner(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "rec")
	w, err := store.Create(dir, store.Meta{RecordingID: "owner-test",
		Streams: []store.StreamInfo{{Name: "tcp", Tracer: tcpTracer.Name, Map: tcpTracer.MapEvents, Kind: store.KindRingbuf, EventType: tcpTracer.EventType}}},
		store.WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	raw := make([]byte, tcpTracer.EventSize)
	binary.NativeEndian.PutUint64(raw, 1e9)
	binary.NativeEndian.PutUint16(raw[20:], tcpTracer.AFInet)
	raw[26], raw[27] = tcpTracer.Established, tcpTracer.CloseWait
	binary.NativeEndian.PutUint32(raw[80:], 1)
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	if err := w.Append(&store.Batch{Stream: "tcp", Kind: store.KindRingbuf, Events: []store.Event{{Raw: raw, Timestamp: t0, CPU: -1}}}); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	out, errOut, code := runReplay(t, dir)
	if code != 0 {
		t.Fatalf("replay: exit %d: %s", code, errOut)
	}
	if !strings.Contains(out, " [001] - - tcp: ") {
		t.Fatalf("replay printed %q, want [001] - - tcp:", out)
	}
}
