package store

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// envRequire is the variable (see internal/kerneltest) under which tests
// that need root fail instead of skipping.
const envRequire = "EBPFREC_REQUIRE_KERNEL_TESTS"

// requireRoot skips t unless it runs as root (or fails under envRequire).
func requireRoot(t *testing.T, why string) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv(envRequire) != "" {
		t.Fatalf("%s needs root (%s is set)", why, envRequire)
	}
	t.Skipf("skipping: %s needs root to mount a tmpfs (run as root: `sudo make test`)", why)
}

// mountTmpfs mounts a tmpfs with the given options on a new directory.
func mountTmpfs(t *testing.T, opts string) string {
	t.Helper()
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, opts); err != nil {
		if os.Getenv(envRequire) != "" {
			t.Fatalf("mount tmpfs: %v", err)
		}
		t.Skipf("skipping: cannot mount a tmpfs: %v", err)
	}
	t.Cleanup(func() { syscall.Unmount(dir, syscall.MNT_DETACH) })
	return dir
}

func TestDiskFull(t *testing.T) {
	requireRoot(t, "the disk-full test")
	mnt := mountTmpfs(t, "size=3m")
	dir := filepath.Join(mnt, "rec")
	w, err := Create(dir, testMeta(), WriterOptions{MaxSegmentBytes: 1 << 20, FlushBytes: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 1))
	var want []*Batch
	var werr error
	for i := 0; i < 100000; i++ {
		b := genBatch(rng, i, testBase.Add(time.Duration(i)*time.Millisecond))
		if werr = w.Append(b); werr != nil {
			break
		}
		want = append(want, cloneBatch(b))
	}
	if werr == nil {
		t.Fatal("wrote 100000 batches to a 3 MiB tmpfs")
	}
	if !errors.Is(werr, syscall.ENOSPC) || !strings.Contains(werr.Error(), "no space left on device") {
		t.Fatalf("error does not name the cause: %v", werr)
	}
	if !strings.Contains(werr.Error(), "store: segment 0000") {
		t.Fatalf("error does not name the segment: %v", werr)
	}
	committed := w.Committed()
	if err := w.Close(); err == nil {
		t.Fatal("Close after a full disk returned no error")
	}
	if err := w.Append(want[0]); err == nil {
		t.Fatal("Append after the writer stopped succeeded")
	}
	rep, err := Verify(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() {
		t.Fatalf("verify after a full disk: %v", rep.Problems)
	}
	got := readAll(t, dir, ReaderOptions{})
	if uint64(len(got)) < committed {
		t.Fatalf("read %d batches, %d were committed", len(got), committed)
	}
	for i := range got {
		batchesEqual(t, got[i], want[i])
	}
	t.Logf("disk full after %d batches, %d committed: %v", len(want), committed, werr)
}

func TestReadOnlyDirectory(t *testing.T) {
	requireRoot(t, "the read-only directory test")
	mnt := mountTmpfs(t, "size=1m")
	if err := syscall.Mount("", mnt, "", syscall.MS_REMOUNT|syscall.MS_RDONLY, ""); err != nil {
		t.Fatalf("remount read-only: %v", err)
	}
	_, err := Create(filepath.Join(mnt, "rec"), testMeta(), WriterOptions{})
	if err == nil || !strings.Contains(err.Error(), "read-only file system") {
		t.Fatalf("create on a read-only file system: %v", err)
	}
	// A recording on a read-only file system reads fine.
	mnt2 := mountTmpfs(t, "size=4m")
	dir := filepath.Join(mnt2, "rec")
	want := writeRecording(t, dir, 200, WriterOptions{})
	if err := syscall.Mount("", mnt2, "", syscall.MS_REMOUNT|syscall.MS_RDONLY, ""); err != nil {
		t.Fatalf("remount read-only: %v", err)
	}
	got := readAll(t, dir, ReaderOptions{})
	if len(got) != len(want) {
		t.Fatalf("read %d of %d batches from a read-only file system", len(got), len(want))
	}
	if rep, err := Verify(dir); err != nil || !rep.OK() {
		t.Fatalf("verify on a read-only file system: %v %v", err, rep.Problems)
	}
}

// TestReadOnlyDirectoryPermissions: Create in a directory the user may not
// write to fails with a permission error. Root ignores directory
// permissions, so as root the check runs in a child as nobody (setpriv).
func TestReadOnlyDirectoryPermissions(t *testing.T) {
	dir := t.TempDir()
	if os.Geteuid() != 0 {
		os.Chmod(dir, 0o500)
		defer os.Chmod(dir, 0o700)
		if err := createIn(dir); err != nil {
			t.Fatal(err)
		}
		return
	}
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Fatalf("as root the test runs as nobody through setpriv (util-linux), not found: %v", err)
	}
	// nobody may enter the directory, not write to it.
	for d := dir; d != os.TempDir() && d != "/"; d = filepath.Dir(d) {
		os.Chmod(d, 0o755)
	}
	cmd := exec.Command(setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", os.Args[0])
	cmd.Env = append(os.Environ(), envReadOnlyChild+"="+dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("as nobody: %v\n%s", err, out)
	}
}

const envReadOnlyChild = "STORE_TEST_READONLY_DIR"

// createIn checks that Create in dir fails with a permission error.
func createIn(dir string) error {
	_, err := Create(filepath.Join(dir, "rec"), testMeta(), WriterOptions{})
	if err == nil || !errors.Is(err, os.ErrPermission) {
		return fmt.Errorf("create in a read-only directory: %v, want a permission error", err)
	}
	return nil
}

func TestVanishedDirectory(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "rec")
	w, err := Create(dir, testMeta(), WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 1))
	if err := w.Append(genBatch(rng, 0, testBase)); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	w.Append(genBatch(rng, 1, testBase))
	err = w.Flush()
	if err == nil || !strings.Contains(err.Error(), "vanished") || !strings.Contains(err.Error(), dir) {
		t.Fatalf("flush into a vanished directory: %v", err)
	}
	if err := w.Close(); err == nil {
		t.Fatal("close after the directory vanished returned no error")
	}
	if _, err := Open(dir, ReaderOptions{}); err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("open of a vanished recording: %v", err)
	}
}

func TestRetention(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "rec")
	want := writeRecording(t, dir, 3000, WriterOptions{MaxSegmentBytes: 256 << 10, FlushBytes: 64 << 10, KeepSegments: 3, Sync: SyncNever})
	segs, _ := listSegments(dir)
	if len(segs) != 3 { // KeepSegments counts the segment being written too
		t.Fatalf("%d segments kept, want 3", len(segs))
	}
	got := readAll(t, dir, ReaderOptions{})
	if len(got) == 0 || got[len(got)-1].Seq != want[len(want)-1].Seq {
		t.Fatal("newest batches missing")
	}
	first := got[0]
	// The kept batches are exactly the newest ones.
	for i, b := range want[len(want)-len(got):] {
		batchesEqual(t, got[i], b)
	}
	s, err := Info(dir)
	if err != nil {
		t.Fatal(err)
	}
	if s.Deleted == nil || s.Deleted.LastSeq+1 != s.FirstSeq || s.FirstSeq > first.Seq || s.Deleted.Segments != segs[0].index-1 || s.Deleted.To.IsZero() {
		t.Fatalf("deletion record %+v, first kept batch %d", s.Deleted, first.Seq)
	}
	if rep, err := Verify(dir); err != nil || !rep.OK() {
		t.Fatalf("verify after retention: %v %v", err, rep.Problems)
	}
	// KeepBytes.
	dir2 := filepath.Join(t.TempDir(), "rec")
	writeRecording(t, dir2, 3000, WriterOptions{MaxSegmentBytes: 256 << 10, FlushBytes: 64 << 10, KeepBytes: 600 << 10, Sync: SyncNever})
	segs, _ = listSegments(dir2)
	var total int64
	for _, s := range segs {
		fi, _ := os.Stat(s.path)
		total += fi.Size()
	}
	if total > 600<<10 || len(segs) < 2 {
		t.Fatalf("%d bytes kept in %d segments, limit 600 KiB", total, len(segs))
	}
}

// TestRetentionRefusesImpossible: settings that would keep no history are
// refused with a message saying why, before anything is written.
func TestRetentionRefusesImpossible(t *testing.T) {
	for _, c := range []struct {
		opts WriterOptions
		want string
	}{
		{WriterOptions{KeepSegments: 1}, "KeepSegments 1 would keep only the segment being written"},
		{WriterOptions{KeepSegments: -2}, "KeepSegments -2"},
		{WriterOptions{KeepBytes: -1}, "KeepBytes -1"},
		{WriterOptions{MaxSegmentBytes: 1 << 20, KeepBytes: 1<<20 + 1}, "less than two segments"},
	} {
		dir := filepath.Join(t.TempDir(), "rec")
		w, err := Create(dir, testMeta(), c.opts)
		if err == nil {
			w.Close()
			t.Errorf("%+v: accepted", c.opts)
			continue
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want it to say %q", c.opts, err, c.want)
		}
		if segs, _ := listSegments(dir); len(segs) != 0 {
			t.Errorf("%+v: refused but wrote %d segments", c.opts, len(segs))
		}
	}
	// Two segments' worth is enough: the newest closed segment is kept at
	// every rotation, so history is never all deleted.
	dir := filepath.Join(t.TempDir(), "rec")
	want := writeRecording(t, dir, 3000, WriterOptions{MaxSegmentBytes: 256 << 10, FlushBytes: 64 << 10, KeepBytes: 512 << 10, Sync: SyncNever})
	got := readAll(t, dir, ReaderOptions{})
	segs, _ := listSegments(dir)
	if len(segs) < 2 || len(got) == 0 || got[len(got)-1].Seq != want[len(want)-1].Seq {
		t.Fatalf("KeepBytes of two segments: %d segments, %d batches kept", len(segs), len(got))
	}
}
