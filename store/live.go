package store

// Reading a recording that is still being written.
//
// A writer holds its open segment locked. Readers read it anyway, through
// a copy of its last commit: bbolt writes a commit's pages before the meta
// page that makes them current, and only reuses a page two commits after
// the one that freed it, so a byte copy of the file whose meta pages did
// not change while it was made holds a consistent tree at that meta's
// transaction. liveFiles checks exactly that, and retries or leaves the
// segment out if the writer committed during every copy.

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	bolt "go.etcd.io/bbolt"
)

// snapshotTries is how often a segment that keeps changing under the
// copy is copied before it is left out.
const snapshotTries = 3

// liveFiles replaces, in files, the segments a writer holds by copies of
// their last commit, made in a new directory under scratch (os.TempDir()
// if empty) that it returns ("" if no copy was made) for the caller to
// remove. A segment that vanished meanwhile (retention) is dropped; one
// that could not be copied consistently stays, to be reported as being
// written. Only the two newest segments can be held by a writer (the
// open one, and the previous one while it is being closed).
func liveFiles(files []segFile, scratch string) (_ []segFile, tmp string, err error) {
	out := make([]segFile, 0, len(files))
	defer func() {
		if err != nil && tmp != "" {
			os.RemoveAll(tmp)
			tmp = ""
		}
	}()
	for i, f := range files {
		if f.bad != nil || f.live || i < len(files)-2 {
			out = append(out, f)
			continue
		}
		locked, err := lockedByWriter(f.path)
		if err != nil {
			if os.IsNotExist(err) {
				continue // deleted by retention meanwhile
			}
			return nil, tmp, fmt.Errorf("store: %s: %w", segName(f.index), err)
		}
		if !locked {
			out = append(out, f)
			continue
		}
		if tmp == "" {
			if tmp, err = os.MkdirTemp(scratch, "ebpfrec-live-"); err != nil {
				return nil, "", fmt.Errorf("store: scratch directory for reading the segment being written: %w", err)
			}
			if err := os.Chmod(tmp, 0o700); err != nil {
				return nil, tmp, fmt.Errorf("store: %w", err)
			}
		}
		dst := filepath.Join(tmp, filepath.Base(f.path))
		ok, err := snapshotSegment(f.path, dst)
		if err != nil {
			if os.IsNotExist(err) {
				continue
			}
			return nil, tmp, fmt.Errorf("store: %s: copying the segment being written: %w", segName(f.index), err)
		}
		if ok {
			f = segFile{index: f.index, path: dst, live: true}
		}
		out = append(out, f)
	}
	return out, tmp, nil
}

// OpenLive opens the recording in dir like Open, for following a recording
// that a writer is still appending to: it reads the segments whose index is
// fromSegment or more (at least the newest segment), the one being written
// as of its last commit, copied under scratch (os.TempDir() if empty).
//
// Records the caller already has (earlier sequence numbers) are delivered
// again and are for the caller to skip. A segment that changed during
// every copy attempt, or that its writer is only creating, is left out:
// the next call picks it up. Reader.Deleted says what retention deleted,
// for a caller to tell what it could not read in time.
func OpenLive(dir string, opts ReaderOptions, fromSegment int, scratch string) (*Reader, error) {
	files, err := recordingSegments(dir)
	if err != nil {
		return nil, err
	}
	sel := files[:0:0]
	for _, f := range files {
		if f.index >= fromSegment {
			sel = append(sel, f)
		}
	}
	if len(sel) == 0 {
		sel = files[len(files)-1:]
	}
	if scratch != "" {
		opts.ScratchDir = scratch
	}
	r, err := openFiles(dir, sel, opts)
	if err != nil {
		return nil, err
	}
	for _, si := range r.segs {
		if !si.BeingWritten && !errors.Is(si.err, errNotRegular) {
			return r, nil
		}
	}
	r.Close()
	return nil, fmt.Errorf("store: %s: %w", dir, ErrNothingCommitted)
}

// ErrNothingCommitted is wrapped by OpenLive's error when no selected
// segment has a first commit yet (a writer creating its first segment).
var ErrNothingCommitted = errors.New("no committed segment yet")

// lockDir takes the recording directory's lock, which a Writer holds for
// its whole life, from its first segment's creation to its Close: readers
// test it (writerActive) to tell a recording being written from a
// finished or crashed one, even between two segments, when no segment is
// locked. A second writer on the same directory is refused.
func lockDir(dir string) (*os.File, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, fmt.Errorf("store: recording directory: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if err == syscall.EWOULDBLOCK {
			return nil, fmt.Errorf("store: %s is being written by another recorder", dir)
		}
		return nil, fmt.Errorf("store: locking recording directory %s: %w", dir, err)
	}
	return f, nil
}

// writerActive says whether a Writer is writing the recording in dir.
func writerActive(dir string) bool {
	locked, err := lockedByWriter(dir)
	return err == nil && locked
}

// lockedByWriter says whether a writer holds the segment's bbolt lock.
func lockedByWriter(path string) (bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return false, err
	}
	defer f.Close()
	err = syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB)
	if err == syscall.EWOULDBLOCK {
		return true, nil
	}
	if err != nil {
		return false, err
	}
	_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	return false, nil
}

// snapshotSegment copies the committed state of the segment at src, which
// its writer holds open, to dst. It returns false (and no dst) if no
// consistent copy could be made (the writer committed during every attempt,
// or has not committed the segment's first transaction yet).
func snapshotSegment(src, dst string) (bool, error) {
	for range snapshotTries {
		ok, err := liveCopyOnce(src, dst)
		if err != nil || ok {
			return ok, err
		}
	}
	os.Remove(dst)
	return false, nil
}

func liveCopyOnce(src, dst string) (bool, error) {
	in, err := os.Open(src)
	if err != nil {
		return false, err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return false, err
	}
	_, err = io.Copy(out, in)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return false, err
	}
	// The transaction of the copy is the newest valid meta page it holds
	// (its first two pages were read first, at the start of the copy).
	var head [2 * pageSize]byte
	c, err := os.Open(dst)
	if err != nil {
		return false, err
	}
	_, err = io.ReadFull(c, head[:])
	c.Close()
	if err != nil {
		return false, nil // not even two pages: still being created
	}
	cm, ok := newestMeta(head[:])
	if !ok {
		return false, nil
	}
	if _, err := in.ReadAt(head[:], 0); err != nil {
		return false, err
	}
	nm, _ := newestMeta(head[:])
	if nm.txid != cm.txid {
		return false, nil
	}
	// A segment whose writer has not committed its metadata yet is not
	// a segment yet.
	return liveHasSegMeta(dst), nil
}

// liveHasSegMeta says whether the bbolt file at path holds a segment's
// metadata. The file is a copy of a segment being written: a copy whose
// meta page counts pages that the copy does not hold (the writer grew the
// file while it was copied) fails checkPages, and is never mapped by bbolt,
// where reading past its end would kill the process with SIGBUS (seen
// under the kernel matrix's slow VMs).
func liveHasSegMeta(path string) (ok bool) {
	if _, fatal := checkPages(path); fatal {
		return false
	}
	defer func() {
		if p := recover(); p != nil {
			if !boltPanic(p) {
				panic(p)
			}
			ok = false
		}
	}()
	db, err := openSegmentRO(path)
	if err != nil {
		return false
	}
	defer db.Close()
	return db.View(func(tx *bolt.Tx) error {
		_, err := readSegMeta(tx)
		return err
	}) == nil
}

// deletedByRetention reports whether segments from to last of a recording
// a writer is writing in dir, which a listing missed, are explained by its
// retention: it deletes the oldest segments first, so a listing made
// meanwhile can hold an old segment (from) and miss younger ones, and then
// from is gone too. A segment missing while an older one is still there is
// damage.
func deletedByRetention(dir string, from, last int) bool {
	if from < 1 {
		return false
	}
	for i := from; i <= last; i++ {
		if _, err := os.Lstat(filepath.Join(dir, segmentName(i))); !errors.Is(err, fs.ErrNotExist) {
			return false
		}
	}
	return true
}
