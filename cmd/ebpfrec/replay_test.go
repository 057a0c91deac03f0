package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/ebpfrec/ebpfrec/replay/replaytest"
	"github.com/ebpfrec/ebpfrec/store"
)

var updateReplay = flag.Bool("update-replay", false, "rewrite the golden files of the replay command (testdata/replay.*)")

// replayRecording makes the synthetic recording of the replay golden tests.
func replayRecording(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "rec")
	replaytest.Generate(t, dir, 40, store.WriterOptions{MaxSegmentBytes: 64 << 10, FlushBytes: 4 << 10})
	return dir
}

// runReplay runs the app with args and returns stdout, stderr and the exit
// code.
func runReplay(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	app := newApp()
	var out, errOut bytes.Buffer
	app.Writer, app.ErrWriter = &out, &errOut
	err := app.Run(append([]string{"ebpfrec", "replay"}, args...))
	code := 0
	if err != nil {
		var ec cli.ExitCoder
		if errors.As(err, &ec) {
			code = ec.ExitCode()
			errOut.WriteString(err.Error())
		} else {
			code = exitFailure
			errOut.WriteString(err.Error())
		}
	}
	return out.String(), errOut.String(), code
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *updateReplay {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -run %s -update-replay to create it)", err, t.Name())
	}
	if got != string(want) {
		gl, wl := strings.Split(got, "\n"), strings.Split(string(want), "\n")
		for i := range min(len(gl), len(wl)) {
			if gl[i] != wl[i] {
				t.Fatalf("%s: line %d differs:\n got %s\nwant %s", path, i+1, gl[i], wl[i])
			}
		}
		t.Fatalf("%s: %d lines, want %d", path, len(gl), len(wl))
	}
}

func TestReplayTextGolden(t *testing.T) {
	dir := replayRecording(t)
	out, errOut, code := runReplay(t, dir)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	golden(t, "replay.txt", out)
}

func TestReplayJSONGolden(t *testing.T) {
	dir := replayRecording(t)
	out, errOut, code := runReplay(t, "--format", "json", dir)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for i, line := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("line %d is not JSON: %v: %s", i+1, err, line)
		}
		for _, k := range []string{"type", "time", "cpu", "stream", "tracer", "seq"} {
			if _, ok := m[k]; !ok {
				t.Fatalf("line %d lacks %q: %s", i+1, k, line)
			}
		}
	}
	golden(t, "replay.jsonl", out)
}

func TestReplayFilters(t *testing.T) {
	dir := replayRecording(t)
	all, _, _ := runReplay(t, dir)
	out, errOut, code := runReplay(t, "--stream", "exit", dir)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var want []string
	for _, l := range strings.Split(all, "\n") {
		if strings.Contains(l, " exit: ") || strings.Contains(l, "LOSS stream=exit ") {
			want = append(want, l)
		}
	}
	if got := strings.Split(strings.TrimSuffix(out, "\n"), "\n"); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("--stream exit:\n%s\nwant\n%s", out, strings.Join(want, "\n"))
	}
	// Offsets from the recording's start: the synthetic batches start
	// 11 ms after it, one every 1 to 5 ms.
	out, _, code = runReplay(t, "--from", "+40ms", "--to", "+60ms", dir)
	if code != 0 || out == "" || len(out) >= len(all) {
		t.Fatalf("--from/--to: exit %d, %d of %d bytes", code, len(out), len(all))
	}
	out2, _, _ := runReplay(t, "--from", replaytest.Start.Add(40e6).Format("2006-01-02T15:04:05.999999999Z07:00"),
		"--to", replaytest.Start.Add(60e6).Format("2006-01-02T15:04:05.999999999Z07:00"), dir)
	if out2 != out {
		t.Fatalf("RFC 3339 and offsets disagree:\n%s\n%s", out, out2)
	}
}

func TestReplayUsageErrors(t *testing.T) {
	dir := replayRecording(t)
	for _, args := range [][]string{
		{},
		{dir, dir},
		{"--format", "xml", dir},
		{"--speed", "-1", dir},
		{"--from", "yesterday", dir},
		{"--from", "+1s", "--to", "+1s", dir},
		{"--stream", "nope", dir},
	} {
		if _, errOut, code := runReplay(t, args...); code != exitUsage {
			t.Errorf("%v: exit %d, want %d (%s)", args, code, exitUsage, errOut)
		}
	}
	if _, _, code := runReplay(t, filepath.Join(t.TempDir(), "missing")); code != exitFailure {
		t.Errorf("missing recording: exit %d, want %d", code, exitFailure)
	}
}

// TestReplayClosedPipe runs the command into | head -n 1: it must end
// quietly with status 0.
func TestReplayClosedPipe(t *testing.T) {
	if os.Getenv("EBPFREC_REPLAY_PIPE") != "" {
		os.Exit(run([]string{"ebpfrec", "replay", os.Getenv("EBPFREC_REPLAY_PIPE")}))
	}
	dir := filepath.Join(t.TempDir(), "rec")
	replaytest.Generate(t, dir, 3000, store.WriterOptions{})
	cmd := exec.Command(os.Args[0], "-test.run=^TestReplayClosedPipe$")
	cmd.Env = append(os.Environ(), "EBPFREC_REPLAY_PIPE="+dir)
	var errOut bytes.Buffer
	cmd.Stderr = &errOut
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 100)
	if _, err := stdout.Read(buf); err != nil {
		t.Fatal(err)
	}
	stdout.Close() // the reader goes away, as head does
	if err := cmd.Wait(); err != nil {
		t.Fatalf("replay into a closed pipe: %v, stderr %q", err, errOut.String())
	}
	if errOut.Len() != 0 {
		t.Fatalf("replay into a closed pipe wrote to stderr: %q", errOut.String())
	}
}

// TestReplayFixturesGolden checks the text and JSON output of replay on
// every real recording in fixtures/.
func TestReplayFixturesGolden(t *testing.T) {
	dirs, _ := filepath.Glob(filepath.Join("..", "..", "fixtures", "*", "000001.seg"))
	if len(dirs) == 0 {
		t.Fatal("no fixtures (they are committed: see fixtures/README.md)")
	}
	for _, seg := range dirs {
		dir := filepath.Dir(seg)
		name := filepath.Base(dir)
		t.Run(name, func(t *testing.T) {
			for format, ext := range map[string]string{"text": "txt", "json": "jsonl"} {
				out, errOut, code := runReplay(t, "--format", format, dir)
				if code != 0 {
					t.Fatalf("%s: exit %d: %s", format, code, errOut)
				}
				if strings.Count(out, "\n") < 2 {
					t.Fatalf("%s: output %q", format, out)
				}
				golden(t, "replay-fixture-"+name+"."+ext, out)
			}
		})
	}
}

// lockedBuffer is a bytes.Buffer for a writer and a reader goroutine.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// TestReplayFollow runs replay --follow on a recording that a writer is
// still appending to, until interrupted: it prints what the writer commits,
// then exactly what a replay of the finished recording prints.
func TestReplayFollow(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "rec")
	ref := filepath.Join(t.TempDir(), "ref")
	replaytest.Generate(t, ref, 120, store.WriterOptions{})
	want, _, _ := runReplay(t, ref)

	app := newApp()
	var out lockedBuffer
	app.Writer, app.ErrWriter = &out, io.Discard
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	wopts := store.WriterOptions{MaxSegmentBytes: 32 << 10, FlushInterval: time.Hour, Sync: store.SyncNever}
	// The replay starts before the recording exists, and waits for it.
	go func() { done <- app.RunContext(ctx, []string{"ebpfrec", "replay", "--follow", dir}) }()
	replaytest.GenerateStep(t, dir, 120, wopts, func(i int, w *store.Writer, _ []string) {
		switch {
		case i == 0:
			if err := w.Flush(); err != nil {
				t.Fatal(err)
			}
		case i == 60:
			// Half written: wait until the replay shows the first batch
			// of the segment being written.
			if err := w.Flush(); err != nil {
				t.Fatal(err)
			}
			waitUntil(t, func() bool { return strings.Count(out.String(), "\n") > strings.Count(want, "\n")/3 }, func() string {
				select {
				case err := <-done:
					return fmt.Sprintf("replay ended: %v\n%s", err, out.String())
				default:
				}
				return out.String()
			})
		}
	})
	waitUntil(t, func() bool { return out.String() == want }, func() string { return out.String() })
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("replay --follow: %v", err)
	}
	if out.String() != want {
		t.Fatal("replay --follow printed more after the end")
	}
}

// waitUntil waits for cond, with a generous bound against hangs (not a
// timing assertion).
func waitUntil(t *testing.T, cond func() bool, state func() string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(2 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting; now:\n%s", state())
		}
	}
}

// TestReplayDamage: a damaged batch is reported on stderr and skipped, the
// exit status is 1; --stop-on-damage stops there.
func TestReplayDamage(t *testing.T) {
	dir := replayRecording(t)
	full, _, _ := runReplay(t, "--format", "json", dir)
	// Flip a byte in the first event of batch 2, in every copy of it in
	// the segment files (bbolt keeps stale copies in free pages).
	sr, err := store.Open(dir, store.ReaderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var raw []byte
	for b, err := range sr.All() {
		if err == nil && b.Seq == 2 {
			raw = bytes.Clone(b.Events[0].Raw)
			break
		}
	}
	sr.Close()
	segs, _ := filepath.Glob(filepath.Join(dir, "*.seg"))
	found := false
	for _, seg := range segs {
		data, err := os.ReadFile(seg)
		if err != nil {
			t.Fatal(err)
		}
		for at := bytes.Index(data, raw); at >= 0; at = bytes.Index(data, raw) {
			found = true
			data[at+len(raw)/2] ^= 0x20
		}
		if err := os.WriteFile(seg, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if raw == nil || !found {
		t.Fatal("event not found")
	}
	out, errOut, code := runReplay(t, "--format", "json", dir)
	m := regexp.MustCompile(`segment 0*(\d+): batch (\d+): crc mismatch \(skipped\)`).FindStringSubmatch(errOut)
	if code != exitFailure || m == nil {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	// Every line but those of the damaged batch.
	var want []string
	for _, l := range strings.SplitAfter(full, "\n") {
		if !strings.Contains(l, `"seq":`+m[2]+`,`) {
			want = append(want, l)
		}
	}
	if out != strings.Join(want, "") || out == full {
		t.Fatalf("damaged batch %s: output\n%s\nwant\n%s", m[2], out, strings.Join(want, ""))
	}
	out2, errOut, code := runReplay(t, "--format", "json", "--stop-on-damage", dir)
	if code != exitFailure || !strings.Contains(errOut, "batch "+m[2]) || !strings.HasPrefix(full, out2) || strings.Contains(out2, `"seq":`+m[2]+`,`) || len(out2) >= len(out) {
		t.Fatalf("--stop-on-damage: exit %d, stderr %q, output:\n%s", code, errOut, out2)
	}
}
