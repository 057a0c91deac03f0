package common

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// TestMountDev: for a file of a file system whose stat reports its
// superblock's device (the test's temporary folder: ext4, tmpfs), the
// device of its mount from mountinfo is stat's, converted; through a
// symbolic link too. mountinfo's escapes are undone.
func TestMountDev(t *testing.T) {
	// On a tmpfs of its own, stat's device is the superblock's whatever
	// file system holds the temporary directory (on btrfs it is not).
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=1m"); err != nil {
		t.Skipf("mounting a tmpfs needs root (CAP_SYS_ADMIN): %v", err)
	}
	t.Cleanup(func() { syscall.Unmount(dir, syscall.MNT_DETACH) })
	p := filepath.Join(dir, "f")
	if err := os.WriteFile(p, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	l := filepath.Join(dir, "link")
	if err := os.Symlink(p, l); err != nil {
		t.Fatal(err)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(p, &st); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{p, l} {
		got, ok := mountDev(path)
		if !ok || got != KernelDev(uint64(st.Dev)) {
			t.Errorf("mountDev(%s) = %#x, %v; want %#x (st_dev %#x)", path, got, ok, KernelDev(uint64(st.Dev)), st.Dev)
		}
	}
	if _, ok := mountDev(filepath.Join(dir, "missing")); ok {
		t.Error("mountDev of a missing file: ok")
	}
	for in, want := range map[string]string{`/a\040b`: "/a b", `/x\134y`: `/x\y`, "/plain": "/plain", `/end\04`: `/end\04`} {
		if got := unescapeMount(in); got != want {
			t.Errorf("unescapeMount(%q) = %q, want %q", in, got, want)
		}
	}
}
