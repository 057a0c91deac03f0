package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ebpfrec/ebpfrec/internal/clireport"
	"github.com/ebpfrec/ebpfrec/internal/cmdtest"
	"github.com/ebpfrec/ebpfrec/internal/querycli"
)

// longSQL runs until the query is stopped: a cross join of 10^14 rows.
const longSQL = "SELECT sum(a.range * b.range) FROM range(10000000) a, range(10000000) b"

// queryFolders lists query's temporary folders in tmp.
func queryFolders(t *testing.T, tmp string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(tmp, tempPrefix+"*"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// startQuery starts `ebpfrec query` (the lean ebpfrec, which runs
// ebpfrec-query in its place) with TMPDIR=tmp, and waits until a temporary
// folder besides those in before holds a complete export (the query is
// then in DuckDB); it returns the process and that folder. The process
// started is the query itself: ebpfrec's PID runs ebpfrec-query, so that
// what is sent to ebpfrec reaches the query.
func startQuery(t *testing.T, tmp string, before []string, args ...string) (*exec.Cmd, string) {
	t.Helper()
	cmd := ebpfrecCmd(t, "", []string{"TMPDIR=" + tmp}, append([]string{"query"}, args...)...)
	var out cmdtest.LockedBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	// Its own process group, killed whole at the end: a query that
	// outlived ebpfrec's process (were it ebpfrec's child) would otherwise
	// run on, holding the output pipe that Wait waits for.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); cmd.Wait() })
	var folder string
	// A generous bound against hangs, not a timing assertion.
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		for _, f := range queryFolders(t, tmp) {
			if _, err := os.Stat(filepath.Join(f, "export", "export.json")); err == nil && !strings.Contains(strings.Join(before, "\n"), f) {
				folder = f
			}
		}
		if folder != "" {
			companion, err1 := filepath.EvalSymlinks(filepath.Join(bins, querycli.Companion))
			exe, err2 := os.Readlink(fmt.Sprintf("/proc/%d/exe", cmd.Process.Pid))
			if err1 != nil || err2 != nil || exe != companion {
				t.Fatalf("ebpfrec's process runs %q (%v, %v), not the companion %s", exe, err1, err2, companion)
			}
			return cmd, folder
		}
		if time.Now().After(deadline) {
			t.Fatalf("no exported temporary folder in %s; output: %s", tmp, out.String())
		}
	}
}

// TestQueryTempFolders: a query over a recording (`ebpfrec query`, the
// signals sent to ebpfrec's PID) removes its temporary export however it
// ends but SIGKILL: bad SQL, a failed export, Ctrl-C, SIGTERM, SIGHUP (the
// terminal closed), a closed pipe. A query killed
// leaves its folder, which the next query removes, leaving alone the
// folder of a query still running.
func TestQueryTempFolders(t *testing.T) {
	demo := cmdtest.Fixture(t, "demo")
	tmp := t.TempDir()
	env := []string{"TMPDIR=" + tmp}
	empty := func(what string) {
		t.Helper()
		if f := queryFolders(t, tmp); len(f) != 0 {
			t.Errorf("%s left %v", what, f)
		}
	}
	if _, stderr, code := runEbpfrec(t, "", env, "query", demo, "SELECT nope FROM exec"); code != clireport.Failure || !strings.Contains(stderr, "nope") {
		t.Errorf("bad SQL: exit %d: %s", code, stderr)
	}
	empty("bad SQL")
	if _, stderr, code := runEbpfrec(t, "", env, "query", t.TempDir(), "SELECT 1"); code != clireport.Failure || !strings.Contains(stderr, "exporting it as a recording failed") {
		t.Errorf("failed export: exit %d: %s", code, stderr)
	}
	empty("a failed export")
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP} {
		cmd, _ := startQuery(t, tmp, nil, demo, longSQL)
		if err := cmd.Process.Signal(sig); err != nil {
			t.Fatal(err)
		}
		err := cmd.Wait()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != clireport.Failure {
			t.Errorf("query stopped by %v: %v, want exit status %d", sig, err, clireport.Failure)
		}
		empty("a query stopped by " + sig.String())
	}
	// A closed pipe: the reader went away (| head) before the result.
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	cmd := ebpfrecCmd(t, "", env, "query", demo, "SELECT * FROM exec")
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = w, &stderr
	err = cmd.Run()
	w.Close()
	if err != nil {
		t.Errorf("query into a closed pipe: %v; stderr: %s", err, stderr.String())
	}
	empty("a query writing into a closed pipe")

	// Killed: its folder stays, until the next query; a query still
	// running keeps its own.
	running, kept := startQuery(t, tmp, nil, demo, longSQL)
	killed, left := startQuery(t, tmp, []string{kept}, demo, longSQL)
	if err := killed.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed.Wait()
	if _, err := os.Stat(left); err != nil {
		t.Fatalf("the killed query's folder is gone before any cleanup: %v", err)
	}
	if out, stderr, code := runEbpfrec(t, "", env, "query", "--format", "csv", demo, "SELECT count(*) AS n FROM exec"); code != 0 || out != "n\n8\n" {
		t.Errorf("query: exit %d: %s%s", code, out, stderr)
	}
	if f := queryFolders(t, tmp); len(f) != 1 || f[0] != kept {
		t.Errorf("after the next query: %v, want only the running query's %s", f, kept)
	}
	running.Process.Signal(syscall.SIGTERM)
	running.Wait()
	empty("the running query, stopped")
}
