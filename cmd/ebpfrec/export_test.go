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
)

// runCmd runs the app with args and returns its output, error output (with
// the error's message) and exit code.
func runCmd(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	var out, errOut bytes.Buffer
	app := newApp()
	app.Writer, app.ErrWriter = &out, &errOut
	err := app.Run(append([]string{"ebpfrec"}, args...))
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

func fixtureDir(t *testing.T, name string) string {
	t.Helper()
	dir := filepath.Join("..", "..", "fixtures", name)
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("fixture %s: %v", name, err)
	}
	return dir
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
	if code != exitFailure || !strings.Contains(stderr, "already holds an export (--force replaces it)") {
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
	// Arrow.
	if _, stderr, code = runCmd(t, "export", "--format", "arrow", "-o", filepath.Join(dir, "arrow"), demo); code != 0 {
		t.Fatalf("arrow: %s", stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, "arrow", "exec.arrow")); err != nil {
		t.Error(err)
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

func TestQueryCommand(t *testing.T) {
	demo := fixtureDir(t, "demo")
	exp := filepath.Join(t.TempDir(), "exp")
	if _, stderr, code := runCmd(t, "export", "-q", "-o", exp, demo); code != 0 {
		t.Fatal(stderr)
	}
	q := "SELECT path, ret FROM open WHERE path LIKE '/tmp/ebpfrec-demo/%' ORDER BY ret, path LIMIT 2"
	stdout, stderr, code := runCmd(t, "query", exp, q)
	lines := strings.Split(stdout, "\n")
	if code != 0 || len(lines) < 5 || !strings.HasPrefix(lines[0], "path") || !strings.HasPrefix(lines[2], "/tmp/ebpfrec-demo/missing") ||
		!strings.HasSuffix(lines[2], " -2") || lines[4] != "(2 rows)" {
		t.Errorf("query: code %d\n%s%s", code, stdout, stderr)
	}
	// Columns line up: every data line as wide as the header's rule.
	if len(lines[1]) != len(lines[2]) || len(lines[2]) != len(lines[3]) {
		t.Errorf("columns not aligned:\n%s", stdout)
	}
	// A recording: exported into a temporary folder, removed after.
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	stdout, stderr, code = runCmd(t, "query", "--format", "csv", demo, "SELECT comm, count(*) AS n FROM exit GROUP BY comm ORDER BY n DESC, comm LIMIT 1")
	if code != 0 || !strings.HasPrefix(stdout, "comm,n\n") {
		t.Errorf("csv over a recording: code %d\n%s%s", code, stdout, stderr)
	}
	if ents, _ := os.ReadDir(tmp); len(ents) != 0 {
		t.Errorf("temporary export left: %v", ents)
	}
	stdout, _, code = runCmd(t, "query", "--format", "json", exp, "SELECT host, kernel, events FROM recording")
	var rows []map[string]any
	if err := json.Unmarshal([]byte(stdout), &rows); code != 0 || err != nil || len(rows) != 1 || rows[0]["host"] == "" || rows[0]["events"].(float64) < 1000 {
		t.Errorf("json: code %d, %v: %s", code, err, stdout)
	}
	// A fleet: a folder of partitioned exports, queried as one.
	fleet := t.TempDir()
	for _, name := range []string{"demo", "loss"} {
		if _, stderr, code := runCmd(t, "export", "-q", "--partition", "-o", filepath.Join(fleet, name), fixtureDir(t, name)); code != 0 {
			t.Fatal(stderr)
		}
	}
	stdout, stderr, code = runCmd(t, "query", "--format", "csv", fleet, "SELECT count(*) AS recordings, bool_and(host IS NOT NULL AND date IS NOT NULL) AS partitioned FROM recording")
	if code != 0 || stdout != "recordings,partitioned\n2,true\n" {
		t.Errorf("fleet query: code %d\n%s%s", code, stdout, stderr)
	}
	// Errors: bad SQL (1), bad usage (2).
	if _, stderr, code := runCmd(t, "query", exp, "SELECT nope FROM exec"); code != exitFailure || !strings.Contains(stderr, "nope") {
		t.Errorf("bad SQL: code %d: %s", code, stderr)
	}
	for _, args := range [][]string{{"query", exp}, {"query", "--format", "xml", exp, "SELECT 1"}} {
		if _, stderr, code := runCmd(t, args...); code != exitUsage {
			t.Errorf("%v: code %d: %s", args, code, stderr)
		}
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
	if code != 0 || !strings.Contains(stderr, "warning: stream syscalls lost") || !strings.Contains(stdout, "syscalls: ") {
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
