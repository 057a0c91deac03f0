package store

import (
	"bytes"
	"fmt"
	"math"
	"os"
	"sync"
)

// checkPages validates the bbolt page structure of a segment file by
// reading it with pread, before bbolt is let loose on it: bbolt trusts its
// pages, and on damaged ones it panics (sometimes in goroutines of its own,
// which cannot be recovered) or recurses forever on a page cycle. It checks
// both meta pages, then walks every B+tree from the chosen meta's root:
// page ids below the high-water mark and inside the file, page types,
// element counts and bounds, key order, each page referenced once (so no
// cycles), bounded depth.
//
// It returns the problems found, and whether any of them makes the file
// unsafe for bbolt (a damaged meta page, a page referenced twice, which
// may be a cycle, a page out of range); the others (damaged leaf or branch
// contents) make bbolt panic in the calling goroutine, which the reader
// recovers from.
func checkPages(path string) (msgs []string, fatal bool) {
	m := loadSegment(path)
	defer m.close()
	return m.msgs, m.fatal
}

// loadedSeg is a checked segment file: refs lists the chunks of its log
// bucket in key order, as positions in the file, so that the reader reads
// the log without bbolt (and without touching a page that failed the
// check). The check reads pages with pread, and of a log leaf only its
// first page (the elements and the keys); the reader reads the chunks
// themselves (see chunkCursor). Reading the whole file into memory first
// moved every byte through main memory three times; mapping it cost a page
// fault per leaf, and the events handed to a handler would have aliased
// the mapping, where a file truncated under them kills the process with
// SIGBUS. pread throughout was also the fastest of these in BenchmarkRead.
type loadedSeg struct {
	f     *os.File
	sc    *segScratch // the pooled buffers refs and the checker use
	refs  []chunkRef
	msgs  []string
	fatal bool
	gone  bool // the file was deleted before it could be opened
}

// chunkRef is one key/value of the log bucket: the key and where the
// value lies in the file.
type chunkRef struct {
	key []byte
	off int64
	n   int
}

// segScratch holds the buffers of checking a segment: the chunk list and
// the checker's bitmap.
type segScratch struct {
	refs []chunkRef
	seen []uint64
	keys []byte // the log's keys, which refs point into
	page []byte // the page being checked
}

// segBufs holds segScratch buffers for the next segment or the next
// Reader: reusing them leaves a Reader allocating nothing per segment in
// its steady state, so that the garbage collector (and its write barriers
// on the decoded events) stays off.
var segBufs sync.Pool

func (m *loadedSeg) close() {
	if m.f != nil {
		m.f.Close()
		m.f = nil
	}
	if m.sc != nil {
		if m.refs != nil {
			m.sc.refs = m.refs[:0]
		}
		segBufs.Put(m.sc)
		m.sc, m.refs = nil, nil
	}
}

// loadSegment opens and checks the segment file at path (see checkPages).
// The caller closes what it returns.
func loadSegment(path string) (m *loadedSeg) {
	m = &loadedSeg{}
	fail := func(msg string) *loadedSeg {
		m.close()
		m.msgs, m.fatal = append(m.msgs, msg), true
		return m
	}
	f, err := os.Open(path)
	if err != nil {
		m.gone = os.IsNotExist(err)
		return fail(err.Error())
	}
	m.f = f
	fi, err := f.Stat()
	if err != nil {
		return fail(err.Error())
	}
	size := fi.Size()
	if size < 2*pageSize {
		return fail(fmt.Sprintf("file of %d bytes is too small for a segment", size))
	}
	if size > math.MaxInt32*pageSize || int64(int(size)) != size {
		return fail(fmt.Sprintf("file of %d bytes is too large for a segment", size))
	}
	sc, _ := segBufs.Get().(*segScratch)
	if sc == nil {
		sc = new(segScratch)
	}
	m.sc = sc
	c := &pageChecker{f: f, size: size, seen: sc.seen, logRefs: sc.refs, keys: sc.keys[:0], buf: sc.page}
	defer func() {
		if r := recover(); r != nil {
			if _, ok := r.(errShortRead); !ok {
				panic(r) // the check's own bug: it reads with pread, not bbolt
			}
			m.msgs = c.msgs
			fail(fmt.Sprintf("file changed while checked: %v", r))
		}
	}()
	c.run()
	sc.keys, sc.page = c.keys, c.buf
	m.msgs, m.fatal, m.refs = c.msgs, c.fatal, c.logRefs
	if c.seen != nil {
		sc.seen = c.seen
	}
	return m
}

type pageChecker struct {
	f       *os.File
	buf     []byte // the page being checked (reused)
	keys    []byte // copies of the log's keys
	size    int64
	hwm     uint64
	fatal   bool
	cut     bool     // the file is shorter than its meta says
	seen    []uint64 // bitmap of the pages referenced so far
	msgs    []string
	logRefs []chunkRef
}

const (
	maxTreeDepth = 64
	maxCheckMsgs = 20
)

func (c *pageChecker) fatalf(format string, args ...any) {
	c.fatal = true
	c.fail(format, args...)
}

func (c *pageChecker) fail(format string, args ...any) {
	if len(c.msgs) < maxCheckMsgs {
		c.msgs = append(c.msgs, fmt.Sprintf(format, args...))
	}
}

// meta reads and validates meta page i; it returns root, hwm, txid.
func (c *pageChecker) meta(i int) (root, hwm, txid uint64, err error) {
	m, err := parseMeta(i, c.read(int64(i)*pageSize, metaPageBytes))
	return m.root, m.hwm, m.txid, err
}

// root picks the newer valid meta page, as bbolt does, and returns the
// root page of its tree; it sets c.hwm. It fails (c.fatal) if neither meta
// page is valid or the file is shorter than the data the meta counts.
func (c *pageChecker) root() (root uint64, ok bool) {
	r0, h0, t0, e0 := c.meta(0)
	r1, h1, t1, e1 := c.meta(1)
	root, hwm := r0, h0
	switch {
	case e0 != nil && e1 != nil:
		c.fatalf("%v; %v", e0, e1)
		return 0, false
	case e0 != nil || (e1 == nil && t1 > t0):
		root, hwm = r1, h1
	}
	if hwm > uint64(c.size/pageSize) {
		c.cut = true
		c.fatalf("file truncated: %d bytes, but the data reaches page %d (%d bytes)", c.size, hwm, hwm*pageSize)
		return 0, false
	}
	c.hwm = hwm
	return root, true
}

// truncated returns the error naming how a segment file was cut short, or
// nil if it was not (or cannot be read). bbolt's own messages on such a
// file name pages with numbers read past the file's end.
func truncated(path string) (err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || fi.Size() < 2*pageSize {
		return nil
	}
	c := &pageChecker{f: f, size: fi.Size()}
	defer func() {
		if r := recover(); r != nil {
			if _, ok := r.(errShortRead); !ok {
				panic(r)
			}
			err = nil // the file changed meanwhile
		}
	}()
	if _, ok := c.root(); ok || !c.cut {
		return nil
	}
	return fmt.Errorf("%s", c.msgs[0])
}

func (c *pageChecker) run() {
	root, ok := c.root()
	if !ok {
		return
	}
	hwm := c.hwm
	if n := int((hwm + 63) / 64); cap(c.seen) >= n {
		c.seen = c.seen[:n]
		clear(c.seen)
	} else {
		c.seen = make([]uint64, n)
	}
	// Two log chunks a page: size the list once.
	if cap(c.logRefs) < int(2*hwm) {
		c.logRefs = make([]chunkRef, 0, 2*hwm)
	}
	c.logRefs = c.logRefs[:0]
	if cap(c.keys) < int(16*hwm) {
		c.keys = make([]byte, 0, 16*hwm)
	}
	c.keys = c.keys[:0]
	c.tree(root, 0, true, false)
}

// isSeen and markSeen read and set page id's bit in seen (id < hwm).
func (c *pageChecker) isSeen(id uint64) bool { return c.seen[id/64]&(1<<(id%64)) != 0 }

func (c *pageChecker) markSeen(id uint64) { c.seen[id/64] |= 1 << (id % 64) }

// errShortRead: the file ended before what its pages say (it changed
// while it was checked).
type errShortRead struct{ err error }

func (e errShortRead) Error() string { return e.err.Error() }

// read reads n bytes at off into c.buf and returns them; it panics with
// errShortRead if the file ends first.
func (c *pageChecker) read(off int64, n int) []byte {
	if cap(c.buf) < n {
		c.buf = make([]byte, max(n, 2*cap(c.buf)))
	}
	b := c.buf[:n]
	if k, err := c.f.ReadAt(b, off); k != n {
		panic(errShortRead{fmt.Errorf("reading %d bytes at offset %d: %v", n, off, err)})
	}
	return b
}

// page reads page id and checks its header; nil if it is bad. It reads
// the whole page with its overflow pages, or if prefix is set only its
// first page: then size is the whole page's size. What it returns is valid
// until the next read.
func (c *pageChecker) page(id uint64, prefix bool) (h []byte, size int) {
	if id < 2 || id >= c.hwm {
		c.fatalf("page %d: out of range [2, %d)", id, c.hwm)
		return nil, 0
	}
	if c.isSeen(id) {
		c.fatalf("page %d: referenced twice (cycle or damage)", id)
		return nil, 0
	}
	h = c.read(int64(id)*pageSize, pageSize)
	ph := readPageHeader(h)
	if got := ph.id; got != id {
		c.fail("page %d: header says page %d (overwritten or zeroed)", id, got)
		c.markSeen(id)
		return nil, 0
	}
	overflow := uint64(ph.overflow)
	if id+overflow >= c.hwm {
		c.fatalf("page %d: %d overflow pages run past the end", id, overflow)
		return nil, 0
	}
	for i := uint64(0); i <= overflow; i++ {
		if c.isSeen(id + i) {
			c.fatalf("page %d: overlaps page %d (cycle or damage)", id, id+i)
			return nil, 0
		}
		c.markSeen(id + i)
	}
	size = int(overflow+1) * pageSize
	if overflow > 0 && !prefix {
		h = c.read(int64(id)*pageSize, size)
	}
	return h, size
}

// tree walks the B+tree rooted at page id. isRoot marks the root bucket's
// tree, whose leaf elements are the bucket entries.
func (c *pageChecker) tree(id uint64, depth int, isRoot, isLog bool) {
	if depth > maxTreeDepth {
		c.fatalf("page %d: tree deeper than %d", id, maxTreeDepth)
		return
	}
	// A log leaf holds chunks of up to 64 KiB: read only its first page
	// (the elements and, mostly, the keys); the reader reads the values.
	h, size := c.page(id, isLog)
	if h == nil {
		return
	}
	ph := readPageHeader(h)
	flags, count := ph.flags, int(ph.count)
	if count == 0 && !isRoot && depth > 0 {
		c.fail("page %d: empty", id)
	}
	if pageHeaderSize+count*elemSize > size {
		c.fail("page %d: %d elements do not fit", id, count)
		return
	}
	if flags != flagLeaf && len(h) < size {
		h = c.read(int64(id)*pageSize, size) // a log branch page
	} else if pageHeaderSize+count*elemSize > len(h) {
		h = c.read(int64(id)*pageSize, pageHeaderSize+count*elemSize)
	}
	switch flags {
	case flagBranch:
		var children []uint64
		var prev []byte
		for i := 0; i < count; i++ {
			e := h[pageHeaderSize+i*elemSize:]
			pos, ksize := int(boltOrder.Uint32(e[0:])), int(boltOrder.Uint32(e[4:]))
			start := pageHeaderSize + i*elemSize + pos
			if pos < 0 || ksize < 0 || start+ksize > len(h) || start < pageHeaderSize {
				c.fail("page %d: element %d out of bounds", id, i)
				return
			}
			k := h[start : start+ksize]
			if prev != nil && bytes.Compare(prev, k) >= 0 {
				c.fail("page %d: keys out of order", id)
				return
			}
			prev = k
			children = append(children, boltOrder.Uint64(e[8:]))
		}
		for _, ch := range children {
			c.tree(ch, depth+1, isRoot, isLog)
		}
	case flagLeaf:
		// Walk the buckets only when done with h (c's buffer).
		for _, sub := range c.leaf(id, h, size, int64(id)*pageSize, count, isRoot, isLog, nil) {
			c.tree(sub.root, 0, false, sub.isLog)
		}
	default:
		c.fail("page %d: bad page type %#x", id, flags)
	}
}

// subTree is a bucket found in a leaf.
type subTree struct {
	root  uint64
	isLog bool
}

// leaf checks a leaf page's elements and appends the buckets it holds to
// subs. In the log bucket's tree (isLog) it records the chunks. h may hold
// only the start of the page (its elements) if the page is in the log
// bucket's tree: size is the page's size, base where it starts in the file.
func (c *pageChecker) leaf(id uint64, h []byte, size int, base int64, count int, isRoot, isLog bool, subs []subTree) []subTree {
	var prev []byte
	for i := 0; i < count; i++ {
		e := h[pageHeaderSize+i*elemSize:]
		flags := boltOrder.Uint32(e[0:])
		pos := int(boltOrder.Uint32(e[4:]))
		ksize := int(boltOrder.Uint32(e[8:]))
		vsize := int(boltOrder.Uint32(e[12:]))
		start := pageHeaderSize + i*elemSize + pos
		if pos < 0 || ksize < 0 || vsize < 0 || start < pageHeaderSize || start+ksize+vsize > size {
			c.fail("page %d: element %d out of bounds", id, i)
			return subs
		}
		var k []byte
		copied := false // k is in c.keys
		if start+ksize <= len(h) {
			k = h[start : start+ksize]
		} else if !isLog || flags != 0 || ksize > 64 {
			c.fail("page %d: element %d out of bounds", id, i)
			return subs
		} else {
			// A key past the part of the log leaf read: read it alone.
			at := len(c.keys)
			c.keys = append(c.keys, make([]byte, ksize)...)
			k, copied = c.keys[at:], true
			if n, err := c.f.ReadAt(k, base+int64(start)); n != ksize {
				panic(errShortRead{fmt.Errorf("reading %d bytes at offset %d: %v", ksize, base+int64(start), err)})
			}
		}
		if prev != nil && bytes.Compare(prev, k) >= 0 {
			c.fail("page %d: keys out of order", id)
			return subs
		}
		prev = k
		if flags&flagBucket != 0 {
			if vsize < 16 {
				c.fail("page %d: bad bucket entry", id)
				return subs
			}
			if start+ksize+vsize > len(h) {
				c.fail("page %d: element %d out of bounds", id, i)
				return subs
			}
			v := h[start+ksize : start+ksize+vsize]
			log := isRoot && bytes.Equal(k, bucketLog)
			if root := boltOrder.Uint64(v); root != 0 {
				subs = append(subs, subTree{root, log})
			} else if vsize < 16+pageHeaderSize {
				c.fail("page %d: bad inline bucket", id)
				return subs
			} else {
				// An inline bucket: a page inside the value.
				in := v[16:]
				ih := readPageHeader(in)
				n := int(ih.count)
				if ih.flags != flagLeaf || pageHeaderSize+n*elemSize > len(in) {
					c.fail("page %d: bad inline bucket", id)
					return subs
				}
				subs = c.leaf(id, in, len(in), base+int64(start+ksize+16), n, false, log, subs)
			}
		} else if flags != 0 {
			c.fail("page %d: element %d has flags %#x", id, i, flags)
			return subs
		} else if isLog {
			if !copied {
				// Keep a copy: h is reused by the next read.
				at := len(c.keys)
				c.keys = append(c.keys, k...)
				k = c.keys[at:len(c.keys):len(c.keys)]
			}
			c.logRefs = append(c.logRefs, chunkRef{key: k, off: base + int64(start+ksize), n: vsize})
		}
	}
	return subs
}
