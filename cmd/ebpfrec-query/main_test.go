package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/ebpfrec/ebpfrec/internal/querycli"
)

// envCompanion makes this test binary run ebpfrec-query's main with its
// own arguments: TestMain links it as ebpfrec-query beside a lean ebpfrec,
// which runs it for `ebpfrec query` as it runs the installed one.
const envCompanion = "EBPFREC_QUERY_TEST_MAIN"

// bins is the folder of the lean ebpfrec (built with CGO_ENABLED=0, as
// users build it) and, beside it, ebpfrec-query (this test binary).
var bins string

func TestMain(m *testing.M) {
	if os.Getenv(envCompanion) != "" {
		os.Exit(run(os.Args))
	}
	code, err := withBinaries(m)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(code)
}

func withBinaries(m *testing.M) (int, error) {
	dir, err := os.MkdirTemp("", "ebpfrec-bins-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	build := exec.Command("go", "build", "-o", filepath.Join(dir, "ebpfrec"), "../ebpfrec")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		return 0, fmt.Errorf("CGO_ENABLED=0 go build ./cmd/ebpfrec: %v\n%s", err, out)
	}
	self, err := os.Executable()
	if err != nil {
		return 0, err
	}
	if err := os.Symlink(self, filepath.Join(dir, querycli.Companion)); err != nil {
		return 0, err
	}
	bins = dir
	return m.Run(), nil
}

// ebpfrecCmd returns the command running the lean ebpfrec at bin (default:
// the one in bins) with args, and env added to this process's
// environment, where PATH leads to no other ebpfrec-query.
func ebpfrecCmd(t *testing.T, bin string, env []string, args ...string) *exec.Cmd {
	t.Helper()
	if bin == "" {
		bin = filepath.Join(bins, "ebpfrec")
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), envCompanion+"=1", "PATH="+t.TempDir(), querycli.EnvBin+"=")
	cmd.Env = append(cmd.Env, env...)
	return cmd
}

// runEbpfrec runs the lean ebpfrec (see ebpfrecCmd) and returns its
// standard output, standard error and exit code.
func runEbpfrec(t *testing.T, bin string, env []string, args ...string) (string, string, int) {
	t.Helper()
	cmd := ebpfrecCmd(t, bin, env, args...)
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
