package main

import (
	"bytes"
	"compress/gzip"
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
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/ebpfrec/ebpfrec/bpf/tracers/proc"
	"github.com/ebpfrec/ebpfrec/internal/cmdtest"
	"github.com/ebpfrec/ebpfrec/replay/replaytest"
	"github.com/ebpfrec/ebpfrec/store"
)

var updateReplay = flag.Bool("update-replay", false, "rewrite the golden files of the replay command (testdata/replay.*)")

// replayRecording makes the synthetic recording of the replay golden tests.
func replayRecording(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "rec")
	replaytest.Generate(t, dir, 40, store.WriterOptions{MaxSegmentBytes: 64 << 10, FlushBytes: 4 << 10, Uncompressed: true})
	return dir
}

// runReplay runs the app with args and returns stdout, stderr and the exit
// code.
func runReplay(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	app := newApp()
	var out, errOut bytes.Buffer
	app.Writer, app.ErrWriter = &out, &errOut
	err := app.Run(flagsFirst(app, append([]string{"ebpfrec", "replay"}, args...)))
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
	// A golden named *.gz is stored compressed (the large ones: the
	// repository stays small).
	gz := strings.HasSuffix(name, ".gz")
	if *updateReplay {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		data := []byte(got)
		if gz {
			var b bytes.Buffer
			zw, _ := gzip.NewWriterLevel(&b, gzip.BestCompression)
			zw.Write(data)
			if err := zw.Close(); err != nil {
				t.Fatal(err)
			}
			data = b.Bytes()
		}
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -run %s -update-replay to create it)", err, t.Name())
	}
	if gz {
		zr, err := gzip.NewReader(bytes.NewReader(want))
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if want, err = io.ReadAll(zr); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
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

// TestReplayTextGolden: replay.txt is the recorded order (--order
// recorded, the output of every build before time order); replay-time.txt
// the default, time order.
func TestReplayTextGolden(t *testing.T) {
	dir := replayRecording(t)
	out, errOut, code := runReplay(t, "--order", "recorded", dir)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	golden(t, "replay.txt", out)
	out, errOut, code = runReplay(t, dir)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if n := backInTime(t, out); n != 0 {
		t.Fatalf("time order: %d lines go back in time", n)
	}
	golden(t, "replay-time.txt", out)
}

// backInTime counts the lines of replay's text output whose time is
// earlier than a line's before them.
func backInTime(t *testing.T, out string) int {
	t.Helper()
	n := 0
	var high time.Time
	for i, l := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		ts, _, _ := strings.Cut(l, " ")
		tm, err := time.Parse(time.RFC3339Nano, ts)
		if err != nil {
			t.Fatalf("line %d: %v: %s", i+1, err, l)
		}
		if tm.Before(high) {
			n++
		}
		if tm.After(high) {
			high = tm
		}
	}
	return n
}

func TestReplayJSONGolden(t *testing.T) {
	dir := replayRecording(t)
	out, errOut, code := runReplay(t, "--format", "json", "--order", "recorded", dir)
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

// TestReplayJSONTimeGolden: the JSON lines in time order.
func TestReplayJSONTimeGolden(t *testing.T) {
	dir := replayRecording(t)
	out, errOut, code := runReplay(t, "--format", "json", dir)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	golden(t, "replay-time.jsonl", out)
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
	// A folder that is missing, or holds no recording: one error that
	// says so (the process table's error came first, saying the same).
	for _, d := range []string{filepath.Join(t.TempDir(), "missing"), t.TempDir()} {
		_, errOut, code := runReplay(t, d)
		if code != exitFailure {
			t.Errorf("%s: exit %d, want %d", d, code, exitFailure)
		}
		if strings.Contains(errOut, "process table") || strings.Count(errOut, d) != 1 {
			t.Errorf("%s: errors\n%s\nwant one that names it", d, errOut)
		}
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
				// The recorded order, as every build before time order
				// printed it (the *-recorded goldens are theirs).
				rec, errOut, code := runReplay(t, "--format", format, "--order", "recorded", dir)
				if code != 0 {
					t.Fatalf("%s: exit %d: %s", format, code, errOut)
				}
				// Recordings with the proc stream (made by this build)
				// keep only the time order's golden, compressed: the
				// recorded order holds the same lines (checked below).
				current := isCurrentFixture(dir)
				if !current {
					golden(t, "replay-fixture-"+name+"-recorded."+ext, rec)
				}
				out, errOut, code := runReplay(t, "--format", format, dir)
				if code != 0 {
					t.Fatalf("%s: exit %d: %s", format, code, errOut)
				}
				if strings.Count(out, "\n") < 2 {
					t.Fatalf("%s: output %q", format, out)
				}
				if format == "text" {
					if n := backInTime(t, out); n != 0 {
						t.Fatalf("time order: %d lines go back in time (recorded order: %d)", n, backInTime(t, rec))
					}
				}
				if sortedLines(out) != sortedLines(rec) {
					t.Fatalf("%s: time order does not print the lines of the recorded order", format)
				}
				if current {
					golden(t, "replay-fixture-"+name+"."+ext+".gz", out)
				} else {
					golden(t, "replay-fixture-"+name+"."+ext, out)
				}
			}
		})
	}
}

// isCurrentFixture tells a fixture recorded by a build with the proc
// stream (fixtures/README.md) from the older ones.
func isCurrentFixture(dir string) bool {
	info, err := store.Info(dir)
	if err != nil {
		return false
	}
	for _, s := range info.Streams {
		if s.Tracer == proc.Name {
			return true
		}
	}
	return false
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
	var out cmdtest.LockedBuffer
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
	// Stopped in recorded order, what was printed is a prefix.
	fullRec, _, _ := runReplay(t, "--format", "json", "--order", "recorded", dir)
	out2, errOut, code := runReplay(t, "--format", "json", "--order", "recorded", "--stop-on-damage", dir)
	if code != exitFailure || !strings.Contains(errOut, "batch "+m[2]) || !strings.HasPrefix(fullRec, out2) || strings.Contains(out2, `"seq":`+m[2]+`,`) || len(out2) >= len(out) {
		t.Fatalf("--stop-on-damage: exit %d, stderr %q, output:\n%s", code, errOut, out2)
	}
}

// gatedWriter blocks the first write until gate is closed.
type gatedWriter struct {
	gate <-chan struct{}
	once sync.Once
	cmdtest.LockedBuffer
}

func (g *gatedWriter) Write(p []byte) (int, error) {
	g.once.Do(func() { <-g.gate })
	return g.LockedBuffer.Write(p)
}

// TestReplayFollowMissed: a follower held up while the recorder's
// retention deletes segments prints a MISSED line with the range it could
// not read, says so on stderr, and exits 1.
func TestReplayFollowMissed(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "rec")
	gate := make(chan struct{})
	out := &gatedWriter{gate: gate}
	var errOut cmdtest.LockedBuffer
	app := newApp()
	app.Writer, app.ErrWriter = out, &errOut
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	const n = 3001
	wopts := store.WriterOptions{MaxSegmentBytes: 64 << 10, FlushInterval: time.Hour, KeepSegments: 2, Sync: store.SyncNever}
	replaytest.GenerateStep(t, dir, n, wopts, func(i int, w *store.Writer, _ []string) {
		switch i {
		case 0:
			if err := w.Flush(); err != nil {
				t.Fatal(err)
			}
			go func() { done <- app.RunContext(ctx, []string{"ebpfrec", "replay", "--follow", dir}) }()
		case n / 2:
			close(gate)
		}
	})
	all, _, _ := runReplay(t, dir)
	lines := strings.Split(strings.TrimSuffix(all, "\n"), "\n")
	last := lines[len(lines)-1]
	waitUntil(t, func() bool { return strings.HasSuffix(out.String(), last+"\n") }, func() string { return errOut.String() })
	cancel()
	err := <-done
	var ec cli.ExitCoder
	if !errors.As(err, &ec) || ec.ExitCode() != exitFailure {
		t.Fatalf("replay --follow ended with %v, want exit status %d", err, exitFailure)
	}
	m := regexp.MustCompile(`(?m)^\S+ MISSED records=(\d+)-(\d+) reason=deleted-by-retention-before-read$`).FindStringSubmatch(out.String())
	if m == nil {
		t.Fatalf("no MISSED line in the output:\n%.2000s", out.String())
	}
	if !strings.Contains(errOut.String(), "records "+m[1]+"-"+m[2]+" deleted by the recorder's retention before they were read") {
		t.Fatalf("stderr does not name the range %s-%s: %s", m[1], m[2], errOut.String())
	}
}

// sortedLines returns the lines of out sorted, to compare two outputs as
// sets of lines.
func sortedLines(out string) string {
	ls := strings.Split(out, "\n")
	slices.Sort(ls)
	return strings.Join(ls, "\n")
}

// TestReplayTimeOrder replays a recording whose streams and CPUs
// interleave out of time order, with one event more than the window late:
// every other line is in time order, the late one is printed, counted on
// stderr, and marked in JSON with an order line at the end; --order
// recorded prints the batches as the store holds them.
func TestReplayTimeOrder(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "rec")
	info := replaytest.GenerateInterleaved(t, dir, 12)

	rec, errOut, code := runReplay(t, "--order", "recorded", dir)
	if code != 0 || errOut != "" {
		t.Fatalf("--order recorded: exit %d, stderr %q", code, errOut)
	}
	if n := backInTime(t, rec); n < 12 {
		t.Fatalf("--order recorded: %d lines back in time: the recording does not interleave", n)
	}
	out, errOut, code := runReplay(t, dir)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if n := backInTime(t, out); n != 1 {
		t.Fatalf("time order: %d lines back in time, want 1 (the late event):\n%s", n, out)
	}
	if strings.Count(out, "\n") != info.Events || sortedLines(out) != sortedLines(rec) {
		t.Fatalf("time order: %d lines, want the %d of the recorded order", strings.Count(out, "\n"), info.Events)
	}
	if !strings.Contains(errOut, "1 event(s) arrived after later events were printed (more than the 500ms window late)") {
		t.Fatalf("stderr %q does not report the late event", errOut)
	}
	// A wider window leaves nothing late.
	out, errOut, _ = runReplay(t, "--order-window", "2s", dir)
	if n := backInTime(t, out); n != 0 || errOut != "" {
		t.Fatalf("--order-window 2s: %d lines back in time, stderr %q", n, errOut)
	}
	// Late because the window held its most (--order-max-events), not
	// because the events were further apart than the window: stderr says
	// so and names the flag (it said "more than the 500ms window late" of
	// events 121 ms behind).
	_, errOut, _ = runReplay(t, "--order-window", "2s", "--order-max-events", "1", dir)
	if !strings.Contains(errOut, "--order-max-events (1)") || strings.Contains(errOut, "more than the 2s window late") {
		t.Fatalf("--order-max-events 1: stderr %q; want it to name the bound, not the window", errOut)
	}

	js, _, code := runReplay(t, "--format", "json", dir)
	lines := strings.Split(strings.TrimSuffix(js, "\n"), "\n")
	var last struct {
		Type       string `json:"type"`
		LateEvents int    `json:"late_events"`
		WindowNs   int64  `json:"window_ns"`
	}
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &last); err != nil || code != 0 {
		t.Fatalf("exit %d, last line %s: %v", code, lines[len(lines)-1], err)
	}
	if last.Type != "order" || last.LateEvents != 1 || last.WindowNs != int64(500*time.Millisecond) {
		t.Fatalf("last line %s: want the order line with 1 late event", lines[len(lines)-1])
	}
	late := 0
	for _, l := range lines[:len(lines)-1] {
		var ev struct {
			Pid  uint32 `json:"pid"`
			Late bool   `json:"late"`
		}
		if err := json.Unmarshal([]byte(l), &ev); err != nil {
			t.Fatal(err)
		}
		if ev.Late {
			late++
			if ev.Pid != info.LatePID {
				t.Fatalf("pid %d marked late, want pid %d: %s", ev.Pid, info.LatePID, l)
			}
		}
	}
	if late != 1 {
		t.Fatalf("%d events marked late, want 1", late)
	}

	// --order recorded: batch after batch as the store holds them.
	js, _, _ = runReplay(t, "--format", "json", "--order", "recorded", dir)
	var want []uint64
	sr, err := store.Open(dir, store.ReaderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for b, err := range sr.All() {
		if err != nil {
			t.Fatal(err)
		}
		for range b.Len() {
			want = append(want, b.Seq)
		}
	}
	sr.Close()
	lines = strings.Split(strings.TrimSuffix(js, "\n"), "\n")
	if len(lines) != len(want) {
		t.Fatalf("--order recorded: %d lines, want %d", len(lines), len(want))
	}
	for i, l := range lines {
		var ev struct {
			Seq uint64 `json:"seq"`
		}
		if err := json.Unmarshal([]byte(l), &ev); err != nil || ev.Seq != want[i] {
			t.Fatalf("--order recorded: line %d is of batch %d, want %d: %s", i+1, ev.Seq, want[i], l)
		}
	}
}

// TestReplayReadableValues: text shows errno names, durations in human
// units and exec arguments as a shell-quoted list whose control characters
// print escaped; JSON keeps exact nanoseconds and the argument list, and
// adds the errno name (null on success).
func TestReplayReadableValues(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "rec")
	meta := replaytest.Meta()
	meta.Streams = append(meta.Streams[:1:1], store.StreamInfo{Name: "open", Tracer: "open", Map: "open_events", Kind: store.KindRingbuf, EventType: "open.Event"})
	w, err := store.Create(dir, meta, store.WriterOptions{Sync: store.SyncNever})
	if err != nil {
		t.Fatal(err)
	}
	kt := uint64(replaytest.Mono) + 1000
	at := replaytest.Start.Add(time.Second)
	for _, b := range []*store.Batch{
		{Stream: "exec", Kind: store.KindRingbuf, Events: []store.Event{{Raw: replaytest.ExecRaw(kt, 10, 1, 0, "cat", "/bin/cat", "cat", "a b", "it's", "\x1b[31m"), Timestamp: at, CPU: -1}}},
		{Stream: "open", Kind: store.KindRingbuf, Events: []store.Event{
			{Raw: replaytest.OpenRaw(kt+1, 1_500_000, 10, 257, -13, "cat", "/etc/shadow"), Timestamp: at, CPU: -1},
			{Raw: replaytest.OpenRaw(kt+2, 2_340, 10, 257, 3, "cat", "/etc/passwd"), Timestamp: at, CPU: -1}}},
	} {
		if err := w.Append(b); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	out, errOut, code := runReplay(t, dir)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{
		`args=[cat 'a b' 'it'\''s' '\x1b[31m'] ppid=1`,
		`path=/etc/shadow flags=O_RDONLY ret=-13 (EACCES) latency=1.5ms`,
		`path=/etc/passwd flags=O_RDONLY ret=3 latency=2.34µs`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("text lacks %q:\n%s", want, out)
		}
	}
	js, _, _ := runReplay(t, "--format", "json", dir)
	lines := strings.Split(strings.TrimSpace(js), "\n")
	if len(lines) != 3 {
		t.Fatalf("JSON: %d lines:\n%s", len(lines), js)
	}
	var ex struct {
		Args []string `json:"args"`
	}
	var fail, ok struct {
		Errno     *string `json:"errno"`
		LatencyNs uint64  `json:"latency_ns"`
		Ret       int32   `json:"ret"`
	}
	for i, v := range []any{&ex, &fail, &ok} {
		if err := json.Unmarshal([]byte(lines[i]), v); err != nil {
			t.Fatal(err)
		}
	}
	if !slices.Equal(ex.Args, []string{"cat", "a b", "it's", "\x1b[31m"}) {
		t.Errorf("JSON args %q", ex.Args)
	}
	if fail.Errno == nil || *fail.Errno != "EACCES" || fail.LatencyNs != 1_500_000 || fail.Ret != -13 {
		t.Errorf("JSON of the failed open: %s", lines[1])
	}
	if ok.Errno != nil || !strings.Contains(lines[2], `"errno":null`) {
		t.Errorf("JSON of the open that succeeded: %s", lines[2])
	}
}
