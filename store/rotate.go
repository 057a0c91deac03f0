package store

// Segments: creating one (atomically), closing it, and retention.

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
)

type closedSeg struct {
	index   int
	path    string
	size    int64
	summary SegmentSummary
}

// openSegment creates segment index and writes its metadata. The segment
// is made under a temporary name (creatingSuffix) and renamed into place
// only once its metadata is durable, so that a crash or power loss during
// creation leaves either no new segment or a complete one, never a
// half-made file that readers would have to call damage.
func (w *Writer) openSegment(index int) error {
	path := filepath.Join(w.dir, segmentName(index))
	tmp := path + creatingSuffix
	name := segName(index)
	if _, err := os.Lstat(path); err == nil {
		return fmt.Errorf("store: %s: %s already exists", name, path)
	}
	// A leftover of an interrupted creation of this very segment (only
	// possible if the recording was resumed by hand) is not a segment.
	os.Remove(tmp)
	db, err := bolt.Open(tmp, 0o600, &bolt.Options{
		Timeout:         time.Second,
		NoFreelistSync:  true,
		FreelistType:    bolt.FreelistMapType,
		PageSize:        pageSize,
		InitialMmapSize: int(w.opts.MaxSegmentBytes) + 4*w.opts.FlushBytes + (1 << 20),
		NoSync:          w.opts.Sync == SyncNever,
		// The file grows by the writes themselves: fdatasync at each commit
		// makes the new size durable with the data, so bbolt's truncate and
		// fsync at every growth step would only cost time.
		NoGrowSync: true,
	})
	if err != nil {
		return fmt.Errorf("store: %s: creating %s: %w", name, tmp, err)
	}
	renamed := false
	fail := func(err error) error {
		db.Close()
		if renamed {
			os.Remove(path)
		} else {
			os.Remove(tmp)
		}
		return fmt.Errorf("store: %s: %w", name, err)
	}
	createStage("opened", tmp)
	if err := os.Chmod(tmp, 0o600); err != nil {
		return fail(err)
	}
	fi, err := os.Stat(tmp)
	if err != nil {
		return fail(err)
	}
	w.mu.Lock()
	meta := w.meta
	meta.Streams = append([]StreamInfo(nil), w.meta.Streams...)
	w.mu.Unlock()
	meta.Segment = index
	mj, err := json.Marshal(&meta)
	if err != nil {
		return fail(err)
	}
	var dj []byte
	if w.deleted != nil {
		dj, _ = json.Marshal(w.deleted)
	}
	var size int64
	err = db.Update(func(tx *bolt.Tx) error {
		mb, err := tx.CreateBucket(bucketMeta)
		if err != nil {
			return err
		}
		var f [4]byte
		binary.BigEndian.PutUint32(f[:], w.opts.format)
		if err := mb.Put(keyFormat, f[:]); err != nil {
			return err
		}
		if err := mb.Put(keyMeta, mj); err != nil {
			return err
		}
		if dj != nil {
			if err := mb.Put(keyDeleted, dj); err != nil {
				return err
			}
		}
		if _, err := tx.CreateBucket(bucketLog); err != nil {
			return err
		}
		if _, err := tx.CreateBucket(bucketIndex); err != nil {
			return err
		}
		size = tx.Size()
		return nil
	})
	if err != nil {
		return fail(fmt.Errorf("writing metadata: %w", err))
	}
	createStage("metadata", tmp)
	// Durable before it has its name, whatever the sync policy: one
	// fdatasync per segment.
	if err := db.Sync(); err != nil {
		return fail(fmt.Errorf("syncing: %w", err))
	}
	createStage("synced", tmp)
	if err := os.Rename(tmp, path); err != nil {
		return fail(fmt.Errorf("naming: %w", err))
	}
	renamed = true
	createStage("renamed", path)
	if err := syncDir(w.dir); err != nil {
		return fail(fmt.Errorf("syncing directory: %w", err))
	}
	createStage("done", path)
	w.db, w.seg, w.segPath, w.segFile = db, index, path, fi
	w.segSize = size
	w.nextChunk = 0
	w.cgroup = indexEntry{}
	return nil
}

// createStageHook, if set (by tests), is called at each step of a segment's
// creation with the file's current path, to simulate a crash there.
var createStageHook func(stage, path string)

func createStage(stage, path string) {
	if createStageHook != nil {
		createStageHook(stage, path)
	}
}

// closeSegment writes the summary, syncs and closes the open segment and
// trims its file to the used size. Committer only.
func (w *Writer) closeSegment(sum SegmentSummary) error {
	name := segName(w.seg)
	sum.Closed = time.Now()
	sj, err := json.Marshal(&sum)
	if err != nil {
		return err
	}
	var size int64
	err = w.db.Update(func(tx *bolt.Tx) error {
		size = tx.Size()
		return tx.Bucket(bucketMeta).Put(keySummary, sj)
	})
	if err == nil {
		err = w.db.Sync()
	}
	if err != nil {
		w.db.Close()
		w.db = nil
		return fmt.Errorf("store: %s: closing: %w", name, err)
	}
	// The summary transaction may have grown the file by a page or two.
	_ = w.db.View(func(tx *bolt.Tx) error { size = tx.Size(); return nil })
	if err := w.db.Close(); err != nil {
		w.db = nil
		return fmt.Errorf("store: %s: closing: %w", name, err)
	}
	w.db = nil
	if f, err := os.OpenFile(w.segPath, os.O_WRONLY, 0); err == nil {
		if fi, err := f.Stat(); err == nil && fi.Size() > size {
			if f.Truncate(size) == nil {
				_ = f.Sync()
			}
		}
		f.Close()
	}
	w.closed = append(w.closed, closedSeg{index: w.seg, path: w.segPath, size: size, summary: sum})
	return nil
}

// retention picks the oldest closed segments beyond KeepSegments/KeepBytes
// for deletion and adds them to the deletion record, which the next
// segment carries: the record is made durable (openSegment) before the
// files are removed (removeSegments), so that no crash leaves history
// missing without a record of its deletion. Committer only.
func (w *Writer) retention() []closedSeg {
	var total int64
	for _, c := range w.closed {
		total += c.size
	}
	var del []closedSeg
	for len(w.closed) > 0 &&
		((w.opts.KeepSegments > 0 && len(w.closed)+1 > w.opts.KeepSegments) ||
			(w.opts.KeepBytes > 0 && len(w.closed) > 1 && total+w.opts.MaxSegmentBytes > w.opts.KeepBytes)) {
		c := w.closed[0]
		del = append(del, c)
		total -= c.size
		w.closed = w.closed[1:]
		d := w.deleted
		if d == nil {
			d = &Deleted{FirstSeq: c.summary.FirstSeq, From: c.summary.MinTime}
			w.deleted = d
		}
		if d.From.IsZero() {
			d.From = c.summary.MinTime
		}
		d.Segments++
		d.LastSegment = c.index
		if c.summary.Records > 0 {
			d.LastSeq = c.summary.LastSeq
		}
		if !c.summary.MaxTime.IsZero() {
			d.To = c.summary.MaxTime
		}
		d.Batches += c.summary.Batches
		d.Events += c.summary.Events
		d.Bytes += c.summary.Bytes
	}
	if len(del) > 0 {
		w.mu.Lock()
		cp := *w.deleted
		w.deletedCopy = &cp
		w.mu.Unlock()
	}
	return del
}

// removeSegments deletes the segment files retention picked. Committer only.
func (w *Writer) removeSegments(del []closedSeg) error {
	for _, c := range del {
		if err := os.Remove(c.path); err != nil && !os.IsNotExist(err) {
			return fmt.Errorf("store: retention: removing %s: %w", segName(c.index), err)
		}
	}
	if len(del) > 0 {
		if err := syncDir(w.dir); err != nil {
			return fmt.Errorf("store: retention: syncing directory: %w", err)
		}
	}
	return nil
}

// Deleted returns what retention has deleted so far (a copy), or nil.
func (w *Writer) Deleted() *Deleted {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.deletedCopy == nil {
		return nil
	}
	d := *w.deletedCopy
	return &d
}
