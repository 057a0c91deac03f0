package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"

	"github.com/ebpfrec/ebpfrec/internal/cmdtest"
	"github.com/ebpfrec/ebpfrec/internal/querycli"
)

// runCmd runs the app with args and returns its output, error output (with
// the error's message) and exit code.
func runCmd(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	var out, errOut bytes.Buffer
	app := newApp()
	app.Writer, app.ErrWriter = &out, &errOut
	err := app.Run(flagsFirst(app, append([]string{"ebpfrec"}, args...)))
	code := 0
	if err != nil {
		errOut.WriteString(err.Error() + "\n")
		code = exitFailure
		var ec cli.ExitCoder
		if errors.As(err, &ec) {
			code = ec.ExitCode()
		}
	}
	return out.String(), errOut.String(), code
}

// fixtureDir returns the path of the fixture recording name.
func fixtureDir(t *testing.T, name string) string {
	t.Helper()
	return cmdtest.Fixture(t, name)
}

func TestExportCommand(t *testing.T) {
	demo := fixtureDir(t, "demo")
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	stdout, stderr, code := runCmd(t, "export", "-o", out, demo)
	if code != 0 || !strings.Contains(stdout, "exported ") || !strings.Contains(stdout, "exec 8") {
		t.Fatalf("export: code %d\n%s%s", code, stdout, stderr)
	}
	for _, f := range []string{"exec.parquet", "exit.parquet", "open.parquet", "tcp.parquet", "syscalls.parquet", "raw.parquet", "losses.parquet", "recording.parquet", "export.json"} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Error(err)
		}
	}
	// Twice: refused.
	_, stderr, code = runCmd(t, "export", "-o", out, demo)
	if code != exitFailure || !strings.Contains(stderr, "already holds an export (Options.Force, --force, replaces it)") {
		t.Errorf("second export: code %d: %s", code, stderr)
	}
	// --force replaces it; --partition writes Hive folders.
	if _, stderr, code = runCmd(t, "export", "--force", "--partition", "-o", out, demo); code != 0 {
		t.Fatalf("--force: code %d: %s", code, stderr)
	}
	if m, _ := filepath.Glob(filepath.Join(out, "host=*", "date=*", "exec.parquet")); len(m) != 1 {
		t.Errorf("partitioned exec files: %v", m)
	}
	if _, err := os.Stat(filepath.Join(out, "exec.parquet")); !os.IsNotExist(err) {
		t.Errorf("old file left after --force: %v", err)
	}
	// Arrow is ebpfrec-query's (which replaces this process: not run in
	// process here). Without one, the error says what to install, and
	// nothing is written. (ebpfrec-query's TestExportArrow exports Arrow
	// through the two commands.)
	arrowDir := filepath.Join(dir, "arrow")
	stdout, stderr, code = runBinary(t, []string{"PATH=" + t.TempDir(), querycli.EnvBin + "="}, "export", "--format", "arrow", "-o", arrowDir, demo)
	for _, w := range []string{"export: Arrow is not written by ebpfrec (which writes Parquet) but by the companion program ebpfrec-query", "make install", "go build ./cmd/ebpfrec-query", querycli.EnvBin} {
		if !strings.Contains(stderr, w) {
			t.Errorf("arrow without a companion: stderr lacks %q: %s", w, stderr)
		}
	}
	if code != exitFailure || stdout != "" {
		t.Errorf("arrow without a companion: exit %d, stdout %q", code, stdout)
	}
	if _, err := os.Stat(arrowDir); !os.IsNotExist(err) {
		t.Errorf("arrow without a companion: %s: %v", arrowDir, err)
	}
	// --help says who writes Arrow.
	stdout, _, code = runCmd(t, "export", "--help")
	for _, w := range []string{"ebpfrec writes Parquet itself. Arrow (--format arrow) is written by the companion", "program ebpfrec-query", "written by ebpfrec-query"} {
		if code != 0 || !strings.Contains(stdout, w) {
			t.Errorf("export --help (exit %d) lacks %q:\n%s", code, w, stdout)
		}
	}
	// Bad usage.
	for _, args := range [][]string{{"export"}, {"export", "a", "b"}, {"export", "--format", "csv", demo}} {
		if _, stderr, code := runCmd(t, args...); code != exitUsage {
			t.Errorf("%v: code %d: %s", args, code, stderr)
		}
	}
	// Not a recording.
	if _, stderr, code := runCmd(t, "export", "-o", filepath.Join(dir, "x"), dir); code != exitFailure || !strings.Contains(stderr, "export:") {
		t.Errorf("export of a non-recording: code %d: %s", code, stderr)
	}
}

func TestExportCommandDamaged(t *testing.T) {
	src := fixtureDir(t, "demo")
	rec := filepath.Join(t.TempDir(), "rec")
	os.MkdirAll(rec, 0o700)
	b, err := os.ReadFile(filepath.Join(src, "000001.seg"))
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(b, []byte("/tmp/ebpfrec-demo/file-2"))
	if i < 0 {
		t.Fatal("no file-2 in the demo fixture")
	}
	b[i+5] ^= 0x20
	if err := os.WriteFile(filepath.Join(rec, "000001.seg"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	_, stderr, code := runCmd(t, "export", "-o", filepath.Join(dir, "out"), rec)
	if code != 0 || !strings.Contains(stderr, "warning:") || !strings.Contains(stderr, "damaged") {
		t.Errorf("damaged export: code %d: %s", code, stderr)
	}
	_, stderr, code = runCmd(t, "export", "--strict", "-o", filepath.Join(dir, "strict"), rec)
	if code != exitFailure || !strings.Contains(stderr, "--strict") {
		t.Errorf("--strict: code %d: %s", code, stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, "strict")); !os.IsNotExist(err) {
		t.Errorf("--strict left output: %v", err)
	}
}

func TestSummaryCommand(t *testing.T) {
	stdout, stderr, code := runCmd(t, "summary", "--top", "100", fixtureDir(t, "demo"))
	for _, s := range []string{"(host ", "execs: 8", "exits: 9 (1 killed by a signal)", "/tmp/ebpfrec-demo/missing", "ENOENT", "127.0.0.1:", "none: every event emitted was recorded", "syscalls"} {
		if !strings.Contains(stdout, s) {
			t.Errorf("summary lacks %q", s)
		}
	}
	if code != 0 || strings.Contains(stderr, "lost") {
		t.Errorf("summary: code %d\n%s%s", code, stdout, stderr)
	}
	stdout, stderr, code = runCmd(t, "summary", fixtureDir(t, "loss"))
	if code != 0 || !strings.Contains(stderr, "warning: stream syscalls: ") || !strings.Contains(stderr, "events not recorded (kernel_lost_perfbuf 0, kernel_lost_ringbuf ") || !strings.Contains(stdout, "syscalls: ") {
		t.Errorf("loss summary: code %d\n%s%s", code, stdout, stderr)
	}
	stdout, _, code = runCmd(t, "summary", "--json", fixtureDir(t, "demo"))
	var s struct {
		Execs uint64 `json:"execs"`
	}
	if err := json.Unmarshal([]byte(stdout), &s); code != 0 || err != nil || s.Execs != 8 {
		t.Errorf("summary --json: %v %+v", err, s)
	}
	if _, _, code := runCmd(t, "summary"); code != exitUsage {
		t.Errorf("summary without a recording: code %d", code)
	}
}
