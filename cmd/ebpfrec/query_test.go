package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ebpfrec/ebpfrec/analyze"
	"github.com/ebpfrec/ebpfrec/internal/querycli"
)

// TestQueryWithoutCompanion: ebpfrec links no DuckDB, and query runs the
// companion ebpfrec-query. Where there is none (not beside ebpfrec, not on
// PATH), query fails saying what to install or build; a companion named
// by EBPFREC_QUERY_BIN that is not there is named. --help and bad usage
// need no companion. (ebpfrec-query's tests run queries through ebpfrec.)
func TestQueryWithoutCompanion(t *testing.T) {
	demo := fixtureDir(t, "demo")
	// This test binary's folder has no ebpfrec-query; PATH none either.
	env := []string{"PATH=" + t.TempDir(), querycli.EnvBin + "="}
	stdout, stderr, code := runBinary(t, env, "query", demo, "SELECT 1")
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"ebpfrec-query", "neither in " + filepath.Dir(self) + " (beside ebpfrec) nor on PATH", "make install", "go build ./cmd/ebpfrec-query", "cgo", querycli.EnvBin} {
		if !strings.Contains(stderr, w) {
			t.Errorf("query without a companion: stderr lacks %q: %s", w, stderr)
		}
	}
	if code != exitFailure || stdout != "" {
		t.Errorf("query without a companion: exit %d, stdout %q; want %d and nothing", code, stdout, exitFailure)
	}

	missing := filepath.Join(t.TempDir(), "nope")
	_, stderr, code = runBinary(t, []string{"PATH=" + t.TempDir(), querycli.EnvBin + "=" + missing}, "query", demo, "SELECT 1")
	if code != exitFailure || !strings.Contains(stderr, querycli.EnvBin+"="+missing) || !strings.Contains(stderr, "no such file") {
		t.Errorf("query with %s naming nothing: exit %d: %s", querycli.EnvBin, code, stderr)
	}
	dir := t.TempDir()
	_, stderr, code = runBinary(t, []string{"PATH=" + t.TempDir(), querycli.EnvBin + "=" + dir}, "query", demo, "SELECT 1")
	if code != exitFailure || !strings.Contains(stderr, "not an executable file") {
		t.Errorf("query with %s naming a folder: exit %d: %s", querycli.EnvBin, code, stderr)
	}

	// Bad usage is refused before any companion is looked for.
	for _, args := range [][]string{{"query", demo}, {"query", "--format", "xml", demo, "SELECT 1"}, {"query", "--nope", demo, "SELECT 1"}} {
		if _, stderr, code := runBinary(t, env, args...); code != exitUsage || strings.Contains(stderr, "ebpfrec-query") {
			t.Errorf("%q: exit %d, want %d, without a word of the companion: %s", args, code, exitUsage, stderr)
		}
	}
	// --help explains the command in full, the companion included.
	stdout, stderr, code = runBinary(t, env, "query", "--help")
	for _, w := range []string{"ebpfrec query [command options] RECORDING|EXPORT|FLEET SQL", "--format value", strings.Join(analyze.Tables, ", "),
		"removed afterwards however", "control characters", "companion program ebpfrec-query", "beside ebpfrec, else on PATH", "make install", "Example:"} {
		if !strings.Contains(stdout, w) {
			t.Errorf("query --help lacks %q:\n%s", w, stdout)
		}
	}
	if code != 0 {
		t.Errorf("query --help: exit %d: %s", code, stderr)
	}
}
