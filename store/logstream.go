package store

// The log of one segment as a stream of records, read from its chunks.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// kvCursor walks the log bucket: a bbolt cursor or a chunkCursor.
type kvCursor interface {
	Seek(key []byte) (k, v []byte)
	Next() (k, v []byte)
}

// logStream reads the record log of a segment across its chunks.
type logStream struct {
	c        kvCursor
	maxValue int    // the largest chunk value of the segment's format
	chunk    uint64 // current chunk number
	data     []byte // its log bytes
	pos      int    // read position in data
	have     bool
	inPlace  bool // the last record read is returned in place, not in dst
	verified bool // and its checksum was verified by the readahead
	// pre is the last record decoded already (see inflate.go), or nil.
	pre *zslot
	// skipped is the first damaged chunk toStart skipped (nil: none),
	// until the reader reports the records lost with it.
	skipped error
}

// close stops the cursor's readahead, if any.
func (s *logStream) close() {
	if c, ok := s.c.(*chunkCursor); ok {
		c.close()
	}
}

// load makes k/v the current chunk.
func (s *logStream) load(k, v []byte) error {
	if k == nil {
		s.have = false
		return io.EOF
	}
	if len(k) != 8 {
		return fmt.Errorf("bad chunk key %x", k)
	}
	s.chunk = binary.BigEndian.Uint64(k)
	s.have = true
	if c, ok := s.c.(*chunkCursor); ok && c.err != nil {
		s.data, s.pos = nil, 0
		return fmt.Errorf("chunk %d: %v", s.chunk, c.err)
	}
	if len(v) < 4 || len(v) > s.maxValue {
		s.data, s.pos = nil, 0
		return fmt.Errorf("chunk %d: bad size %d", s.chunk, len(v))
	}
	s.data, s.pos = v[4:], 0
	return nil
}

// first positions at the first record of the log.
func (s *logStream) first() error {
	s.chunk = 0
	return s.toStart()
}

// toStart positions at the first record starting in the current chunk or
// a later one.
func (s *logStream) toStart() error {
	k, v := s.c.Seek(u64key(s.chunk))
	for ; k != nil; k, v = s.c.Next() {
		if err := s.load(k, v); err != nil {
			if s.skipped == nil {
				s.skipped = err
			}
			continue // a damaged chunk: try the next
		}
		off := binary.LittleEndian.Uint32(v[:4])
		if off != noStart && int(off) < len(s.data) {
			s.pos = int(off)
			return nil
		}
		if off != noStart && s.skipped == nil {
			s.skipped = fmt.Errorf("chunk %d: bad first-record offset %d", s.chunk, off)
		}
	}
	s.have = false
	return io.EOF
}

// seekRecord positions at the record at chunk/off (from the index).
func (s *logStream) seekRecord(chunk uint64, off uint32) error {
	k, v := s.c.Seek(u64key(chunk))
	if err := s.load(k, v); err != nil {
		return err
	}
	if s.chunk != chunk || int(off) > len(s.data) {
		return fmt.Errorf("index points to chunk %d offset %d, which does not exist", chunk, off)
	}
	s.pos = int(off)
	return nil
}

// resyncFrom positions at the first record that starts in a chunk after
// chunk.
func (s *logStream) resyncFrom(chunk uint64) error {
	s.chunk = chunk + 1
	return s.toStart()
}

// plausibleNext says whether the log at the current position ends or holds
// a record header that follows the last good record or the damaged one.
// The position is kept.
func (s *logStream) plausibleNext(lastGood, damaged uint64) (next uint64, ok bool) {
	if !s.have {
		return 0, true
	}
	chunk, pos := s.chunk, s.pos
	var tmp [headerSize]byte
	b, err := s.read(tmp[:0], headerSize)
	defer func() {
		if s.seekRecord(chunk, uint32(pos)) != nil {
			s.have = false
		}
	}()
	if err == io.ErrUnexpectedEOF && len(b) == 0 {
		return 0, true // end of the log
	}
	if err != nil {
		return 0, false
	}
	h, err := parseHeader(b)
	if err != nil {
		return 0, false
	}
	return h.seq, h.seq == lastGood+2 || h.seq == damaged+1
}

// read appends n bytes of the log to dst.
func (s *logStream) read(dst []byte, n int) ([]byte, error) {
	for n > 0 {
		if !s.have {
			return dst, io.ErrUnexpectedEOF
		}
		if s.pos >= len(s.data) {
			want := s.chunk + 1
			k, v := s.c.Next()
			if k == nil {
				s.have = false
				return dst, io.ErrUnexpectedEOF
			}
			if err := s.load(k, v); err != nil {
				return dst, err
			}
			if s.chunk != want {
				return dst, fmt.Errorf("chunk %d missing", want)
			}
			continue
		}
		m := min(n, len(s.data)-s.pos)
		dst = append(dst, s.data[s.pos:s.pos+m]...)
		s.pos += m
		n -= m
	}
	return dst, nil
}

// readRecord returns the next whole record, in place if it lies inside one
// chunk, else appended to dst, and says in which chunk it starts; io.EOF at
// the end.
func (s *logStream) readRecord(dst []byte) ([]byte, uint64, error) {
	if !s.have {
		return dst, s.chunk, io.EOF
	}
	if s.pos >= len(s.data) {
		// At a chunk end: is there more?
		k, v := s.c.Next()
		if k == nil {
			s.have = false
			return dst, s.chunk, io.EOF
		}
		want := s.chunk + 1
		if err := s.load(k, v); err != nil {
			return dst, s.chunk, err
		}
		if s.chunk != want {
			return dst, s.chunk - 1, fmt.Errorf("chunk %d missing", want)
		}
		if s.pos >= len(s.data) {
			return dst, s.chunk, fmt.Errorf("chunk %d: empty", s.chunk)
		}
	}
	start := s.chunk
	s.inPlace, s.verified, s.pre = false, false, nil
	// Most records lie inside one chunk: return them in place, without
	// copying (the copy was a third of the reader's own time). A record
	// that spans chunks is gathered into dst.
	if rest := s.data[s.pos:]; len(rest) >= headerSize {
		if n := int(binary.LittleEndian.Uint32(rest)); n >= headerSize && n <= len(rest) {
			if _, err := parseHeader(rest[:headerSize]); err == nil {
				if c, ok := s.c.(*chunkCursor); ok {
					s.verified = c.verified(s.pos)
					if c.ahead {
						s.pre = c.takeDecoded(s.pos)
					}
				}
				s.pos, s.inPlace = s.pos+n, true
				return rest[:n:n], start, nil
			}
		}
	}
	dst, err := s.read(dst, headerSize)
	if err != nil {
		if err == io.ErrUnexpectedEOF {
			err = errors.New("truncated record header")
		}
		return dst, start, err
	}
	h, err := parseHeader(dst)
	if err != nil {
		return dst, start, err
	}
	dst, err = s.read(dst, int(h.length)-headerSize)
	if err == io.ErrUnexpectedEOF {
		err = fmt.Errorf("record of %d bytes truncated (end of segment)", h.length)
	}
	return dst, start, err
}
