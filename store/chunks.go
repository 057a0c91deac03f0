package store

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"runtime"
	"sort"
	"sync"
)

// Reading the log: the chunks that loadSegment found are read with pread
// into windows of up to windowChunks chunks, which a Reader reuses. On a
// machine with a second core, a goroutine reads the next windows while the
// records of the current one are checked and decoded: copying a chunk from
// the page cache costs about as much as checking and decoding it, so the
// two run side by side (see BenchmarkRead and its copy/mem floor). A window
// is small enough (1 MiB) to stay in the CPU caches from its read to its
// decoding, where reading a whole segment first moved every byte through
// main memory three times.
const (
	windowChunks = 16
	aheadWindows = 3 // one being decoded, one read ahead, one in flight
	// firstWindowChunks is the size of the first window a readahead
	// reads, which the decoder waits for: small, so that decoding starts
	// early, while the next windows are read.
	firstWindowChunks = 2
)

// chunkWindow holds consecutive chunks of the log, back to back.
type chunkWindow struct {
	first int // index in the cursor's refs of the first chunk
	n     int // number of chunks
	buf   []byte
	ends  [windowChunks]int
	err   error // reading chunk first+n failed (then it ends the window)
	// crcOK lists, per chunk, the positions (in the chunk's log bytes) of
	// the records inside it whose checksums the readahead has verified,
	// in order, so that the decoder need not check them again.
	crcOK [windowChunks][]uint32
	// jobs are the compressed records of the window, which the readahead
	// decodes ahead of the decoder (see inflate.go); spare holds
	// zjobs for reuse. sent says the readahead has handed the window to
	// the decoder and not got it back.
	jobs, spare []*zjob
	sent        bool
}

// chunkCursor walks the log chunks of a loaded segment. What cur returns
// is valid until the cursor moves to a chunk outside the current window:
// records returned in place, and the events decoded from them, alias it.
type chunkCursor struct {
	refs []chunkRef
	f    *os.File
	i    int
	win  *chunkWindow // holds chunk i, if any
	err  error        // reading chunk i failed
	bg   *readerBG    // the windows

	// Where verified is in win.crcOK.
	okWin          *chunkWindow
	okChunk, okIdx int

	// Readahead: the goroutine fills windows from free and sends them on
	// full in order; stop ends it, and done says it has.
	ahead      bool
	full, free chan *chunkWindow
	stop, done chan struct{}

	// Decoding ahead (see inflate.go): the readahead takes slots from
	// zfree for the records it decodes, the decoder from ownFree (each
	// slot's buffers stay in the cache of the core that writes them);
	// held is the slot whose record the decoder has now; jobWin, jobIdx
	// and helpIdx are where takeDecoded and helpAhead are in the current
	// window's jobs.
	zfree           chan *zslot
	ownFree         []*zslot
	held            *zslot
	jobWin          *chunkWindow
	jobIdx, helpIdx int
}

// windowPool holds chunkWindows of closed Readers, so that a program
// opening one Reader after another does not allocate them anew.
var windowPool sync.Pool

// slotPool holds the slots of closed Readers, likewise.
var slotPool sync.Pool

// readerBG holds what a Reader's reading runs in the background: the
// windows, the cursor that may be reading ahead, the segment being
// preloaded. It is apart from the Reader, which it does not reference, so
// that a Reader dropped without Close has its goroutines stopped by a
// cleanup (see Open).
type readerBG struct {
	wins  []*chunkWindow
	slots []*zslot // records decoded ahead: the readahead's, then the decoder's
	// ring is ReaderOptions.RingbufEvents, for decoding ahead.
	ring bool
	// inflated counts the records the decoder took decoded ahead (for
	// tests).
	inflated int
	cur      *chunkCursor // the cursor last started, which may be reading ahead
	pre      *preloading  // the next segment, being loaded
}

// stop stops the readahead and drops the preloaded segment.
func (bg *readerBG) stop() {
	if bg.cur != nil {
		bg.cur.close()
		bg.cur = nil
	}
	if p := bg.pre; p != nil {
		bg.pre = nil
		go func() { (<-p.done).close() }() // no need to wait for it
	}
}

// release stops what runs and returns the windows to windowPool.
func (bg *readerBG) release() {
	bg.stop()
	for _, w := range bg.wins {
		windowPool.Put(w)
	}
	if len(bg.slots) == inflateSlots+decoderSlots {
		slotPool.Put((*[inflateSlots + decoderSlots]*zslot)(bg.slots))
	}
	bg.wins, bg.slots = nil, nil
}

func newChunkCursor(m *loadedSeg, bg *readerBG) *chunkCursor {
	ahead := runtime.GOMAXPROCS(0) > 1
	need := 1
	if ahead {
		need = aheadWindows
	}
	for len(bg.wins) < need {
		w, _ := windowPool.Get().(*chunkWindow)
		if w == nil {
			w = &chunkWindow{buf: make([]byte, 0, windowChunks*maxChunkValue)}
		}
		bg.wins = append(bg.wins, w)
	}
	if ahead && bg.slots == nil {
		if p, _ := slotPool.Get().(*[inflateSlots + decoderSlots]*zslot); p != nil {
			bg.slots = p[:]
		} else {
			bg.slots = make([]*zslot, inflateSlots+decoderSlots)
			for i := range bg.slots {
				bg.slots[i] = &zslot{own: i >= inflateSlots}
			}
		}
	}
	if bg.cur != nil {
		bg.cur.close() // the previous segment's, if not closed yet
	}
	c := &chunkCursor{refs: m.refs, f: m.f, bg: bg, ahead: ahead}
	bg.cur = c
	return c
}

// Seek positions at the first key >= key.
func (c *chunkCursor) Seek(key []byte) ([]byte, []byte) {
	c.i = sort.Search(len(c.refs), func(i int) bool { return bytes.Compare(c.refs[i].key, key) >= 0 })
	return c.cur()
}

// Next moves to the next key.
func (c *chunkCursor) Next() ([]byte, []byte) {
	if c.i < len(c.refs) {
		c.i++
	}
	return c.cur()
}

func (c *chunkCursor) cur() ([]byte, []byte) {
	c.err = nil
	if c.i >= len(c.refs) {
		return nil, nil
	}
	w := c.win
	if w == nil || c.i < w.first || c.i > w.first+w.n || c.i == w.first+w.n && w.err == nil {
		w = c.window(c.i)
	}
	k := c.i - w.first
	if k == w.n {
		c.err = w.err
		return c.refs[c.i].key, nil
	}
	lo := 0
	if k > 0 {
		lo = w.ends[k-1]
	}
	return c.refs[c.i].key, w.buf[lo:w.ends[k]]
}

// window returns the window that starts with chunk i: the next one read
// ahead if it is that, else the first of a readahead restarted at i (or,
// on one core, one read now).
func (c *chunkCursor) window(i int) *chunkWindow {
	if c.ahead {
		if c.full != nil && c.win != nil && i == c.win.first+c.win.n {
			c.dropJobs(c.win)
			c.free <- c.win
			c.win, c.okWin = <-c.full, nil
			return c.win
		}
		c.close()
		c.full = make(chan *chunkWindow, aheadWindows)
		c.free = make(chan *chunkWindow, aheadWindows)
		c.stop, c.done = make(chan struct{}), make(chan struct{})
		for _, w := range c.bg.wins[:aheadWindows] {
			w.sent = false
			c.free <- w
		}
		c.zfree = make(chan *zslot, inflateSlots)
		for _, s := range c.bg.slots[:inflateSlots] {
			c.zfree <- s
		}
		c.ownFree = append(c.ownFree[:0], c.bg.slots[inflateSlots:]...)
		// The first window too is read (and its checksums checked) by the
		// readahead: waiting for it costs what reading it here would.
		go c.readAhead(i)
		c.win, c.okWin = <-c.full, nil
		return c.win
	}
	c.win, c.okWin = c.bg.wins[0], nil
	c.fill(c.win, i, windowChunks)
	return c.win
}

// readAhead fills windows from chunk i on until the log's end, a read
// error or stop; between windows, it decodes the compressed records of
// the windows it has handed to the decoder (see inflate.go).
func (c *chunkCursor) readAhead(i int) {
	defer close(c.done)
	n := firstWindowChunks
	more := i < len(c.refs) // windows to read
	// sent are the windows handed to the decoder, oldest first (it gives
	// them back in this order); the next job to look at is
	// sent[jw].jobs[jk]; slot is a free slot taken for it.
	var sentBuf [aheadWindows]*chunkWindow
	sent := sentBuf[:0]
	jw, jk := 0, 0
	var slot *zslot
	for {
		for jw < len(sent) && jk >= len(sent[jw].jobs) {
			jw, jk = jw+1, 0
		}
		var job *zjob
		if jw < len(sent) && inflateAhead {
			job = sent[jw].jobs[jk]
		}
		if job == nil && !more {
			return
		}
		// A window given back is refilled first: the decoder waits for
		// windows, not for records decoded ahead (it decodes them itself).
		var w *chunkWindow
		select {
		case w = <-c.free:
		default:
			switch {
			case job == nil:
				select {
				case w = <-c.free:
				case <-c.stop:
					return
				}
			case slot == nil:
				select {
				case w = <-c.free:
				case slot = <-c.zfree:
				case <-c.stop:
					return
				}
			}
		}
		if w != nil {
			if w.sent {
				// The decoder is past every record of w, and has freed
				// what was decoded for it (dropJobs).
				w.sent = false
				if len(sent) > 0 && sent[0] == w {
					sent = sent[:copy(sent, sent[1:])]
					if jw > 0 {
						jw--
					} else {
						jk = 0
					}
				}
			}
			if !more {
				continue
			}
			c.fill(w, i, n)
			n = windowChunks
			if verifyAhead(c) {
				w.verify()
			}
			if inflateAhead {
				w.findJobs()
				w.sent = true
				sent = append(sent, w)
			} else {
				w.jobs = w.jobs[:0]
			}
			select {
			case c.full <- w:
			case <-c.stop:
				return
			}
			i += w.n
			more = w.err == nil && i < len(c.refs)
			continue
		}
		if slot != nil {
			jk++
			if job.run(slot, true, c.bg.ring) {
				slot = nil
			}
		}
	}
}

// inflateAhead says whether the readahead decodes records ahead of
// the decoder (a test turns it off).
var inflateAhead = true

// verifyAhead says whether the readahead checks the checksums of the
// window it has just read: only while the decoder has a window waiting.
// When it has none, it would wait for this one, and it checks the records
// that were not checked here itself; both cores then stay busy whichever
// is faster. (Tests pin it to always and to never.)
var verifyAhead = func(c *chunkCursor) bool { return len(c.full) > 0 }

// verify checks the checksums of the records that lie inside one chunk
// of w, from each chunk's first record on, and lists those that match.
// It stops in a chunk at a record that does not fit or does not match:
// the decoder checks those itself, and reports any damage.
func (w *chunkWindow) verify() {
	w.eachRecord(func(k, pos int, rec []byte) bool {
		if crc32.Checksum(rec[8:], castagnoli) != binary.LittleEndian.Uint32(rec[4:]) {
			return false
		}
		w.crcOK[k] = append(w.crcOK[k], uint32(pos))
		return true
	})
}

// eachRecord calls fn with each record that lies inside one chunk of w
// (its chunk k, its position pos in the chunk's data, and its bytes,
// capped at its end), walking each chunk's records from its first one
// (the chunk's first four bytes say where it starts) until one does not
// fit or fn returns false.
func (w *chunkWindow) eachRecord(fn func(k, pos int, rec []byte) bool) {
	lo := 0
	for k := 0; k < w.n; k++ {
		v := w.buf[lo:w.ends[k]]
		lo = w.ends[k]
		if len(v) < 4 {
			continue
		}
		data := v[4:]
		pos := int(binary.LittleEndian.Uint32(v))
		for pos >= 0 && pos+headerSize <= len(data) {
			n := int(binary.LittleEndian.Uint32(data[pos:]))
			if n < headerSize || n > len(data)-pos {
				break
			}
			if !fn(k, pos, data[pos:pos+n:pos+n]) {
				break
			}
			pos += n
		}
	}
}

// verified says whether the readahead verified the checksum of the record
// at pos of the current chunk. Positions are asked in increasing order.
func (c *chunkCursor) verified(pos int) bool {
	w := c.win
	if w == nil || c.i < w.first || c.i >= w.first+w.n {
		return false
	}
	if c.okWin != w || c.okChunk != c.i {
		c.okWin, c.okChunk, c.okIdx = w, c.i, 0
	}
	ok := w.crcOK[c.i-w.first]
	for c.okIdx < len(ok) && int(ok[c.okIdx]) < pos {
		c.okIdx++
	}
	return c.okIdx < len(ok) && int(ok[c.okIdx]) == pos
}

// fill reads chunks from i on into w, up to n of them (n <= windowChunks).
func (c *chunkCursor) fill(w *chunkWindow, i, n int) {
	w.first, w.n, w.err, w.buf = i, 0, nil, w.buf[:0]
	for k := range w.crcOK {
		w.crcOK[k] = w.crcOK[k][:0]
	}
	for w.n < n && i+w.n < len(c.refs) {
		ref := &c.refs[i+w.n]
		if ref.n > maxChunkValue {
			w.err = fmt.Errorf("bad size %d", ref.n)
			return
		}
		at := len(w.buf)
		w.buf = w.buf[:at+ref.n]
		if n, err := c.f.ReadAt(w.buf[at:], ref.off); n != ref.n {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			w.buf = w.buf[:at]
			w.err = fmt.Errorf("reading %d bytes at offset %d: %v (file changed while read?)", ref.n, ref.off, err)
			return
		}
		w.ends[w.n] = len(w.buf)
		w.n++
	}
}

// close stops the readahead and waits for it to end.
func (c *chunkCursor) close() {
	if c.stop != nil {
		close(c.stop)
		<-c.done
		c.stop, c.full, c.free = nil, nil, nil
	}
	c.win, c.held, c.zfree, c.ownFree, c.jobWin = nil, nil, nil, nil, nil
}
