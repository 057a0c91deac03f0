package record

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ebpfrec/ebpfrec/internal/kerneltest"
	"github.com/ebpfrec/ebpfrec/store"
)

// mountTmpfs mounts a tmpfs of size bytes (a disk that fills up) for the
// test, and unmounts it at the end.
func mountTmpfs(t *testing.T, size int) string {
	t.Helper()
	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size="+strconv.Itoa(size)); err != nil {
		t.Fatalf("mount a tmpfs at %s: %v", dir, err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	return dir
}

// readBack counts what the recording in dir holds, per stream: batches and
// events, as store.Open reads them.
func readBack(t *testing.T, dir string) (batches, events map[string]uint64) {
	t.Helper()
	r, err := store.Open(dir, store.ReaderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	batches, events = map[string]uint64{}, map[string]uint64{}
	for {
		b, err := r.Next()
		if errors.Is(err, io.EOF) {
			return batches, events
		}
		if err != nil {
			t.Fatalf("reading back: %v", err)
		}
		batches[b.Stream]++
		events[b.Stream] += uint64(len(b.Events))
	}
}

// A recording onto a disk that fills up (a 1 MiB tmpfs, a getpid storm
// recorded by the syscalls tracer): Run fails with an error that names the
// storage failure, the summary counts as recorded exactly what store.Open
// reads back, and the events read but not stored are counted as lost to the
// storage failure, so that emitted = recorded + every loss still holds, to
// the event. The recorder's note in the recording says how it ended.
// Before, batches taken by the writer but never committed were counted as
// recorded (631,808 claimed for 487,936 stored on a full disk).
func TestFullDiskAccounting(t *testing.T) {
	kerneltest.Require(t)
	dir := filepath.Join(mountTmpfs(t, 1<<20), "rec")
	t.Setenv(envStorm, "1000000")
	rec, err := New(Options{
		NoProc:        true, // the stream under test alone
		Dir:           dir,
		Command:       []string{os.Args[0]},
		CommandStdout: io.Discard, CommandStderr: io.Discard,
		// Small commits: many succeed before the disk is full.
		Store: store.WriterOptions{FlushInterval: 20 * time.Millisecond, FlushBytes: 64 << 10, Uncompressed: true}, // compressed, a slow run may not fill the disk
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := rec.AddBuiltin("syscalls"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	sum, err := rec.Run(ctx)
	if err == nil {
		t.Fatal("the recording filled a 1 MiB disk without an error")
	}
	if !errors.Is(err, syscall.ENOSPC) || !strings.Contains(err.Error(), "storage failure") || !strings.Contains(err.Error(), "storage_lost") {
		t.Errorf("error does not name the storage failure (ENOSPC) and what it cost: %v", err)
	}
	if sum == nil {
		t.Fatal("no summary")
	}
	if !errors.Is(sum.StorageErr, syscall.ENOSPC) {
		t.Errorf("Summary.StorageErr = %v, want the ENOSPC", sum.StorageErr)
	}
	s := sum.Streams[0]
	t.Logf("emitted %d = recorded %d (%d batches) + kernel_lost_ringbuf %d + ebpfrec_dropped %d + storage_lost %d; %v",
		s.Emitted, s.Recorded, s.Batches, s.KernelLostRingbuf, s.EbpfrecDropped, s.StorageLost, err)
	if s.StorageLost == 0 || s.Recorded == 0 {
		t.Errorf("recorded %d, storage_lost %d: want some of each (commits before the disk was full, and after)", s.Recorded, s.StorageLost)
	}
	if s.EbpfrecDropped != 0 {
		t.Errorf("ebpfrec_dropped %d: events lost to the storage failure are counted as such", s.EbpfrecDropped)
	}
	if !s.HasEmitted || s.Emitted != s.Recorded+s.Lost() {
		t.Errorf("emitted %d != recorded %d + lost %d (storage_lost %d)", s.Emitted, s.Recorded, s.Lost(), s.StorageLost)
	}
	batches, events := readBack(t, dir)
	if events[s.Name] != s.Recorded || batches[s.Name] != s.Batches {
		t.Errorf("the recording holds %d events in %d batches; the summary says %d in %d", events[s.Name], batches[s.Name], s.Recorded, s.Batches)
	}
	note, err := ReadNote(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := "storage_lost: " + strconv.FormatUint(s.StorageLost, 10) + " events read from the kernel were not stored"
	if !strings.Contains(note, "ended by a storage failure") || !strings.Contains(note, "no space left on device") || !strings.Contains(note, want) {
		t.Errorf("the recorder's note does not say how the recording ended (want %q):\n%s", want, note)
	}
}

// A recording that ends well leaves no note behind; one that is running
// has it, saying so.
func TestRecorderNoteGoesAtAGoodEnd(t *testing.T) {
	kerneltest.Require(t)
	dir := filepath.Join(t.TempDir(), "rec")
	var during string
	var noteErr error
	rec, err := New(Options{Dir: dir, Duration: time.Millisecond, Started: func() { during, noteErr = ReadNote(dir) }})
	if err != nil {
		t.Fatal(err)
	}
	if err := rec.AddBuiltin("exec"); err != nil {
		t.Fatal(err)
	}
	if _, err := rec.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if noteErr != nil || !strings.Contains(during, "recording since") || !strings.Contains(during, "pid "+strconv.Itoa(os.Getpid())) {
		t.Errorf("note while recording: %q, %v", during, noteErr)
	}
	if _, err := os.Stat(filepath.Join(dir, NoteName)); !os.IsNotExist(err) {
		t.Errorf("%s left after a good end (stat: %v)", NoteName, err)
	}
}
