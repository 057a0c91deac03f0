// Package kerneltest gates tests that need a BPF-capable kernel and root.
//
// Such tests call Require at their start. Without the privileges they skip
// with a message that says what is missing. When the environment variable
// EBPFREC_REQUIRE_KERNEL_TESTS is set (CI sets it: CI runs as root on a
// BPF-capable kernel), a missing privilege fails the test instead, so a run
// that silently skipped the kernel tests can never pass as green.
package kerneltest

import (
	"errors"
	"os"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/rlimit"
)

// EnvRequire is the environment variable that turns skips into failures.
const EnvRequire = "EBPFREC_REQUIRE_KERNEL_TESTS"

// Require skips (or, under EnvRequire, fails) t unless the process can load
// BPF programs and tracefs is mounted.
func Require(tb testing.TB) {
	tb.Helper()
	if err := Check(); err != nil {
		if os.Getenv(EnvRequire) != "" {
			tb.Fatalf("kernel test cannot run (%s is set): %v", EnvRequire, err)
		}
		tb.Skipf("skipping kernel test: %v (run as root with tracefs and bpffs mounted: `sudo make test`)", err)
	}
}

// Check reports why kernel tests cannot run here, or nil.
func Check() error {
	if os.Geteuid() != 0 {
		return errors.New("not running as root")
	}
	if _, err := os.Stat("/sys/kernel/tracing/events"); err != nil {
		return errors.New("tracefs is not mounted at /sys/kernel/tracing (scripts/mounts.sh mounts it)")
	}
	_ = rlimit.RemoveMemlock()
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Type:         ebpf.SocketFilter,
		License:      "MIT",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 0), asm.Return()},
	})
	if err != nil {
		return errors.New("cannot load a trivial BPF program: " + err.Error())
	}
	prog.Close()
	return nil
}
