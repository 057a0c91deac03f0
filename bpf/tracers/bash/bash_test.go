package bash_test

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ebpfrec/ebpfrec/bpf"
	"github.com/ebpfrec/ebpfrec/bpf/tracers"
	"github.com/ebpfrec/ebpfrec/bpf/tracers/bash"
	"github.com/ebpfrec/ebpfrec/bpf/tracers/internal/tracertest"
)

func TestMain(m *testing.M) { tracertest.Main(m, nil) }

// openPTY opens a pseudo-terminal: the master side (the test's keyboard
// and screen) and the slave side (the shell's terminal).
func openPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("open /dev/ptmx: %v", err)
	}
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatalf("unlock the pty: %v", err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatalf("pty number: %v", err)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("open the pty's slave: %v", err)
	}
	t.Cleanup(func() { m.Close(); s.Close() })
	return m, s
}

// TestInteractiveBash types command lines into a bash under a
// pseudo-terminal: exactly those lines are recorded, in order, by that
// bash; a non-interactive bash (the one instrumented first, reading with
// `read`) records nothing.
func TestInteractiveBash(t *testing.T) {
	f := tracertest.NewFilter(t)
	tr := bash.New(tracers.Options{Filter: f, WakeupEvery: 1})
	tracertest.LoadTracer(t, tr)
	r := tracertest.NewReader(t, tr, bash.StreamBash)

	// bash is instrumented through a process that maps it (the probe goes
	// on the file), before the interactive one starts: a uretprobe
	// attached while readline runs would miss that call's return.
	helper := exec.Command("bash", "-c", "read -r x")
	hin, err := helper.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := helper.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hin.Close(); helper.Wait() })
	waitExec(t, helper.Process.Pid, "bash")
	pt := bpf.NewProcessTracer(bpf.Generic, nil, tr)
	t.Cleanup(func() { pt.Close() })
	if err := pt.Instrument(&bpf.Instrumentable{FileInfo: &bpf.FileInfo{PID: int32(helper.Process.Pid)}}); err != nil {
		t.Fatalf("Instrument: %v", err)
	}

	master, slave := openPTY(t)
	sh := exec.Command("bash", "--norc", "--noprofile", "-i")
	sh.Stdin, sh.Stdout, sh.Stderr = slave, slave, slave
	sh.Env = []string{"TERM=dumb", "INPUTRC=/dev/null", "HOME=" + t.TempDir(), "PS1=$ ", "HISTFILE=/dev/null", "PATH=" + os.Getenv("PATH")}
	sh.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	if err := sh.Start(); err != nil {
		t.Fatal(err)
	}
	tr.AllowPID(uint32(sh.Process.Pid), 0, nil)
	var screen strings.Builder
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // the screen: bash blocks if nobody reads it
		defer wg.Done()
		b := make([]byte, 4096)
		for {
			n, err := master.Read(b)
			screen.Write(b[:n])
			if err != nil {
				return
			}
		}
	}()
	lines := []string{"echo hello-1", "true", `x=2; echo "x is $x"`, "exit"}
	for _, l := range lines {
		if _, err := io.WriteString(master, l+"\n"); err != nil {
			t.Fatal(err)
		}
	}
	done := make(chan error, 1)
	go func() { done <- sh.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("bash: %v", err)
		}
	case <-time.After(2 * time.Minute):
		sh.Process.Kill()
		t.Fatal("bash did not exit")
	}
	// bash's last output may still be in the terminal: read it to the end
	// (EIO once no slave is open) before closing the master, which drops
	// what is unread (seen in the 6.12 VM).
	slave.Close()
	read := make(chan struct{})
	go func() { wg.Wait(); close(read) }()
	select {
	case <-read:
	case <-time.After(30 * time.Second):
	}
	master.Close()
	wg.Wait()
	if !strings.Contains(screen.String(), "x is 2") {
		t.Errorf("bash's screen lacks the output of the third line:\n%s", screen.String())
	}

	evs := r.DrainAtLeast(t, len(lines), 30*time.Second)
	tracertest.CheckAccounting(t, tr, r, len(evs))
	var got []string
	for _, e := range evs {
		b := e.(*bash.Event)
		if int(b.Pid) != sh.Process.Pid || b.EOF || b.Truncated || b.UID != uint32(os.Getuid()) {
			t.Errorf("event %s: want a line of pid %d", tracers.AppendLine(nil, e), sh.Process.Pid)
		}
		got = append(got, b.Line)
	}
	if fmt.Sprintf("%q", got) != fmt.Sprintf("%q", lines) {
		t.Errorf("recorded lines %q, want %q", got, lines)
	}
}

func FuzzDecode(f *testing.F) {
	raw := make([]byte, bash.EventSize)
	copy(raw[32:], "ls -l")
	f.Add(raw)
	f.Add(raw[:20])
	f.Fuzz(func(t *testing.T, b []byte) {
		var ev bash.Event
		if err := bash.Decode(b, &ev); err == nil {
			_ = tracers.AppendLine(nil, &ev)
		}
	})
}

// waitExec waits until process pid runs the executable named base: a
// child's maps can still be its parent's just after Start (seen in the
// 6.12 VM, where the helper was still the test binary), and instrumenting
// it then finds no bash. Bounded: a hang guard, not a timing assertion.
func waitExec(t *testing.T, pid int, base string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
		if err == nil && filepath.Base(exe) == base {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("process %d runs %q (%v), not %s", pid, exe, err, base)
		}
		time.Sleep(time.Millisecond)
	}
}
