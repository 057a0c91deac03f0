package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ebpfrec/ebpfrec/store"
)

// TestReplayJSONHostileNames: replay --format json writes valid JSON for
// stream and tracer names with control bytes, quotes and invalid UTF-8
// (names come from the traced host or another machine's recording), and
// the names read back as written (invalid UTF-8 as U+FFFD).
func TestReplayJSONHostileNames(t *testing.T) {
	name := "ev\x1b[31mred\a\"q\\\xff\x00"
	tracer := "tr\x7f\u2028日本"
	dir := filepath.Join(t.TempDir(), "rec")
	w, err := store.Create(dir, store.Meta{RecordingID: "json-test",
		Streams: []store.StreamInfo{{Name: name, Tracer: tracer, Kind: store.KindRingbuf}}}, store.WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	if err := w.Append(&store.Batch{Stream: name, Kind: store.KindRingbuf, Events: []store.Event{{Raw: []byte{1, 2}, Timestamp: t0}}}); err != nil {
		t.Fatal(err)
	}
	if err := w.AppendLoss(name, t0, store.Loss{RingbufDropped: 3}); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	out, errOut, code := runReplay(t, "--format", "json", dir)
	if code != 0 {
		t.Fatalf("replay: exit %d: %s", code, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	events := 0
	for _, l := range lines {
		var v map[string]any
		if err := json.Unmarshal([]byte(l), &v); err != nil {
			t.Fatalf("invalid JSON line %q: %v", l, err)
		}
		if v["stream"] != strings.ToValidUTF8(name, "\ufffd") || v["tracer"] != tracer {
			t.Errorf("line %q: stream %q tracer %q, want %q %q", l, v["stream"], v["tracer"], name, tracer)
		}
		if v["type"] == "event" {
			events++
		}
	}
	if events != 1 {
		t.Errorf("%d event lines in %q, want 1", events, out)
	}
}

func FuzzAppendJSONString(f *testing.F) {
	for _, s := range []string{"", "plain", "\x1b[0m", "\"\\", "\xff\xfe", "\u2028", "日本\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		b := appendJSONString(nil, s)
		var got string
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatalf("%q -> %s: %v", s, b, err)
		}
		// encoding/json's rendering is the reference: each invalid byte
		// becomes one U+FFFD.
		ref, _ := json.Marshal(s)
		var want string
		if err := json.Unmarshal(ref, &want); err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Fatalf("%q -> %s -> %q, want %q", s, b, got, want)
		}
	})
}
