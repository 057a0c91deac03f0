package store

// bbolt's on-disk layout, as far as this package reads a segment file
// without bbolt: checkPages (structure.go) validates the pages before bbolt
// maps a file, snapshotSegment (live.go) tells which transaction a copy of
// a segment being written holds, and the log reader (chunks.go) takes log
// chunks from leaf pages. bbolt writes its page structs in the host's byte
// order: so does every read here (boltOrder).

import (
	"encoding/binary"
	"fmt"
	"hash/fnv"
)

// boltOrder is the byte order of bbolt's page structs: the host's.
var boltOrder = binary.NativeEndian

const (
	// A page starts with its header: id u64, flags u16, count u16 (of
	// elements), overflow u32 (pages that follow it).
	pageHeaderSize = 16
	// Branch elements are pos u32, ksize u32, child page u64; leaf
	// elements flags u32, pos u32, ksize u32, vsize u32.
	elemSize   = 16
	flagBranch = 0x01
	flagLeaf   = 0x02
	flagMeta   = 0x04
	// A leaf element with this flag is a bucket: its value starts with
	// the bucket's root page u64 (0: inline) and sequence u64.
	flagBucket = 0x01

	// The meta page (pages 0 and 1) after the header: magic u32, version
	// u32, page size u32, flags u32, root bucket (root page u64, sequence
	// u64), freelist page u64, high-water page u64, txid u64, checksum u64
	// (FNV-64a of the 56 bytes before it).
	boltMagic     = 0xED0CDAED
	boltVersion   = 2
	metaRootOff   = 16
	metaHWMOff    = 40
	metaTxidOff   = 48
	metaSumOff    = 56
	metaSize      = 64
	metaPageBytes = pageHeaderSize + metaSize
)

// pageHeader is a page's header.
type pageHeader struct {
	id       uint64
	flags    uint16
	count    uint16
	overflow uint32
}

// readPageHeader decodes the header at the start of b (pageHeaderSize
// bytes at least).
func readPageHeader(b []byte) pageHeader {
	return pageHeader{
		id:       boltOrder.Uint64(b[0:]),
		flags:    boltOrder.Uint16(b[8:]),
		count:    boltOrder.Uint16(b[10:]),
		overflow: boltOrder.Uint32(b[12:]),
	}
}

// boltMeta is what a valid meta page says.
type boltMeta struct {
	root uint64 // the root bucket's page
	hwm  uint64 // the high-water mark: pages at or above it are unused
	txid uint64
}

// parseMeta validates meta page number i, p (metaPageBytes at least), and
// decodes it.
func parseMeta(i int, p []byte) (boltMeta, error) {
	m := p[pageHeaderSize:]
	switch {
	case readPageHeader(p).flags != flagMeta:
		return boltMeta{}, fmt.Errorf("meta page %d: not a meta page", i)
	case boltOrder.Uint32(m[0:]) != boltMagic:
		return boltMeta{}, fmt.Errorf("meta page %d: bad magic (not a bbolt file)", i)
	case boltOrder.Uint32(m[4:]) != boltVersion:
		return boltMeta{}, fmt.Errorf("meta page %d: bbolt version %d", i, boltOrder.Uint32(m[4:]))
	case boltOrder.Uint32(m[8:]) != pageSize:
		return boltMeta{}, fmt.Errorf("meta page %d: page size %d, want %d", i, boltOrder.Uint32(m[8:]), pageSize)
	}
	h := fnv.New64a()
	h.Write(m[:metaSumOff])
	if h.Sum64() != boltOrder.Uint64(m[metaSumOff:]) {
		return boltMeta{}, fmt.Errorf("meta page %d: checksum mismatch", i)
	}
	return boltMeta{root: boltOrder.Uint64(m[metaRootOff:]), hwm: boltOrder.Uint64(m[metaHWMOff:]), txid: boltOrder.Uint64(m[metaTxidOff:])}, nil
}

// newestMeta returns the newer valid meta page of the first two pages of a
// bbolt file, head, as bbolt chooses it.
func newestMeta(head []byte) (boltMeta, bool) {
	var best boltMeta
	found := false
	for i := range 2 {
		if len(head) < i*pageSize+metaPageBytes {
			break
		}
		m, err := parseMeta(i, head[i*pageSize:])
		if err == nil && (!found || m.txid > best.txid) {
			best, found = m, true
		}
	}
	return best, found
}
