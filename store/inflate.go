package store

import (
	"encoding/binary"
	"runtime"
	"sync/atomic"
	"time"
)

// Decoding ahead: zstd decoding costs several times what decoding the
// events of a record and delivering them does, so with a second core the
// readahead goroutine decodes the compressed records of the windows it has
// handed to the decoder (decompresses them and decodes their events), in
// order, while the decoder delivers. The decoder takes a record decoded if
// it is done, waits briefly if it is being decoded, and decodes it itself
// if the readahead has not got to it: both cores decode, each its share,
// and the records are delivered in order by the decoder alone. Both decode
// with decodeRecord, so every check of a record (its checksum, its header,
// the limits of the format) is made in one place; a record that fails it
// ahead is decoded again by the decoder, which reports why, naming the
// segment and the batch, as it does any damage.
const (
	// inflateSlots is the number of records a readahead holds decoded:
	// the decoder's current one and those done ahead of it. It bounds how
	// far the readahead runs ahead, and the memory it takes.
	inflateSlots = 16
	// decoderSlots are the decoder's, for the records it decodes ahead
	// while it waits for the readahead (see helpAhead).
	decoderSlots = 4
	// inflateMaxBody and inflateMaxEvents bound the records the readahead
	// decodes (the decoder does larger ones itself), so that its slots
	// stay small: a batch is about 17 KiB of body and 256 events at the
	// recorder's usual sizes, and a slot keeps no buffer much larger than
	// these bounds.
	inflateMaxBody   = 256 << 10
	inflateMaxEvents = 4096
)

// States of a zjob. Each changes by compare-and-swap, so that neither
// goroutine waits for the other: pending -> busy (being decoded ahead, by
// the readahead or by the decoder in helpAhead) -> done (slot holds it) ->
// taken; pending -> taken (the decoder decodes it itself, or went past
// it); busy -> abandoned (the decoder stopped waiting for the readahead
// and decoded it itself: the readahead keeps its slot).
const (
	jobPending = iota
	jobBusy
	jobDone
	jobTaken
	jobAbandoned
)

// zjob is a compressed record of a window, which the readahead or the
// decoder decodes, whichever gets to it first.
type zjob struct {
	state atomic.Int32
	chunk int    // index in the window of the chunk the record lies in
	pos   int    // its position in the chunk's log bytes
	rec   []byte // the record, in the window's buffer
	slot  *zslot // the record decoded, once jobDone (written before, read after)
}

// zslot holds one record decoded ahead: its header and batch, whose
// events alias dec's buffers.
type zslot struct {
	own   bool // the decoder's (decoderSlots), not the readahead's
	dec   decoder
	h     recHeader
	batch Batch
}

// jobBlock is how many jobs a window allocates at a time.
const jobBlock = 64

// findJobs lists the compressed batch records that lie inside one chunk of
// w (eachRecord, as verify walks them).
func (w *chunkWindow) findJobs() {
	w.spare = append(w.spare, w.jobs...)
	w.jobs = w.jobs[:0]
	w.eachRecord(func(k, pos int, rec []byte) bool {
		if rec[8] == recBatch && rec[9]&flagZstd != 0 && binary.LittleEndian.Uint32(rec[28:]) <= inflateMaxBody &&
			binary.LittleEndian.Uint32(rec[24:]) <= inflateMaxEvents {
			if len(w.spare) == 0 {
				// A window new to this reader (its windows come from a
				// pool) grows its jobs to the records it holds: in
				// blocks, so that growth is not an allocation a record.
				blk := make([]zjob, jobBlock)
				for i := range blk {
					w.spare = append(w.spare, &blk[i])
				}
			}
			j := w.spare[len(w.spare)-1]
			w.spare = w.spare[:len(w.spare)-1]
			j.chunk, j.pos, j.rec, j.slot = k, pos, rec, nil
			j.state.Store(jobPending)
			w.jobs = append(w.jobs, j)
		}
		return true
	})
}

// run decodes j into s unless someone else has it, and says whether j
// holds s now; ahead says the readahead runs it, ring is
// ReaderOptions.RingbufEvents. A record that does not decode is left to
// the decoder, which reports it.
func (j *zjob) run(s *zslot, ahead, ring bool) bool {
	if !j.state.CompareAndSwap(jobPending, jobBusy) {
		return false
	}
	s.dec.ahead, s.dec.ring, s.dec.crcVerified = ahead, ring, false
	h, err := s.dec.decodeRecord(j.rec, &s.batch, nil)
	if err != nil {
		j.state.CompareAndSwap(jobBusy, jobTaken)
		return false
	}
	s.h = h
	j.slot = s
	if j.state.CompareAndSwap(jobBusy, jobDone) {
		return true
	}
	j.slot = nil // abandoned: the decoder has done it
	return false
}

// take takes j for the decoder, which has got to it, and returns its slot
// if it was decoded ahead, or nil: then the decoder decodes it (or has
// gone past it). If j is being decoded, take waits for it up to wait (no
// limit if negative), then gives up on it. Only the decoder calls it.
func (j *zjob) take(wait time.Duration) *zslot {
	var deadline time.Time
	for {
		switch j.state.Load() {
		case jobPending:
			if j.state.CompareAndSwap(jobPending, jobTaken) {
				return nil
			}
		case jobDone:
			s := j.slot
			j.slot = nil
			j.state.Store(jobTaken)
			return s
		case jobBusy:
			if wait >= 0 {
				now := time.Now()
				if deadline.IsZero() {
					deadline = now.Add(wait)
				}
				if now.After(deadline) && j.state.CompareAndSwap(jobBusy, jobAbandoned) {
					return nil
				}
			}
			runtime.Gosched()
		default:
			return nil
		}
	}
}

// putSlot returns s to the free slots, dropping buffers grown large (by a
// large record) so that memory stays flat.
func (c *chunkCursor) putSlot(s *zslot) {
	if cap(s.dec.body) > inflateMaxBody+128<<10 {
		s.dec.body = nil
	}
	if cap(s.dec.events) > inflateMaxEvents {
		s.dec.events = nil
	}
	if cap(s.dec.ringEv) > inflateMaxEvents {
		s.dec.ringEv = nil
	}
	s.batch = Batch{}
	if s.own {
		c.ownFree = append(c.ownFree, s)
		return
	}
	c.zfree <- s // never blocks: it has room for every slot
}

// dropJobs frees what was decoded ahead for the records of w the decoder
// went past (skipped as damaged), as it leaves w for the next window.
func (c *chunkCursor) dropJobs(w *chunkWindow) {
	k := 0
	if c.jobWin == w {
		k = c.jobIdx
	}
	for _, j := range w.jobs[k:] {
		if s := j.take(0); s != nil {
			c.putSlot(s)
		}
	}
	c.jobWin = nil
}

// takeDecoded returns the record at pos of the current chunk if it has
// been decoded ahead, or nil: then the decoder decodes it, and the
// readahead no longer will. What it returns is valid until the next call
// (or the cursor's close). Positions are asked in increasing order.
func (c *chunkCursor) takeDecoded(pos int) *zslot {
	if c.held != nil {
		c.putSlot(c.held)
		c.held = nil
	}
	w := c.win
	if w == nil || len(w.jobs) == 0 || c.i < w.first || c.i >= w.first+w.n {
		return nil
	}
	if c.jobWin != w {
		c.jobWin, c.jobIdx, c.helpIdx = w, 0, 0
	}
	k := c.i - w.first
	for c.jobIdx < len(w.jobs) {
		j := w.jobs[c.jobIdx]
		if j.chunk > k || j.chunk == k && j.pos >= pos {
			break
		}
		// A record gone past (skipped as damaged): free its slot.
		if s := j.take(0); s != nil {
			c.putSlot(s)
		}
		c.jobIdx++
	}
	if c.jobIdx == len(w.jobs) {
		return nil
	}
	j := w.jobs[c.jobIdx]
	if j.chunk != k || j.pos != pos {
		return nil
	}
	c.jobIdx++
	wait := inflateWait
	if inflateByDecoder {
		// Being decoded: rather than wait, decode a later one.
		for j.state.Load() == jobBusy && c.helpAhead(w) {
		}
	} else {
		for j.state.Load() == jobPending {
			runtime.Gosched()
		}
		wait = -1
	}
	c.held = j.take(wait)
	if c.held == nil {
		return nil
	}
	c.bg.inflated++
	return c.held
}

// inflateWait is how long the decoder waits for a record the readahead is
// decoding before it decodes the record itself: about what decoding a
// batch of the usual size takes, so that a readahead the system has
// descheduled does not hold the decoder up.
const inflateWait = 20 * time.Microsecond

// helpAhead decodes the first record of w after the one the decoder wants
// that nobody has taken, into a free slot, for the decoder to take when it
// gets there. It says whether it did.
func (c *chunkCursor) helpAhead(w *chunkWindow) bool {
	if len(c.ownFree) == 0 {
		return false
	}
	s := c.ownFree[len(c.ownFree)-1]
	c.helpIdx = max(c.helpIdx, c.jobIdx)
	for ; c.helpIdx < len(w.jobs); c.helpIdx++ {
		if w.jobs[c.helpIdx].run(s, false, c.bg.ring) {
			c.ownFree = c.ownFree[:len(c.ownFree)-1]
			c.helpIdx++
			return true
		}
	}
	return false
}

// inflateByDecoder says whether the decoder decodes records the readahead
// has not got to; a test turns it off, so that the readahead decodes every
// one it can.
var inflateByDecoder = true
