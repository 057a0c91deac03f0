package store

// The committer: one goroutine writes the pending records to bbolt, one
// transaction per job, off the appending caller's path.

import (
	"encoding/binary"
	"fmt"
	"os"
	"time"

	bolt "go.etcd.io/bbolt"
)

// job is a unit of work for the committer, in append order.
type job struct {
	data        []byte // records, uncompressed
	starts      []int
	groups      []indexEntry // index groups: rel ones start at record off
	first, last uint64       // sequence range of data
	meta        []byte       // new metadata JSON to write, if any
	sync        bool         // sync even under SyncNever (Flush)
	closeSeg    *SegmentSummary
	openNext    bool // after closing, open the next segment
	done        chan error
}

// committer runs the jobs in order, and detaches the pending buffer every
// FlushInterval.
func (w *Writer) committer() {
	defer w.wg.Done()
	t := time.NewTicker(w.opts.FlushInterval)
	defer t.Stop()
	for {
		w.mu.Lock()
		if len(w.queue) == 0 {
			stop := w.stopping
			w.mu.Unlock()
			if stop {
				return
			}
			select {
			case <-w.wake:
			case <-t.C:
				w.mu.Lock()
				if w.err == nil && !w.stopping {
					w.enqueueLocked(w.detachLocked(false, true))
				}
				w.mu.Unlock()
			}
			continue
		}
		j := w.queue[0]
		w.queue = w.queue[1:]
		w.mu.Unlock()

		err := w.runJob(j)

		w.mu.Lock()
		if err != nil && w.err == nil {
			w.err = err
		}
		if err == nil {
			err = w.err
			if err == errClosed {
				err = nil
			}
		}
		if j.data != nil && len(w.free) < 2 {
			w.free = append(w.free, j.data[:0])
		}
		w.cond.Broadcast()
		w.mu.Unlock()
		if j.done != nil {
			j.done <- err
		}
	}
}

// runJob commits a job's records and does what else it asks. After a
// failure only closing the database is left.
func (w *Writer) runJob(j *job) error {
	if w.cerr != nil {
		if j.closeSeg != nil && !j.openNext && w.db != nil {
			w.db.Close()
			w.db = nil
		}
		return w.cerr
	}
	fail := func(err error) error {
		w.cerr = err
		if j.closeSeg != nil && !j.openNext && w.db != nil {
			w.db.Close()
			w.db = nil
		}
		return err
	}
	if j.data != nil {
		if err := w.commit(j); err != nil {
			return fail(err)
		}
	}
	if j.meta != nil {
		err := w.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Put(keyMeta, j.meta) })
		if err != nil {
			return fail(fmt.Errorf("store: %s: writing metadata: %w", segName(w.seg), err))
		}
	}
	if j.sync && w.opts.Sync == SyncNever {
		if err := w.db.Sync(); err != nil {
			return fail(fmt.Errorf("store: %s: sync: %w", segName(w.seg), err))
		}
	}
	if j.closeSeg != nil {
		if err := w.closeSegment(*j.closeSeg); err != nil {
			return fail(err)
		}
		if j.openNext {
			del := w.retention()
			if err := w.openSegment(w.seg + 1); err != nil {
				return fail(err)
			}
			if err := w.removeSegments(del); err != nil {
				return fail(err)
			}
		}
	}
	return nil
}

// commit writes a job's records in one transaction.
func (w *Writer) commit(j *job) error {
	name := segName(w.seg)
	// A vanished directory does not stop writes to the open file: notice it.
	if fi, err := os.Stat(w.segPath); err != nil || !os.SameFile(fi, w.segFile) {
		if _, derr := os.Stat(w.dir); derr != nil {
			return fmt.Errorf("store: recording directory %s vanished (%v); records %d-%d not committed", w.dir, derr, j.first, j.last)
		}
		return fmt.Errorf("store: %s: file %s vanished or was replaced; records %d-%d not committed", name, w.segPath, j.first, j.last)
	}
	data, starts := j.data, j.starts
	if !w.opts.Uncompressed {
		// Compress here, off the caller's path: Append only encodes.
		w.zbuf, w.zstarts = w.zbuf[:0], w.zstarts[:0]
		for i, st := range starts {
			end := len(data)
			if i+1 < len(starts) {
				end = starts[i+1]
			}
			w.zstarts = append(w.zstarts, len(w.zbuf))
			w.zbuf = compressRecord(w.zbuf, data[st:end])
		}
		data, starts = w.zbuf, w.zstarts
	}
	// Place the index groups.
	groups := j.groups[:0:0]
	for _, g := range j.groups {
		if g.rel {
			c, off := w.chunkOf(starts[g.off], len(data))
			g.chunk = w.nextChunk + uint64(c)
			g.off = uint32(off)
			g.rel = false
		} else if g.seq == w.cgroup.seq {
			g.chunk, g.off = w.cgroup.chunk, w.cgroup.off
		} else {
			continue // started in an earlier segment
		}
		w.cgroup = g
		groups = append(groups, g)
	}
	// Lay out the chunks: keys and values must stay valid until the commit.
	n := w.chunkCount(len(data))
	if need := len(data) + 4*n; cap(w.valbuf) < need {
		w.valbuf = make([]byte, 0, need)
	}
	w.keybuf = w.keybuf[:0]
	w.valbuf = w.valbuf[:0]
	si := 0
	for c := 0; c < n; c++ {
		lo, hi := w.chunkSpan(c, len(data))
		for si < len(starts) && starts[si] < lo {
			si++
		}
		first := uint32(noStart)
		if si < len(starts) && starts[si] < hi {
			first = uint32(starts[si] - lo)
		}
		w.keybuf = binary.BigEndian.AppendUint64(w.keybuf, w.nextChunk+uint64(c))
		w.valbuf = binary.LittleEndian.AppendUint32(w.valbuf, first)
		w.valbuf = append(w.valbuf, data[lo:hi]...)
	}
	var size int64
	err := w.db.Update(func(tx *bolt.Tx) error {
		lb := tx.Bucket(bucketLog)
		lb.FillPercent = 1.0
		ib := tx.Bucket(bucketIndex)
		ib.FillPercent = 1.0
		v := w.valbuf
		for c := 0; c < n; c++ {
			lo, hi := w.chunkSpan(c, len(data))
			l := 4 + hi - lo
			if err := lb.Put(w.keybuf[c*8:c*8+8], v[:l:l]); err != nil {
				return err
			}
			v = v[l:]
		}
		for i := range groups {
			g := &groups[i]
			if err := ib.Put(u64key(g.seq), g.value(make([]byte, 0, indexValueSize))); err != nil {
				return err
			}
		}
		size = tx.Size()
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: %s: committing records %d-%d: %w", name, j.first, j.last, err)
	}
	w.segSize = size
	w.nextChunk += uint64(n)
	w.committed.Store(j.last)
	if !w.opts.Uncompressed {
		w.mu.Lock()
		w.ratio = float64(len(data)) / float64(len(j.data))
		w.mu.Unlock()
	}
	if cap(w.valbuf) > 2*w.opts.FlushBytes+(1<<20) { // after a huge batch
		w.valbuf, w.zbuf = nil, nil
	}
	return nil
}
