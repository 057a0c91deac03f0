package store

// Following a recording that is still being written (replay --follow).
//
// A Reader skips the segment its writer holds locked. OpenLive reads it
// anyway, through a copy of its last commit: bbolt writes a commit's pages
// before the meta page that makes them current, and only reuses a page two
// commits after the one that freed it, so a byte copy of the file whose meta
// pages did not change while it was made holds a consistent tree at that
// meta's transaction. OpenLive checks exactly that, and retries or leaves the
// segment for the next call if the writer committed meanwhile.
//
// This file only adds to the package: it uses Open on a scratch directory of
// symbolic links to the segments (and the copy), so the Reader is unchanged.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"os"
	"path/filepath"
	"syscall"

	bolt "go.etcd.io/bbolt"
)

// LiveReader is a Reader over a recording that a writer may still be
// appending to (see OpenLive). Its Close also removes its scratch files.
type LiveReader struct {
	*Reader
	tmp string
}

// Close closes the reader and removes its scratch directory.
func (l *LiveReader) Close() error {
	err := l.Reader.Close()
	if rerr := os.RemoveAll(l.tmp); err == nil {
		err = rerr
	}
	return err
}

// snapshotTries is how often OpenLive copies a segment that keeps changing
// under it before leaving it for the next call.
const snapshotTries = 3

// OpenLive opens the recording in dir like Open, for following a recording
// that a writer is still appending to: it reads the segments whose index is
// fromSegment or more (at least the newest segment), and a segment locked by
// its writer is read through a consistent copy of its last commit, made in a
// new directory under scratch (os.TempDir() if empty) that Close removes.
//
// The returned reader delivers what was committed when OpenLive ran; records
// the caller already has (earlier sequence numbers) are delivered again and
// are for the caller to skip. Segments() paths name the scratch directory. A
// segment that changed during every copy attempt, or that its writer is only
// creating, is left out: the next call picks it up.
func OpenLive(dir string, opts ReaderOptions, fromSegment int, scratch string) (*LiveReader, error) {
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
	tmp, err := os.MkdirTemp(scratch, "ebpfrec-live-")
	if err != nil {
		return nil, fmt.Errorf("store: scratch directory for following: %w", err)
	}
	if err := os.Chmod(tmp, 0o700); err != nil {
		os.RemoveAll(tmp)
		return nil, fmt.Errorf("store: %w", err)
	}
	// Closed segments are read where they are; a segment being written is
	// read from a consistent copy in tmp. Entries that are not segment
	// files (links, FIFOs) are passed on unopened, to be reported.
	var live []segFile
	n := 0
	for _, f := range sel {
		if f.bad != nil {
			live = append(live, f)
			continue
		}
		locked, err := lockedByWriter(f.path)
		if err != nil {
			if os.IsNotExist(err) {
				continue // deleted by retention meanwhile
			}
			os.RemoveAll(tmp)
			return nil, fmt.Errorf("store: %s: %w", segName(f.index), err)
		}
		if !locked {
			live = append(live, f)
			n++
			continue
		}
		dst := filepath.Join(tmp, filepath.Base(f.path))
		ok, err := snapshotSegment(f.path, dst)
		if err != nil {
			os.RemoveAll(tmp)
			return nil, fmt.Errorf("store: %s: copying the segment being written: %w", segName(f.index), err)
		}
		if ok {
			live = append(live, segFile{index: f.index, path: dst})
			n++
		}
	}
	if n == 0 {
		os.RemoveAll(tmp)
		return nil, fmt.Errorf("store: %s: %w", dir, ErrNothingCommitted)
	}
	r, err := openFiles(dir, live, opts)
	if err != nil {
		os.RemoveAll(tmp)
		return nil, err
	}
	return &LiveReader{Reader: r, tmp: tmp}, nil
}

// ErrNothingCommitted is wrapped by OpenLive's error when no selected
// segment has a first commit yet (a writer creating its first segment).
var ErrNothingCommitted = errors.New("no committed segment yet")

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
	copied, ok := liveMetaTxid(head[:])
	if !ok {
		return false, nil
	}
	if _, err := in.ReadAt(head[:], 0); err != nil {
		return false, err
	}
	now, _ := liveMetaTxid(head[:])
	if now != copied {
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
		if recover() != nil {
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

// bbolt's meta page: a 16-byte page header, then magic, version, page size,
// flags (4 bytes each), root bucket (16), freelist (8), pgid (8), txid (8),
// checksum (8, FNV-64a of what precedes it in the meta).
const (
	liveBoltMagic   = 0xED0CDAED
	liveBoltVersion = 2
	liveMetaOff     = 16
	liveTxidOff     = liveMetaOff + 48
	liveSumOff      = liveMetaOff + 56
	liveMetaLen     = liveMetaOff + 64
)

// liveMetaTxid returns the transaction id of the newest valid meta page in the
// first two pages of a bbolt file.
func liveMetaTxid(head []byte) (uint64, bool) {
	var best uint64
	found := false
	for p := range 2 {
		m := head[p*pageSize : p*pageSize+liveMetaLen]
		if binary.NativeEndian.Uint32(m[liveMetaOff:]) != liveBoltMagic || binary.NativeEndian.Uint32(m[liveMetaOff+4:]) != liveBoltVersion {
			continue
		}
		h := fnv.New64a()
		h.Write(m[liveMetaOff:liveSumOff])
		if h.Sum64() != binary.NativeEndian.Uint64(m[liveSumOff:]) {
			continue
		}
		txid := binary.NativeEndian.Uint64(m[liveTxidOff:])
		if !found || txid > best {
			best, found = txid, true
		}
	}
	return best, found
}
