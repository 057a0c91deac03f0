package record

// What recording needs of the host: privileges and tracefs.

import (
	"errors"
	"fmt"
	"log/slog"
	"os"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// explainPrivileges adds what to do to permission errors of a process that
// lacks the privileges to record. A process that has them (root, or
// CAP_BPF and CAP_PERFMON) gets its permission errors from elsewhere, as
// does anyone whose program the verifier rejected (EACCES): lockdown, or
// the program itself.
func explainPrivileges(err error) error {
	var verr *ebpf.VerifierError
	if !errors.Is(err, os.ErrPermission) || errors.As(err, &verr) || privileged() {
		return err
	}
	return fmt.Errorf("%w (recording needs root, or CAP_BPF and CAP_PERFMON: run with sudo)", err)
}

// privileged reports whether this process may load tracing BPF programs:
// it is root, or has CAP_BPF and CAP_PERFMON in its effective set.
func privileged() bool {
	if os.Geteuid() == 0 {
		return true
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return false
	}
	has := func(c uint) bool { return data[c/32].Effective&(1<<(c%32)) != 0 }
	return has(unix.CAP_BPF) && has(unix.CAP_PERFMON)
}

// ensureTracefs mounts tracefs at /sys/kernel/tracing where it is missing
// (tracepoint attachment needs it), and says so. Without the privilege to
// mount, the tracers that need it say what to do when they attach.
func ensureTracefs(log *slog.Logger) error {
	const dir = "/sys/kernel/tracing"
	if _, err := os.Stat(dir + "/events"); err == nil {
		return nil
	}
	if _, err := os.Stat("/sys/kernel/debug/tracing/events"); err == nil {
		return nil
	}
	if os.Geteuid() != 0 {
		return nil
	}
	if err := unix.Mount("tracefs", dir, "tracefs", 0, ""); err != nil {
		return fmt.Errorf("record: tracefs is not mounted and mounting it failed: %w (mount -t tracefs tracefs %s)", err, dir)
	}
	log.Warn("record: mounted tracefs at " + dir)
	return nil
}
