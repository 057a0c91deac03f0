package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ebpfrec/ebpfrec/internal/kerneltest"
	"github.com/ebpfrec/ebpfrec/store"
)

// envMain makes the test binary run ebpfrec's main with the arguments that
// follow "--" (so tests can signal a real ebpfrec process).
const envMain = "EBPFREC_TEST_MAIN"

func TestMain(m *testing.M) {
	if n, err := strconv.Atoi(os.Getenv(envGetsid)); err == nil {
		// n getsid calls, or calls until killed (n < 0).
		for i := 0; n < 0 || i < n; i++ {
			_, _ = unix.Getsid(0)
		}
		os.Exit(0)
	}
	if os.Getenv(envMain) != "" {
		for i, a := range os.Args {
			if a == "--" {
				os.Exit(run(append([]string{"ebpfrec"}, os.Args[i+1:]...)))
			}
		}
		os.Exit(exitUsage)
	}
	os.Exit(m.Run())
}

// startRecording starts `ebpfrec record` of this test process's getpid
// storm in a child process, and waits until it has committed something.
func startRecording(t *testing.T, dir string) (*exec.Cmd, *bytes.Buffer) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go func() { // the load: syscalls of this process
		for ctx.Err() == nil {
			syscall.Getpid()
		}
	}()
	cmd := exec.Command(os.Args[0], "-test.run=^$", "--", "record", "--tracer", "syscalls",
		"--pid", strconv.Itoa(os.Getpid()), "--flush-interval", "100ms", "-o", dir)
	cmd.Env = append(os.Environ(), envMain+"=1")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	// Wait for the first commit (bounded: fail, don't hang).
	for i := 0; ; i++ {
		if sum, err := store.Info(dir); err == nil && sum.Events > 0 {
			break
		}
		if fi, err := os.Stat(filepath.Join(dir, "000001.seg")); err == nil && fi.Size() > 64<<10 {
			break
		}
		if i == 300 {
			t.Fatalf("no commit after 30 s; output: %s", out.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond)
	return cmd, &out
}

func checkRecording(t *testing.T, dir string) *store.Summary {
	t.Helper()
	rep, err := store.Verify(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() {
		t.Fatalf("recording does not verify: %+v", rep.Problems)
	}
	sum, err := store.Info(dir)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Events == 0 {
		t.Fatalf("recording holds no events")
	}
	return sum
}

func TestRecordSIGINT(t *testing.T) {
	kerneltest.Require(t)
	dir := filepath.Join(t.TempDir(), "rec")
	cmd, out := startRecording(t, dir)
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("record after SIGINT: %v; output: %s", err, out)
	}
	if !bytes.Contains(out.Bytes(), []byte("recorded ")) {
		t.Errorf("no summary after SIGINT: %s", out)
	}
	sum := checkRecording(t, dir)
	for _, s := range sum.Segments {
		if !s.Closed {
			t.Errorf("segment %d not closed after SIGINT", s.Index)
		}
	}
}

func TestRecordDoubleSIGINT(t *testing.T) {
	kerneltest.Require(t)
	dir := filepath.Join(t.TempDir(), "rec")
	cmd, out := startRecording(t, dir)
	_ = cmd.Process.Signal(syscall.SIGINT)
	_ = cmd.Process.Signal(syscall.SIGINT)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatalf("record did not stop after two SIGINTs; output: %s", out)
	}
	checkRecording(t, dir)
}

func TestRecordSIGKILL(t *testing.T) {
	kerneltest.Require(t)
	dir := filepath.Join(t.TempDir(), "rec")
	cmd, _ := startRecording(t, dir)
	_ = cmd.Process.Signal(syscall.SIGKILL)
	_ = cmd.Wait()
	checkRecording(t, dir)
}

// Without privileges, record says in one line what to do, and creates nothing.
func TestRecordUnprivileged(t *testing.T) {
	kerneltest.Require(t) // root, to drop to nobody
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Skip("setpriv (util-linux) is not installed")
	}
	dir, err := os.MkdirTemp("", "ebpfrec-unpriv")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	bin, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	self := filepath.Join(dir, "ebpfrec.test")
	if err := os.WriteFile(self, bin, 0o755); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "rec")
	cmd := exec.Command(setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", self, "-test.run=^$", "--",
		"record", "--duration", "1s", "-o", out)
	cmd.Env = append(os.Environ(), envMain+"=1")
	msg, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != exitFailure {
		t.Fatalf("exit: %v, want code %d; output: %s", err, exitFailure, msg)
	}
	if !bytes.Contains(msg, []byte("needs root")) || bytes.Count(bytes.TrimSpace(msg), []byte("\n")) != 0 {
		t.Errorf("want one line saying root is needed, got: %s", msg)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("%s created (stat: %v)", out, err)
	}
}
