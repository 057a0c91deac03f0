package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/ebpfrec/ebpfrec/internal/cmdtest"
)

// runBinary runs ebpfrec (this test binary, through TestMain's envMain)
// as its own process, and returns its standard output, standard error and
// exit code: what a terminal would receive, main's error printing included.
func runBinary(t *testing.T, env []string, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(os.Args[0], append([]string{"-test.run=^$", "--"}, args...)...)
	cmd.Env = append(append(os.Environ(), envMain+"=1"), env...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), errOut.String(), code
}

// TestHostileNamesEscaped: names and values from a recording reach the
// terminal with every control character, bidi control and byte that is not
// UTF-8 escaped (\x1b, \u202e, \xff), in every output of replay, info,
// verify, summary and export, their errors and warnings included; JSON
// outputs stay valid JSON holding the exact (valid UTF-8) values. (Query's
// outputs: ebpfrec-query's TestQueryHostileNamesEscaped.)
func TestHostileNamesEscaped(t *testing.T) {
	rec := cmdtest.HostileRecording(t)
	exp := filepath.Join(t.TempDir(), "exp"+cmdtest.HSeparator+"\x1b[1m")
	runs := []cmdtest.Run{
		{Args: []string{"replay", rec}, Want: []string{`sh\x1b[31m\u202e`, `/tmp/\x1b]52;c;ZXZpbA==\a\nx`, `sys\t\x1b[7m`, `raw\r�\n\u202e`, `c\u009b\n\xff`, `x\x1b]0;t\x07`, `echo\r\u202e\xff`, `/etc/\x1b[8m\u2066x\r\n\xfe`, `LOSS stream=raw\r�\n\u202e`}},
		{Args: []string{"replay", "--format", "json", rec}, JSON: true},
		{Args: []string{"replay", "--stream", "nope", rec}, Code: exitUsage, Want: []string{`sys\t\x1b[7m`, `raw\r�\n\u202e`}},
		{Args: []string{"info", rec}, Want: []string{`host\x1b]0;t\x07`, `6.1\u202egnp`, `v�\u0085`, `--x\n\u2028`, `rec\x1b[1m\u202e`, `/opt/\x1b[5mobj.o`, `my\u009bobj`, `t\x1b[2J`, `m\u2029`}},
		{Args: []string{"info", "--json", rec}, JSON: true},
		{Args: []string{"verify", rec}, Want: []string{`rec\x1b[1m\u202e`}},
		{Args: []string{"verify", "--json", rec}, JSON: true},
		{Args: []string{"summary", rec}, Want: []string{`x\x1b]0;t\x07`, `c\u009b\n\xff`, `/etc/\x1b[8m\u2066x\r\n\xfe`, `raw\r�\n\u202e: 2 not recorded`, `sys\t\x1b[7m`, `host\x1b]0;t\x07`}},
		{Args: []string{"summary", "--json", rec}, JSON: true},
		{Args: []string{"export", "-o", exp, rec}, Want: []string{`exp\u2029\x1b[1m`, `sys\t\x1b[7m`}},
	}
	for _, r := range runs {
		stdout, stderr, code := runBinary(t, nil, r.Args...)
		r.Check(t, stdout, stderr, code)
	}
}
