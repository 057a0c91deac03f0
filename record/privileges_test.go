package record

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"golang.org/x/sys/unix"

	"github.com/ebpfrec/ebpfrec/internal/kerneltest"
)

// envRejected makes the test binary record a collection that the verifier
// rejects and print Run's error (see TestMain).
const envRejected = "EBPFREC_TEST_REJECTED"

// rejectedCollection has a program that reads a register it never set.
func rejectedCollection() Collection {
	spec := &ebpf.CollectionSpec{
		Maps: map[string]*ebpf.MapSpec{"events": {Name: "events", Type: ebpf.RingBuf, MaxEntries: 4096}},
		Programs: map[string]*ebpf.ProgramSpec{"bad": {Name: "bad", Type: ebpf.TracePoint, License: "GPL",
			Instructions: asm.Instructions{asm.Mov.Reg(asm.R0, asm.R2), asm.Return()}}},
	}
	return Collection{Name: "rejected", Spec: spec, Streams: []Stream{{Map: "events"}},
		Attach: []Attachment{{Kind: "tracepoint", Target: "syscalls/sys_enter_getsid", Program: "bad"}}}
}

func recordRejected(dir string) error {
	rec, err := New(Options{Dir: dir})
	if err != nil {
		return err
	}
	if err := rec.AddCollection(rejectedCollection()); err != nil {
		return err
	}
	_, err = rec.Run(context.Background())
	return err
}

func rejectedChild() {
	err := recordRejected(os.Getenv(envRejected))
	var verr *ebpf.VerifierError
	fmt.Printf("verifier error: %v\n%v\n", errors.As(err, &verr), err)
	os.Exit(0)
}

// A verifier rejection is reported as such, with the verifier's log, and
// not as a want of privileges: neither as root nor as a user with CAP_BPF
// and CAP_PERFMON, who was told "recording needs root ... run with sudo"
// (the kernel's EACCES looked like a permission error).
func TestVerifierRejectionIsNotAPrivilegeError(t *testing.T) {
	kerneltest.Require(t)
	check := func(t *testing.T, out string) {
		t.Helper()
		if !strings.HasPrefix(out, "verifier error: true\n") || !strings.Contains(out, "verifier log:") || !strings.Contains(out, "R2 !read_ok") {
			t.Errorf("not reported as a verifier rejection with its log:\n%s", out)
		}
		for _, bad := range []string{"sudo", "needs root", "CAP_BPF"} {
			if strings.Contains(out, bad) {
				t.Errorf("the error says %q:\n%s", bad, out)
			}
		}
	}
	t.Run("root", func(t *testing.T) {
		err := recordRejected(filepath.Join(t.TempDir(), "rec"))
		var verr *ebpf.VerifierError
		check(t, fmt.Sprintf("verifier error: %v\n%v\n", errors.As(err, &verr), err))
	})
	t.Run("capabilities", func(t *testing.T) {
		// The test binary, run as nobody with CAP_BPF and CAP_PERFMON only,
		// from a folder nobody may enter.
		dir, err := os.MkdirTemp("", "ebpfrec-caps-")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
		bin := filepath.Join(dir, "record.test")
		b, err := os.ReadFile(os.Args[0])
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(bin, b, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(bin)
		cmd.Env = append(os.Environ(), envRejected+"="+filepath.Join(dir, "rec"))
		cmd.SysProcAttr = &syscall.SysProcAttr{
			Credential:  &syscall.Credential{Uid: 65534, Gid: 65534},
			AmbientCaps: []uintptr{unix.CAP_BPF, unix.CAP_PERFMON},
		}
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		check(t, string(out))
	})
}
