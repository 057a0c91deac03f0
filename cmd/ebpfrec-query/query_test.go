package main

import (
	"debug/buildinfo"
	"encoding/csv"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ebpfrec/ebpfrec/analyze"
	"github.com/ebpfrec/ebpfrec/internal/clireport"
	"github.com/ebpfrec/ebpfrec/internal/cmdtest"
	"github.com/ebpfrec/ebpfrec/internal/querycli"
	"github.com/ebpfrec/ebpfrec/replay/replaytest"
	"github.com/ebpfrec/ebpfrec/store"
)

// TestQueryCommand runs `ebpfrec query` as users do: the lean ebpfrec,
// which runs ebpfrec-query from its own folder, over an export, a
// recording (exported to a temporary folder, removed after) and a fleet,
// in each format, with the exit codes of bad SQL and bad usage.
func TestQueryCommand(t *testing.T) {
	demo := cmdtest.Fixture(t, "demo")
	exp := filepath.Join(t.TempDir(), "exp")
	if _, stderr, code := runEbpfrec(t, "", nil, "export", "-q", "-o", exp, demo); code != 0 {
		t.Fatal(stderr)
	}
	q := "SELECT path, ret FROM open WHERE path LIKE '/tmp/ebpfrec-demo/%' ORDER BY ret, path LIMIT 2"
	stdout, stderr, code := runEbpfrec(t, "", nil, "query", exp, q)
	lines := strings.Split(stdout, "\n")
	if code != 0 || len(lines) < 5 || !strings.HasPrefix(lines[0], "path") || !strings.HasPrefix(lines[2], "/tmp/ebpfrec-demo/missing") ||
		!strings.HasSuffix(lines[2], " -2") || lines[4] != "(2 rows)" {
		t.Errorf("query: code %d\n%s%s", code, stdout, stderr)
	}
	// Columns line up: every data line as wide as the header's rule.
	if len(lines) >= 4 && (len(lines[1]) != len(lines[2]) || len(lines[2]) != len(lines[3])) {
		t.Errorf("columns not aligned:\n%s", stdout)
	}
	// A recording: exported into a temporary folder, removed after.
	tmp := t.TempDir()
	stdout, stderr, code = runEbpfrec(t, "", []string{"TMPDIR=" + tmp}, "query", "--format", "csv", demo, "SELECT comm, count(*) AS n FROM exit GROUP BY comm ORDER BY n DESC, comm LIMIT 1")
	if code != 0 || !strings.HasPrefix(stdout, "comm,n\n") {
		t.Errorf("csv over a recording: code %d\n%s%s", code, stdout, stderr)
	}
	if ents, _ := os.ReadDir(tmp); len(ents) != 0 {
		t.Errorf("temporary export left: %v", ents)
	}
	stdout, _, code = runEbpfrec(t, "", nil, "query", "--format", "json", exp, "SELECT host, kernel, events FROM recording")
	var rows []map[string]any
	if err := json.Unmarshal([]byte(stdout), &rows); code != 0 || err != nil || len(rows) != 1 || rows[0]["host"] == "" || rows[0]["events"].(float64) < 1000 {
		t.Errorf("json: code %d, %v: %s", code, err, stdout)
	}
	// A fleet: a folder of partitioned exports, queried as one.
	fleet := t.TempDir()
	for _, name := range []string{"demo", "loss"} {
		if _, stderr, code := runEbpfrec(t, "", nil, "export", "-q", "--partition", "-o", filepath.Join(fleet, name), cmdtest.Fixture(t, name)); code != 0 {
			t.Fatal(stderr)
		}
	}
	stdout, stderr, code = runEbpfrec(t, "", nil, "query", "--format", "csv", fleet, "SELECT count(*) AS recordings, bool_and(host IS NOT NULL AND date IS NOT NULL) AS partitioned FROM recording")
	if code != 0 || stdout != "recordings,partitioned\n2,true\n" {
		t.Errorf("fleet query: code %d\n%s%s", code, stdout, stderr)
	}
	// A folder named like a flag and SQL starting with a comment stay
	// arguments on their way to the companion.
	dash := filepath.Join(t.TempDir(), "-x")
	if err := os.Rename(exp, dash); err != nil {
		t.Fatal(err)
	}
	seg, err := filepath.Abs(filepath.Join(demo, "000001.seg")) // before the Chdir
	if err != nil {
		t.Fatal(err)
	}
	t.Chdir(filepath.Dir(dash))
	stdout, stderr, code = runEbpfrec(t, "", nil, "query", "--format", "csv", "--", "-x", "-- a comment\nSELECT count(*) AS n FROM exec")
	if code != 0 || stdout != "n\n8\n" {
		t.Errorf("query of a folder named -x: code %d\n%s%s", code, stdout, stderr)
	}
	// Errors: bad SQL (1, DuckDB's lines kept), bad usage (2), from
	// ebpfrec (arguments) and from the companion (not a folder).
	if _, stderr, code := runEbpfrec(t, "", nil, "query", dash, "SELECT nope FROM exec"); code != clireport.Failure || !strings.Contains(stderr, "nope") || !strings.Contains(stderr, "\nLINE 1:") {
		t.Errorf("bad SQL: code %d: %s", code, stderr)
	}
	// A missing folder: the error says it is query's (it was a bare
	// "ebpfrec: stat /x: no such file or directory").
	missing := filepath.Join(t.TempDir(), "missing")
	if _, stderr, code := runEbpfrec(t, "", nil, "query", missing, "SELECT 1"); code != clireport.Failure || !strings.Contains(stderr, "ebpfrec: query: stat "+missing+": no such file or directory") {
		t.Errorf("missing folder: code %d: %s", code, stderr)
	}
	for _, args := range [][]string{{"query", dash}, {"query", "--format", "xml", dash, "SELECT 1"}, {"query", seg, "SELECT 1"}} {
		if _, stderr, code := runEbpfrec(t, "", nil, args...); code != clireport.Usage {
			t.Errorf("%v: code %d: %s", args, code, stderr)
		}
	}
}

// TestCompanionLookup: ebpfrec finds ebpfrec-query beside itself, else on
// PATH; EBPFREC_QUERY_BIN, when set, is the one it runs, or the error. The
// query runs as the ebpfrec process itself (exec, no child): see
// startQuery in TestQueryTempFolders.
func TestCompanionLookup(t *testing.T) {
	exp := filepath.Join(t.TempDir(), "exp")
	if _, stderr, code := runEbpfrec(t, "", nil, "export", "-q", "-o", exp, cmdtest.Fixture(t, "demo")); code != 0 {
		t.Fatal(stderr)
	}
	args := []string{"query", "--format", "csv", exp, "SELECT count(*) AS n FROM exit"}
	const want = "n\n9\n"
	// An ebpfrec with no companion beside it (a link: the path it runs
	// from is its folder).
	alone := filepath.Join(t.TempDir(), "ebpfrec")
	if err := os.Link(filepath.Join(bins, "ebpfrec"), alone); err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	onPath := t.TempDir()
	if err := os.Symlink(self, filepath.Join(onPath, querycli.Companion)); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(t.TempDir(), querycli.Companion)
	for _, c := range []struct {
		name string
		bin  string
		env  []string
		want string // stdout, or what stderr says
		code int
	}{
		{"beside", "", nil, want, 0},
		{"on PATH", alone, []string{"PATH=" + onPath}, want, 0},
		{"named", alone, []string{querycli.EnvBin + "=" + filepath.Join(onPath, querycli.Companion)}, want, 0},
		{"none", alone, nil, "which is neither in " + filepath.Dir(alone) + " (beside ebpfrec) nor on PATH", clireport.Failure},
		{"named, missing, one beside", "", []string{querycli.EnvBin + "=" + missing}, querycli.EnvBin + "=" + missing, clireport.Failure},
	} {
		stdout, stderr, code := runEbpfrec(t, c.bin, c.env, args...)
		if code != c.code || (code == 0 && stdout != c.want) || (code != 0 && !strings.Contains(stderr, c.want)) {
			t.Errorf("%s: exit %d, want %d and %q:\n%s%s", c.name, code, c.code, c.want, stdout, stderr)
		}
	}
}

// TestQueryHostileNamesEscaped: names and values from a recording reach
// the terminal through query escaped as in every other output (see
// ebpfrec's TestHostileNamesEscaped), DuckDB's errors included; JSON holds
// the exact values and CSV the data as the export holds it.
func TestQueryHostileNamesEscaped(t *testing.T) {
	rec := cmdtest.HostileRecording(t)
	exp := filepath.Join(t.TempDir(), "exp"+cmdtest.HSeparator+"\x1b[1m")
	if _, stderr, code := runEbpfrec(t, "", nil, "export", "-q", "-o", exp, rec); code != 0 {
		t.Fatal(stderr)
	}
	tmp := t.TempDir()
	runs := []cmdtest.Run{
		{Args: []string{"query", exp, "SELECT comm, filename, args FROM exec"}, Want: []string{`sh\x1b[31m\u202e`, `/tmp/\x1b]52;c;ZXZpbA==\x07\nx`, `echo\r\u202e�`}},
		{Args: []string{"query", exp, "SELECT host, kernel, command_line, streams FROM recording"}, Want: []string{`host\x1b]0;t\x07`, `--x\n\u2028`, `raw\r�\n\u202e`}},
		{Args: []string{"query", rec, "SELECT path, comm FROM open ORDER BY ret"}, Want: []string{`/etc/\x1b[8m\u2066x\r\n�`, `c\u009b\n�`, `sys\t\x1b[7m`}},
		{Args: []string{"query", "--format", "json", exp, "SELECT comm, path, stream FROM open UNION ALL SELECT NULL, NULL, stream FROM raw"}, JSON: true},
		{Args: []string{"query", "--format", "csv", exp, "SELECT comm, path FROM open ORDER BY ret"}, CSV: true},
		// DuckDB's own error, quoting a value: escaped, its lines kept.
		{Args: []string{"query", exp, "SELECT CAST(comm AS INTEGER) FROM exec"}, Code: clireport.Failure, Want: []string{`sh\x1b[31m\u202e`, "\nLINE 1:"}},
	}
	for _, r := range runs {
		stdout, stderr, code := runEbpfrec(t, "", []string{"TMPDIR=" + tmp}, r.Args...)
		r.Check(t, stdout, stderr, code)
		if r.CSV {
			// The exact values, as the export holds them (each byte
			// that is not UTF-8 as U+FFFD), quoted. (encoding/csv's
			// reader would drop the CR of the CR LF.)
			q := func(s string) string { return `"` + strings.ReplaceAll(cmdtest.ToValid(s), `"`, `""`) + `"` }
			want := "comm,path\n" + q(cmdtest.HOpenComm) + "," + q(cmdtest.HPath) + "\n"
			if !strings.HasPrefix(stdout, want) {
				t.Errorf("CSV does not start with the exact values:\n got %q\nwant %q...", stdout, want)
			}
			if _, err := csv.NewReader(strings.NewReader(stdout)).ReadAll(); err != nil {
				t.Errorf("invalid CSV: %v", err)
			}
		}
	}
	if ents, _ := os.ReadDir(tmp); len(ents) != 0 {
		t.Errorf("query left %v in TMPDIR", ents)
	}
}

// TestQueryRunningRecording: a query of a recording still being written
// reads up to the recorder's last commit, and says so.
func TestQueryRunningRecording(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "rec")
	const n = 40
	defer replaytest.Running(t, dir, n, store.WriterOptions{FlushInterval: time.Hour})()

	// What the finished recording will hold: every batch is committed.
	ref := filepath.Join(t.TempDir(), "ref")
	replaytest.Generate(t, ref, n, store.WriterOptions{})
	want, _, _ := runEbpfrec(t, "", nil, "query", "--format", "csv", ref, "SELECT count(*) FROM exec")
	if want == "" || strings.HasSuffix(want, "\n0\n") {
		t.Fatalf("reference query: %q", want)
	}
	out, errOut, code := runEbpfrec(t, "", nil, "query", "--format", "csv", dir, "SELECT count(*) FROM exec")
	if code != 0 || out != want || !strings.Contains(errOut, analyze.LiveWarning) {
		t.Fatalf("query (exit %d): %q, want %q; stderr %s", code, out, want, errOut)
	}
}

// TestLossesTableVocabulary: the losses table names the events not
// recorded with the terms of internal/lossterms, each increase beside its
// running total (ebpfrec's TestLossVocabulary checks the other outputs).
func TestLossesTableVocabulary(t *testing.T) {
	export := filepath.Join(t.TempDir(), "export")
	if _, stderr, code := runEbpfrec(t, "", nil, "export", "-q", "-o", export, cmdtest.Fixture(t, "loss")); code != 0 {
		t.Fatal(stderr)
	}
	out, stderr, code := runEbpfrec(t, "", nil, "query", "--format", "csv", export, "SELECT * FROM losses")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, w := range []string{"kernel_lost_ringbuf,", "kernel_lost_ringbuf_total", "200186"} {
		if !strings.Contains(out, w) {
			t.Errorf("the losses table does not say %q:\n%s", w, out)
		}
	}
	if m := cmdtest.OldLossWords.FindString(out); m != "" {
		t.Errorf("the losses table names a loss %q, outside the vocabulary:\n%s", m, out)
	}
}

// TestLeanRecorder: the ebpfrec that records (go build ./cmd/ebpfrec, as
// TestMain built it, without cgo) links no DuckDB, nor does package
// analyze; neither links arrow-go nor, through arrow-go's JSON,
// goccy/go-json (Arrow is analyze/arrowexport, which ebpfrec-query
// links); and ebpfrec stays within the recorder's 40 MB (issue 13). With
// the Arrow writer it was 40,113,160 bytes; without it about 32.7 MB (the
// history of what took it over is in the commit log and the README's
// figures).
func TestLeanRecorder(t *testing.T) {
	bin := filepath.Join(bins, "ebpfrec")
	info, err := buildinfo.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	heavy := []string{"duckdb", "github.com/apache/arrow-go", "github.com/goccy/go-json"}
	for _, d := range info.Deps {
		for _, h := range heavy {
			if strings.Contains(d.Path, h) {
				t.Errorf("ebpfrec links %s", d.Path)
			}
		}
	}
	for _, s := range info.Settings {
		if s.Key == "CGO_ENABLED" && s.Value != "0" {
			t.Errorf("ebpfrec built with CGO_ENABLED=%s", s.Value)
		}
	}
	out, err := exec.Command("go", "list", "-deps", "../ebpfrec", "../../analyze").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, pkg := range strings.Fields(string(out)) {
		for _, h := range heavy {
			if strings.Contains(pkg, h) {
				t.Errorf("ebpfrec or analyze imports %s", pkg)
			}
		}
	}
	st, err := os.Stat(bin)
	if err != nil {
		t.Fatal(err)
	}
	const limit = 40_000_000 // bytes
	if st.Size() > limit {
		t.Errorf("ebpfrec is %d bytes, more than the recorder's %d", st.Size(), limit)
	}
	t.Logf("ebpfrec is %d bytes", st.Size())
}
