package record

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ebpfrec/ebpfrec/store"
)

const (
	sigterm = syscall.SIGTERM
	sigkill = syscall.SIGKILL
)

// hostMeta describes this machine for the recording's metadata. It always
// returns a usable Meta; the error says what could not be found out.
func hostMeta() (store.Meta, error) {
	var errs []error
	m := store.Meta{RecordingID: newID()}
	var err error
	if m.Hostname, err = os.Hostname(); err != nil {
		errs = append(errs, err)
	}
	if m.KernelRelease, err = kernelRelease(); err != nil {
		errs = append(errs, err)
	}
	if b, err := os.ReadFile("/proc/sys/kernel/random/boot_id"); err == nil {
		m.BootID = strings.TrimSpace(string(b))
	} else {
		errs = append(errs, err)
	}
	m.MonoToWall = monoToWall()
	if id, err := btfID(); err == nil {
		m.BTFID = id
	} else {
		errs = append(errs, err)
	}
	return m, errors.Join(errs...)
}

// kernelRelease returns uname -r.
func kernelRelease() (string, error) {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return "", err
	}
	return unix.ByteSliceToString(u.Release[:]), nil
}

// monoToWall returns wall time minus CLOCK_MONOTONIC in nanoseconds (what
// turns bpf_ktime_get_ns() into wall time), taking the reading whose two
// wall-clock samples are closest, to bound the error.
func monoToWall() int64 {
	best, bestGap := int64(0), int64(-1)
	for i := 0; i < 5; i++ {
		var ts unix.Timespec
		w1 := time.Now().UnixNano()
		_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
		w2 := time.Now().UnixNano()
		if gap := w2 - w1; bestGap < 0 || gap < bestGap {
			bestGap = gap
			best = w1 + gap/2 - ts.Nano()
		}
	}
	return best
}

// btfID identifies the kernel's type information: a hash of its BTF.
func btfID() (string, error) {
	f, err := os.Open("/sys/kernel/btf/vmlinux")
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil))[:32], nil
}

func newID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return time.Now().UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(b[:])
}
