// Package cmdtest holds what the tests of ebpfrec and of its companion
// ebpfrec-query share: the repository's fixtures, a recording full of
// hostile text with the checks of what reaches a terminal, the loss words
// of old, and a buffer two goroutines can share.
package cmdtest

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	execTracer "github.com/ebpfrec/ebpfrec/bpf/tracers/exec"
	"github.com/ebpfrec/ebpfrec/bpf/tracers/exit"
	"github.com/ebpfrec/ebpfrec/bpf/tracers/open"
	"github.com/ebpfrec/ebpfrec/bpf/tracers/syscalls"
	"github.com/ebpfrec/ebpfrec/replay/replaytest"
	"github.com/ebpfrec/ebpfrec/store"
)

// Fixture returns the path of the fixture recording name, from a command's
// folder (cmd/NAME).
func Fixture(t testing.TB, name string) string {
	t.Helper()
	dir := filepath.Join("..", "..", "fixtures", name)
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("fixture %s: %v", name, err)
	}
	return dir
}

// OldLossWords are the names that losses had before they had one
// vocabulary: ring buffer losses happen in the kernel, and were called
// "dropped" in some outputs and "lost" in others.
var OldLossWords = regexp.MustCompile(`(?i)ringbuf[ _]dropped|user[ _]dropped|kernel[ _]lost\b[^_]|lost \d+ dropped|ring buffer \d+|user space \d+|kernel_lost=|kernel_lost"`)

// LockedBuffer is a bytes.Buffer for a writer and a reader goroutine.
type LockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Write appends p.
func (l *LockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

// String returns what was written so far.
func (l *LockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// What a traced host (or whoever wrote a recording) can put into the names
// and values of a recording: escape sequences (colour, window title, the
// clipboard through OSC 52, clear screen), bidi overrides, newlines and
// carriage returns, C1 controls, bytes that are not UTF-8.
const (
	HComm      = "sh\x1b[31m\u202e"             // colour, bidi override (10 of comm's 15 bytes)
	HFilename  = "/tmp/\x1b]52;c;ZXZpbA==\a\nx" // OSC 52 sets the clipboard; a newline
	HArg       = "echo\r\u202e\xff"             // carriage return, bidi, not UTF-8
	HPath      = "/etc/\x1b[8m\u2066x\r\n\xfe"  // hidden text, bidi isolate, CR LF
	HOpenComm  = "c\u009b\n\xff"                // C1 CSI, newline, not UTF-8
	HExitComm  = "x\x1b]0;t\a"                  // window title
	HRaw       = "raw\r\xff\n\u202e"            // stream names (built-in tracers decode only their own)
	HSys       = "sys\t\x1b[7m"                 // a built-in tracer's stream of another layout: a warning names it
	HHost      = "host\x1b]0;t\a"
	HKernel    = "6.1\u202egnp"
	HTool      = "v\xff\u0085" // C1 NEL
	HArgv      = "--x\n\u2028"
	HRecording = "rec\x1b[1m\u202e" // the recording folder's own name
	HObject    = "/opt/\x1b[5mobj.o"
	HMsgTracer = "my\u009bobj"
	HEventType = "t\x1b[2J"
	HSeparator = "\u2029"
)

// HostileRecording writes a recording whose names and values hold every
// kind of hostile text above, in a folder whose name holds some too.
func HostileRecording(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), HRecording)
	start := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	const mono = int64(7_000_000_000_000)
	w, err := store.Create(dir, store.Meta{
		RecordingID: "hostile", Hostname: HHost, KernelRelease: HKernel, ToolVersion: HTool,
		CommandLine: []string{"ebpfrec", "record", HArgv}, Started: start, MonoToWall: start.UnixNano() - mono,
		Streams: []store.StreamInfo{
			{Name: "exec", Tracer: execTracer.Name, Map: "m" + HSeparator, Kind: store.KindRingbuf, EventType: execTracer.EventType},
			{Name: "open", Tracer: open.Name, Map: "m", Kind: store.KindRingbuf, EventType: open.EventType},
			{Name: "exit", Tracer: exit.Name, Map: "m", Kind: store.KindPerfbuf, EventType: exit.EventType},
			{Name: HSys, Tracer: syscalls.Name, Map: "m", Kind: store.KindRingbuf, EventType: syscalls.EventType + "/0"},
			{Name: HRaw, Tracer: HMsgTracer, Map: "m", Kind: store.KindRingbuf, EventType: HEventType,
				Object: &store.ObjectInfo{Path: HObject, SHA256: "00", BTFType: HEventType}},
		},
	}, store.WriterOptions{Sync: store.SyncNever})
	if err != nil {
		t.Fatal(err)
	}
	kt := func(i int) uint64 { return uint64(mono) + uint64(i)*1_000_000 }
	at := func(i int) time.Time { return start.Add(time.Duration(i) * time.Millisecond) }
	batches := []*store.Batch{
		{Stream: "exec", Kind: store.KindRingbuf, Events: []store.Event{
			{Raw: replaytest.ExecRaw(kt(1), 100, 1, 0, HComm, HFilename, "sh", "-c", HArg), Timestamp: at(1), CPU: -1}}},
		{Stream: "open", Kind: store.KindRingbuf, Events: []store.Event{
			{Raw: replaytest.OpenRaw(kt(2), 10, 101, open.NROpenat, -2, HOpenComm, HPath), Timestamp: at(2), CPU: -1},
			{Raw: replaytest.OpenRaw(kt(3), 10, 100, open.NROpenat, 3, HComm, HPath), Timestamp: at(3), CPU: -1}}},
		{Stream: "exit", Kind: store.KindPerfbuf, Events: []store.Event{
			{Raw: replaytest.ExitRaw(kt(4), 5, 100, 1, 0, HExitComm), Timestamp: at(4), CPU: 1}}},
		{Stream: HSys, Kind: store.KindRingbuf, Events: []store.Event{{Raw: []byte{1, 2, 3}, Timestamp: at(5), CPU: -1}}},
		{Stream: HRaw, Kind: store.KindRingbuf, Events: []store.Event{{Raw: []byte("\x1b[31m"), Timestamp: at(6), CPU: -1}}},
	}
	for _, b := range batches {
		if err := w.Append(b); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.AppendLoss(HRaw, at(7), store.Loss{RingbufDropped: 2}); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return dir
}

// RawControl returns the offset of the first thing in s that a terminal
// could act on, other than a newline: a C0 control (tab and carriage
// return included), DEL, a byte that is not UTF-8, a C1 control, a bidi
// control or a line or paragraph separator; -1 if there is none. (Written
// here on its own, not with the code under test.)
func RawControl(s string) int {
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1,
			r < 0x20 && r != '\n', r >= 0x7f && r <= 0x9f,
			r == 0x061c, r == 0x200e, r == 0x200f, r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069,
			r == 0x2028, r == 0x2029:
			return i
		}
		i += size
	}
	return -1
}

// ToValid returns s with each byte that is not UTF-8 as U+FFFD, as JSON, the
// store's metadata and the export write it.
func ToValid(s string) string {
	var b strings.Builder
	for _, r := range s {
		b.WriteRune(r)
	}
	return b.String()
}

// CheckNoRaw fails t if s holds anything RawControl finds, naming what.
func CheckNoRaw(t *testing.T, what, s string) {
	t.Helper()
	if i := RawControl(s); i >= 0 {
		lo, hi := max(i-40, 0), min(i+40, len(s))
		t.Errorf("%s: raw control at byte %d: ...%q...", what, i, s[lo:hi])
	}
}

// CheckJSONValues decodes out (one JSON document, or JSON lines) and checks
// that it holds hostile names exactly (as valid UTF-8: bytes that are not
// UTF-8 read back as U+FFFD).
func CheckJSONValues(t *testing.T, name, out string) {
	t.Helper()
	var docs []any
	dec := json.NewDecoder(strings.NewReader(out))
	for dec.More() {
		var v any
		if err := dec.Decode(&v); err != nil {
			t.Errorf("%s: invalid JSON: %v\n%s", name, err, out)
			return
		}
		docs = append(docs, v)
	}
	seen := map[string]bool{}
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case string:
			seen[v] = true
		case []any:
			for _, e := range v {
				walk(e)
			}
		case map[string]any:
			for _, e := range v {
				walk(e)
			}
		}
	}
	walk(docs)
	found := 0
	for _, h := range []string{HComm, HFilename, HPath, HOpenComm, HExitComm, HSys, HRaw, HHost, HKernel, HTool, HArgv, HMsgTracer, HRecording} {
		for s := range seen {
			if strings.Contains(s, ToValid(h)) {
				found++
			}
		}
	}
	if found == 0 {
		t.Errorf("%s: no hostile value read back exactly from the JSON:\n%s", name, out)
	}
}

// Run is a command run on the hostile recording (or its export), and what
// its output must hold.
type Run struct {
	Args []string
	Code int      // exit code
	JSON bool     // stdout is JSON (one document or lines)
	CSV  bool     // stdout is CSV: exact data, not checked for controls
	Want []string // escaped forms expected on stdout+stderr
}

// Check checks what the run printed and its exit code: the code wanted,
// nothing raw on stderr (nor on stdout but for CSV), every escaped form
// wanted, and JSON holding hostile values exactly.
func (r Run) Check(t *testing.T, stdout, stderr string, code int) {
	t.Helper()
	name := strings.Join(r.Args[:min(3, len(r.Args))], " ")
	if code != r.Code {
		t.Errorf("%q: exit %d, want %d; stderr: %q", r.Args, code, r.Code, stderr)
	}
	CheckNoRaw(t, name+": stderr", stderr)
	if !r.CSV {
		CheckNoRaw(t, name+": stdout", stdout)
	}
	for _, w := range r.Want {
		if !strings.Contains(stdout+stderr, w) {
			t.Errorf("%s: output lacks %q:\n%s%s", name, w, stdout, stderr)
		}
	}
	if r.JSON {
		CheckJSONValues(t, name, stdout)
	}
}
