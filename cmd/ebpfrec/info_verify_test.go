package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ebpfrec/ebpfrec/analyze"
	"github.com/ebpfrec/ebpfrec/replay/replaytest"
	"github.com/ebpfrec/ebpfrec/store"
)

// markerBatch is the batch of makeRecording whose event 2 holds
// markerEvent, a payload found nowhere else in the recording, so that a
// test can damage exactly that recorded event.
const markerBatch = 151

// markerEvent is the unique payload (100 bytes, like the other events):
// each half is unique on its own, so that one of them is found whole even
// if the event straddles two log chunks.
var markerEvent = []byte("MARKER-A:ebpfrec verify test, the damaged event-" + "MARKER-B:ebpfrec verify test, the damaged event-")

// makeRecording writes a small two-stream recording with a few segments.
func makeRecording(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "rec")
	w, err := store.Create(dir, store.Meta{
		RecordingID: "cli-test", Hostname: "h", KernelRelease: "6.1", ToolVersion: "test",
		Streams: []store.StreamInfo{
			{Name: "exec", Tracer: "exec", Map: "events", Kind: store.KindRingbuf, EventType: "exec_event"},
			{Name: "sys", Tracer: "syscalls", Map: "perf", Kind: store.KindPerfbuf, EventType: "sys_event"},
		},
	}, store.WriterOptions{MaxSegmentBytes: 64 << 10, Sync: store.SyncNever, Uncompressed: true})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for i := 0; i < 300; i++ {
		b := &store.Batch{Stream: "exec", Kind: store.KindRingbuf, Loss: store.Loss{RingbufDropped: uint64(i)}}
		if i%2 == 1 {
			b.Stream, b.Kind = "sys", store.KindPerfbuf
		}
		for j := 0; j < 5; j++ {
			raw := bytes.Repeat([]byte{byte(i), byte(j)}, 50)
			if i == markerBatch && j == 2 {
				raw = markerEvent
			}
			b.Events = append(b.Events, store.Event{Raw: raw, Timestamp: t0.Add(time.Duration(i) * time.Millisecond), CPU: j % 2})
		}
		if err := w.Append(b); err != nil {
			t.Fatal(err)
		}
		if i == markerBatch && b.Seq != markerBatch+1 {
			t.Fatalf("marker batch has sequence number %d, want %d", b.Seq, markerBatch+1)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return dir
}

func runCLI(t *testing.T, args ...string) (string, int) {
	t.Helper()
	app := newApp()
	var out bytes.Buffer
	app.Writer = &out
	app.ErrWriter = &out
	code := 0
	if err := app.Run(flagsFirst(app, append([]string{"ebpfrec"}, args...))); err != nil {
		code = exitFailure
		if ec, ok := err.(interface{ ExitCode() int }); ok {
			code = ec.ExitCode()
		}
		out.WriteString(err.Error())
	}
	return out.String(), code
}

func TestInfoCommand(t *testing.T) {
	dir := makeRecording(t)
	out, code := runCLI(t, "info", dir)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, out)
	}
	for _, want := range []string{"cli-test", "300 batches, 1500 events", "exec", "ringbuf", "sys", "perfbuf", "history"} {
		if !strings.Contains(out, want) {
			t.Errorf("info output lacks %q:\n%s", want, out)
		}
	}
	out, code = runCLI(t, "info", "--json", dir)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, out)
	}
	var s store.Summary
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		t.Fatalf("info --json: %v\n%s", err, out)
	}
	if s.Batches != 300 || s.Events != 1500 || len(s.Streams) != 2 || s.Streams[0].Loss.RingbufDropped != 298 {
		t.Fatalf("info --json: %+v", s)
	}
}

func TestVerifyCommand(t *testing.T) {
	dir := makeRecording(t)
	out, code := runCLI(t, "verify", dir)
	if code != 0 || !strings.Contains(out, "ok: ") {
		t.Fatalf("exit %d: %s", code, out)
	}
	out, code = runCLI(t, "verify", "--json", dir)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, out)
	}
	var rep struct {
		OK      bool `json:"ok"`
		Batches int  `json:"batches"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil || !rep.OK || rep.Batches != 300 {
		t.Fatalf("verify --json: %v %+v\n%s", err, rep, out)
	}
	// Damage the marker event, a payload that appears exactly once in the
	// whole recording: verify names its segment and batch, exits 1.
	segs, err := filepath.Glob(filepath.Join(dir, "*.seg"))
	if err != nil || len(segs) < 3 {
		t.Fatalf("want at least 3 segments, got %v (%v)", segs, err)
	}
	seg, at := "", -1
	var data []byte
	for _, half := range [][]byte{markerEvent[:40], markerEvent[50:90]} {
		n := 0
		for _, p := range segs {
			d, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			if c := bytes.Count(d, half); c > 0 {
				n += c
				seg, at, data = p, bytes.Index(d, half), d
			}
		}
		if n > 1 {
			t.Fatalf("marker %q found %d times", half, n)
		}
		if n == 1 {
			break
		}
	}
	if at < 0 {
		t.Fatal("marker event not found in any segment")
	}
	data[at+20] ^= 0x80
	if err := os.WriteFile(seg, data, 0o600); err != nil {
		t.Fatal(err)
	}
	wantMsg := "store: segment " + strings.TrimSuffix(filepath.Base(seg), ".seg") + ": batch " + strconv.Itoa(markerBatch+1) + ": crc mismatch"
	out, code = runCLI(t, "verify", dir)
	if code != exitFailure || !strings.Contains(out, wantMsg) {
		t.Fatalf("verify of a damaged recording: exit %d: %s", code, out)
	}
	out, code = runCLI(t, "verify", "--json", dir)
	if code != exitFailure || !strings.Contains(out, `"ok": false`) {
		t.Fatalf("verify --json of a damaged recording: exit %d: %s", code, out)
	}
}

func TestInfoVerifyUsage(t *testing.T) {
	for _, args := range [][]string{
		{"ebpfrec", "info"},
		{"ebpfrec", "verify"},
		{"ebpfrec", "info", "a", "b"},
		{"ebpfrec", "verify", "--no-such-flag", "x"},
	} {
		if code := run(args); code != exitUsage {
			t.Errorf("%v: exit %d, want %d", args, code, exitUsage)
		}
	}
	if code := run([]string{"ebpfrec", "info", filepath.Join(t.TempDir(), "missing")}); code != exitFailure {
		t.Errorf("info of a missing recording: exit %d, want %d", code, exitFailure)
	}
}

// TestRunningRecordingVisible: info, verify, summary, query and replay of
// a recording whose recorder is still writing (its only segment open) see
// everything committed, and say that it is still being written.
func TestRunningRecordingVisible(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "rec")
	const n = 40
	defer replaytest.Running(t, dir, n, store.WriterOptions{FlushInterval: time.Hour})()

	// What the finished recording will hold: every batch is committed.
	ref := filepath.Join(t.TempDir(), "ref")
	replaytest.Generate(t, ref, n, store.WriterOptions{})

	out, errOut, code := runCmd(t, "info", dir)
	if code != 0 || !strings.Contains(out, "being written: counted up to the recorder's last commit") {
		t.Fatalf("info (exit %d): %s%s", code, out, errOut)
	}
	out, errOut, code = runCmd(t, "verify", dir)
	if code != 0 || !strings.Contains(out, "note: segment 000001: being written: checked as of its last commit") || !strings.Contains(out, "ok: ") {
		t.Fatalf("verify (exit %d): %s%s", code, out, errOut)
	}
	out, errOut, code = runCmd(t, "summary", "--json", dir)
	if code != 0 || !strings.Contains(errOut, analyze.LiveWarning) || strings.Contains(out, `"events": 0,`) {
		t.Fatalf("summary (exit %d): %s%s", code, out, errOut)
	}
	want, _, _ := runCmd(t, "replay", ref)
	out, errOut, code = runCmd(t, "replay", dir)
	if code != 0 || out != want {
		t.Fatalf("replay of the running recording (exit %d) differs from the finished one's; stderr %s", code, errOut)
	}
}
