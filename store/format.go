package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"sync"
	"time"

	"github.com/klauspost/compress/zstd"
)

// Record header, little endian:
//
//	0:4   total length of the record (header + stored body)
//	4:8   CRC-32C (Castagnoli) of bytes 8:total
//	8     record type (recBatch, recLoss)
//	9     flags (flagZstd, flagOneTime, flagOneCPU, flagNoLost, flagMissed)
//	10    kind (Kind)
//	11    reserved, 0
//	12:20 sequence number
//	20:22 stream number (index into Meta.Streams)
//	22:24 reserved, 0
//	24:28 event count
//	28:32 body length before compression
//
// Batch body: KernelLost, RingbufDropped, UserDropped as uvarints, then
// KernelMissed (uvarint) if flagMissed; the timestamp shared by all events
// (varint ns) if flagOneTime; the CPU shared by all events (varint) if
// flagOneCPU; then for each event: the timestamp
// delta from the previous event (varint ns, the first from 0) unless
// flagOneTime, the CPU (varint) unless flagOneCPU, Lost (uvarint) unless
// flagNoLost, the raw length (uvarint) and the raw bytes.
//
// Loss body: time (varint ns) and the three counters (uvarints), then
// KernelMissed (uvarint) if flagMissed. flagMissed is format 3's: a record
// whose KernelMissed is 0 is written without it, as in format 2.
//
// A zero time.Time is stored as math.MinInt64 nanoseconds. Timestamps are
// exact (time.Time.Equal holds) for years 1678 to 2261.
const (
	headerSize = 32

	recBatch = 1
	recLoss  = 2

	flagZstd    = 1 << 0
	flagOneTime = 1 << 1
	flagOneCPU  = 1 << 2
	flagNoLost  = 1 << 3
	flagMissed  = 1 << 4
	knownFlags  = flagZstd | flagOneTime | flagOneCPU | flagNoLost | flagMissed

	// maxBody caps the decoded size of one record: a batch larger than this
	// is refused by Append, and a record claiming more is corrupt.
	maxBody = 256 << 20

	// MaxBatchEvents caps the events of one batch: Append refuses more, and
	// a record claiming more is damage. Each decoded event takes 64 bytes,
	// so a batch decodes into at most 64 MiB of events beside its body; a
	// record of 256 MiB of empty events (a 64 KiB zstd bomb) would
	// otherwise claim 16 GiB.
	MaxBatchEvents = 1 << 20

	// compressMin is the smallest body worth trying to compress.
	compressMin = 256

	zeroTimeNS = math.MinInt64
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func timeNS(t time.Time) int64 {
	if t.IsZero() {
		return zeroTimeNS
	}
	return t.UnixNano()
}

func nsTime(ns int64) time.Time {
	if ns == zeroTimeNS {
		return time.Time{}
	}
	return time.Unix(0, ns)
}

var (
	zencOnce sync.Once
	zenc     *zstd.Encoder
	zdecOnce sync.Once
	zdec     [2]*zstd.Decoder
)

// encoderZstd returns the shared zstd encoder (EncodeAll is safe for
// concurrent use and reuses its internal state). Literals are stored raw,
// not Huffman-coded: a frame then has no Huffman table to build and no
// literals to decode through it. On a getpid storm's records that takes
// decoding to about 0.91 of the time and encoding to about 0.6, for 1.6 %
// more bytes (text-like events, paths and names, grow by up to a tenth).
// The frames are standard zstd either way: recordings written with
// Huffman-coded literals read the same (TestReadZstdHuffman).
func encoderZstd() *zstd.Encoder {
	zencOnce.Do(func() {
		zenc, _ = zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithNoEntropyCompression(true),
			zstd.WithEncoderConcurrency(1), zstd.WithZeroFrames(true), zstd.WithEncoderCRC(false))
	})
	return zenc
}

// decoderZstd returns a shared zstd decoder (DecodeAll is safe for
// concurrent use); memory is capped at maxBody. Decoders use the first,
// readaheads the second (see inflate.go): each keeps its tables in the
// cache of the core it runs on.
func decoderZstd(ahead bool) *zstd.Decoder {
	zdecOnce.Do(func() {
		for i := range zdec {
			zdec[i], _ = zstd.NewReader(nil, zstd.WithDecoderConcurrency(1),
				zstd.WithDecoderMaxMemory(maxBody))
		}
	})
	if ahead {
		return zdec[1]
	}
	return zdec[0]
}

// inflate decompresses a record's zstd body into dst (reused from its
// start), with the readaheads' decoder if ahead. It does not trust the header's body length for the allocation:
// the decoder grows dst as the input really decodes, up to maxBody (the
// caller compares the result with the header).
func inflate(body, dst []byte, ahead bool) ([]byte, error) {
	out, err := decoderZstd(ahead).DecodeAll(body, dst[:0])
	if err != nil {
		return out, fmt.Errorf("zstd: %v", err)
	}
	return out, nil
}

// batchStats is what encoding a batch learns about it.
type batchStats struct {
	payload    uint64 // raw bytes
	perfLost   uint64 // sum of Event.Lost
	minT, maxT int64  // event timestamps (valid if events > 0)
}

// appendBatchRecord appends the record of b to dst. scratch is a reusable
// buffer for the uncompressed body; both are returned grown.
func appendBatchRecord(dst, scratch []byte, b *Batch, stream uint16, compress bool) (out, scratchOut []byte, st batchStats, err error) {
	if len(b.Events) > MaxBatchEvents {
		return dst, scratch, st, fmt.Errorf("store: batch of stream %q has %d events, more than the format's %d", b.Stream, len(b.Events), MaxBatchEvents)
	}
	var flags byte = flagOneTime | flagOneCPU | flagNoLost
	st.minT, st.maxT = math.MaxInt64, math.MinInt64
	var t0 int64
	cpu0 := 0
	for i := range b.Events {
		e := &b.Events[i]
		ns := timeNS(e.Timestamp)
		if i == 0 {
			t0, cpu0 = ns, e.CPU
		}
		if ns != t0 {
			flags &^= flagOneTime
		}
		if e.CPU != cpu0 {
			flags &^= flagOneCPU
		}
		if e.Lost != 0 {
			flags &^= flagNoLost
		}
		if ns < st.minT {
			st.minT = ns
		}
		if ns > st.maxT {
			st.maxT = ns
		}
		st.payload += uint64(len(e.Raw))
		st.perfLost += e.Lost
	}
	body := scratch[:0]
	body = binary.AppendUvarint(body, b.Loss.KernelLost)
	body = binary.AppendUvarint(body, b.Loss.RingbufDropped)
	body = binary.AppendUvarint(body, b.Loss.UserDropped)
	if b.Loss.KernelMissed != 0 {
		flags |= flagMissed
		body = binary.AppendUvarint(body, b.Loss.KernelMissed)
	}
	if flags&flagOneTime != 0 {
		body = binary.AppendVarint(body, t0)
	}
	if flags&flagOneCPU != 0 {
		body = binary.AppendVarint(body, int64(cpu0))
	}
	var prev int64
	for i := range b.Events {
		e := &b.Events[i]
		if flags&flagOneTime == 0 {
			ns := timeNS(e.Timestamp)
			body = binary.AppendVarint(body, ns-prev) // wraps, and unwraps on decode
			prev = ns
		}
		if flags&flagOneCPU == 0 {
			body = binary.AppendVarint(body, int64(e.CPU))
		}
		if flags&flagNoLost == 0 {
			body = binary.AppendUvarint(body, e.Lost)
		}
		body = binary.AppendUvarint(body, uint64(len(e.Raw)))
		body = append(body, e.Raw...)
		if len(body) > maxBody {
			return dst, body, st, fmt.Errorf("store: batch of stream %q is larger than %d MiB", b.Stream, maxBody>>20)
		}
	}
	out = appendRecord(dst, recBatch, flags, byte(b.Kind), b.Seq, stream, uint32(len(b.Events)), body, compress)
	return out, body, st, nil
}

// compressRecord appends rec to dst, its body zstd-compressed when it is a
// batch worth it (rec is a whole, valid record made by appendBatchRecord).
func compressRecord(dst, rec []byte) []byte {
	if len(rec) < headerSize+compressMin || rec[8] != recBatch || rec[9]&flagZstd != 0 {
		return append(dst, rec...)
	}
	start := len(dst)
	dst = append(dst, rec[:headerSize]...)
	body := rec[headerSize:]
	dst = encoderZstd().EncodeAll(body, dst)
	if len(dst)-start-headerSize >= len(body)-len(body)/16 {
		return append(dst[:start], rec...) // not worth it
	}
	r := dst[start:]
	r[9] |= flagZstd
	binary.LittleEndian.PutUint32(r[0:], uint32(len(r)))
	binary.LittleEndian.PutUint32(r[4:], crc32.Checksum(r[8:], castagnoli))
	return dst
}

// appendLossRecord appends the record of a loss point to dst.
func appendLossRecord(dst []byte, p *LossPoint, stream uint16) []byte {
	var body [5 * binary.MaxVarintLen64]byte
	n := binary.PutVarint(body[:], timeNS(p.Time))
	n += binary.PutUvarint(body[n:], p.Loss.KernelLost)
	n += binary.PutUvarint(body[n:], p.Loss.RingbufDropped)
	n += binary.PutUvarint(body[n:], p.Loss.UserDropped)
	var flags byte
	if p.Loss.KernelMissed != 0 {
		flags = flagMissed
		n += binary.PutUvarint(body[n:], p.Loss.KernelMissed)
	}
	return appendRecord(dst, recLoss, flags, 0, p.Seq, stream, 0, body[:n], false)
}

func appendRecord(dst []byte, typ, flags, kind byte, seq uint64, stream uint16, events uint32, body []byte, compress bool) []byte {
	start := len(dst)
	var h [headerSize]byte
	dst = append(dst, h[:]...)
	stored := false
	if compress && len(body) >= compressMin {
		dst = encoderZstd().EncodeAll(body, dst)
		if len(dst)-start-headerSize < len(body)-len(body)/16 {
			flags |= flagZstd
			stored = true
		} else {
			dst = dst[:start+headerSize]
		}
	}
	if !stored {
		dst = append(dst, body...)
	}
	r := dst[start:]
	binary.LittleEndian.PutUint32(r[0:], uint32(len(r)))
	r[8], r[9], r[10] = typ, flags, kind
	binary.LittleEndian.PutUint64(r[12:], seq)
	binary.LittleEndian.PutUint16(r[20:], stream)
	binary.LittleEndian.PutUint32(r[24:], events)
	binary.LittleEndian.PutUint32(r[28:], uint32(len(body)))
	binary.LittleEndian.PutUint32(r[4:], crc32.Checksum(r[8:], castagnoli))
	return dst
}

// recHeader is a parsed record header.
type recHeader struct {
	length  uint32
	typ     byte
	flags   byte
	kind    Kind
	seq     uint64
	stream  uint16
	events  uint32
	bodyLen uint32
}

// parseHeader parses the first headerSize bytes of a record, without
// checking the CRC. It checks what can be checked without the body.
func parseHeader(b []byte) (recHeader, error) {
	if len(b) < headerSize {
		return recHeader{}, errors.New("truncated record header")
	}
	h := recHeader{
		length:  binary.LittleEndian.Uint32(b[0:]),
		typ:     b[8],
		flags:   b[9],
		kind:    Kind(b[10]),
		seq:     binary.LittleEndian.Uint64(b[12:]),
		stream:  binary.LittleEndian.Uint16(b[20:]),
		events:  binary.LittleEndian.Uint32(b[24:]),
		bodyLen: binary.LittleEndian.Uint32(b[28:]),
	}
	if h.length < headerSize || h.length > headerSize+maxBody {
		return h, fmt.Errorf("bad record length %d", h.length)
	}
	return h, nil
}

// decoder decodes records, reusing its buffers: what it returns is valid
// until its next call.
type decoder struct {
	// crcVerified: the next record's checksum was verified over the same
	// bytes already (by the reader's readahead).
	crcVerified bool
	// ring: decode ring buffer batches into Batch.Ringbuf
	// (ReaderOptions.RingbufEvents).
	ring bool
	// ahead: a readahead's decoder (see inflate.go), which decompresses
	// with the readaheads' zstd decoder.
	ahead  bool
	body   []byte
	events []Event
	ringEv []RingbufEvent
}

// decodeRecord checks and decodes one whole record. For a batch it fills b
// (b.Stream is left to the caller, which maps the stream number); for a
// loss point it fills p. Raw slices alias rec or the decoder's buffer.
func (d *decoder) decodeRecord(rec []byte, b *Batch, p *LossPoint) (recHeader, error) {
	h, err := parseHeader(rec)
	if err != nil {
		return h, err
	}
	if int(h.length) != len(rec) {
		return h, fmt.Errorf("record length %d does not match %d bytes read", h.length, len(rec))
	}
	if d.crcVerified {
		d.crcVerified = false // for this record only
	} else if got, want := crc32.Checksum(rec[8:], castagnoli), binary.LittleEndian.Uint32(rec[4:]); got != want {
		return h, errCRC
	}
	if h.flags&^knownFlags != 0 || rec[11] != 0 || rec[22] != 0 || rec[23] != 0 {
		return h, fmt.Errorf("unknown flags %#x (written by a newer version?)", h.flags)
	}
	if h.bodyLen > maxBody {
		return h, fmt.Errorf("body length %d too large", h.bodyLen)
	}
	body := rec[headerSize:]
	if h.flags&flagZstd != 0 {
		out, err := inflate(body, d.body, d.ahead)
		d.body = out[:0] // reused by the next record
		if err != nil {
			return h, err
		}
		if len(out) != int(h.bodyLen) {
			return h, fmt.Errorf("decompressed %d bytes, header says %d", len(out), h.bodyLen)
		}
		body = out
	} else if len(body) != int(h.bodyLen) {
		return h, fmt.Errorf("body length %d, header says %d", len(body), h.bodyLen)
	}
	switch h.typ {
	case recBatch:
		if b == nil {
			b = new(Batch)
		}
		return h, d.decodeBatch(h, body, b)
	case recLoss:
		if p == nil {
			p = new(LossPoint)
		}
		if h.events != 0 || h.flags&^flagMissed != 0 {
			return h, errors.New("bad loss record header")
		}
		r := reader{b: body}
		p.Seq = h.seq
		p.Time = nsTime(r.varint())
		p.Loss.KernelLost = r.uvarint()
		p.Loss.RingbufDropped = r.uvarint()
		p.Loss.UserDropped = r.uvarint()
		p.Loss.KernelMissed = 0
		if h.flags&flagMissed != 0 {
			p.Loss.KernelMissed = r.uvarint()
		}
		if r.err != nil {
			return h, r.err
		}
		if len(r.b) != 0 {
			return h, fmt.Errorf("%d trailing bytes", len(r.b))
		}
		return h, nil
	}
	return h, fmt.Errorf("unknown record type %d (written by a newer version?)", h.typ)
}

func (d *decoder) decodeBatch(h recHeader, body []byte, b *Batch) error {
	r := reader{b: body}
	b.Seq = h.seq
	b.Kind = h.kind
	b.Loss.KernelLost = r.uvarint()
	b.Loss.RingbufDropped = r.uvarint()
	b.Loss.UserDropped = r.uvarint()
	b.Loss.KernelMissed = 0
	if h.flags&flagMissed != 0 {
		b.Loss.KernelMissed = r.uvarint()
	}
	var t0 int64
	var cpu0 int64
	if h.flags&flagOneTime != 0 {
		t0 = r.varint()
	}
	if h.flags&flagOneCPU != 0 {
		cpu0 = r.varint()
	}
	if r.err != nil {
		return r.err
	}
	if h.events > MaxBatchEvents {
		return fmt.Errorf("event count %d exceeds the format's limit of %d", h.events, MaxBatchEvents)
	}
	// Every event takes at least one byte: cap the count by the body.
	if int64(h.events) > int64(len(r.b)) {
		return fmt.Errorf("event count %d exceeds the %d bytes of the body", h.events, len(r.b))
	}
	n := int(h.events)
	b.Events, b.Ringbuf = nil, nil
	if d.ring && h.kind == KindRingbuf {
		if cap(d.ringEv) < n {
			d.ringEv = make([]RingbufEvent, n)
		}
		evs := d.ringEv[:n]
		if h.flags&(flagOneTime|flagOneCPU|flagNoLost) == flagOneTime|flagOneCPU|flagNoLost {
			if err := decodeRingbufShared(evs, r.b, nsTime(t0)); err != nil {
				return err
			}
		} else if err := decodeRingbuf(evs, r.b, h.flags, t0); err != nil {
			return err
		}
		b.Ringbuf = evs
		return nil
	}
	evs, err := d.decodeEvents(n, r.b, h.flags, t0, cpu0)
	b.Events = evs
	return err
}

// decodeEvents decodes the n events of a batch body (after its shared
// fields) into the decoder's Events.
func (d *decoder) decodeEvents(n int, p []byte, flags byte, t0, cpu0 int64) ([]Event, error) {
	if cap(d.events) < n {
		d.events = make([]Event, n)
	}
	evs := d.events[:n]
	var err error
	if flags&(flagOneTime|flagOneCPU|flagNoLost) == flagOneTime|flagOneCPU|flagNoLost {
		err = decodeEventsShared(evs, p, nsTime(t0), int(cpu0))
	} else {
		err = decodeEvents(evs, p, flags, t0, int(cpu0))
	}
	if err != nil {
		return nil, err
	}
	return evs, nil
}

// errTrailing and errEvent build the errors of the event loops, out of
// line so that the loops stay small.
func errTrailing(left, n int) error {
	return fmt.Errorf("%d trailing bytes after %d events", left, n)
}

func errEvent(i int, err error) error { return fmt.Errorf("event %d: %v", i, err) }

var errVarint = errors.New("bad or truncated varint")

func errLength(l uint64, left int) error {
	return fmt.Errorf("length %d exceeds the %d bytes left", l, left)
}

// uvarintFast is binary.Uvarint with the one- and two-byte cases inline.
func uvarintFast(p []byte) (uint64, int) {
	if len(p) > 1 {
		if p[0] < 0x80 {
			return uint64(p[0]), 1
		}
		if p[1] < 0x80 {
			return uint64(p[0]&0x7f) | uint64(p[1])<<7, 2
		}
	}
	return binary.Uvarint(p)
}

// eventFields reads the fields that precede each event's raw bytes in a
// batch body, as the batch's flags say; the general loops that fill
// Events and ring buffer events share it.
type eventFields struct {
	p     []byte
	flags byte
	tOne  time.Time
	cpu0  int
	// prev is the previous event's time in ns; sec and nsec the same split
	// as time.Unix wants it (0 <= nsec < 1e9), kept up to date by adding
	// the deltas so that the common small delta needs no division.
	prev, sec, nsec int64
}

// next reads event i's time, CPU, Lost and raw bytes.
func (f *eventFields) next(i int) (ts time.Time, cpu int, lost uint64, raw []byte, err error) {
	p := f.p
	if f.flags&flagOneTime != 0 {
		ts = f.tOne
	} else {
		ux, k := uvarintFast(p) // a varint: zigzag
		if k <= 0 {
			return ts, 0, 0, nil, errEvent(i, errVarint)
		}
		p = p[k:]
		d := int64(ux >> 1)
		if ux&1 != 0 {
			d = ^d
		}
		f.prev += d
		f.nsec += d
		if uint64(f.nsec) >= 1e9 || i == 0 {
			f.sec, f.nsec = f.prev/1e9, f.prev%1e9
			if f.nsec < 0 {
				f.sec, f.nsec = f.sec-1, f.nsec+1e9
			}
		}
		if f.prev != zeroTimeNS {
			ts = time.Unix(f.sec, f.nsec)
		}
	}
	cpu = f.cpu0
	if f.flags&flagOneCPU == 0 {
		ux, k := uvarintFast(p)
		if k <= 0 {
			return ts, 0, 0, nil, errEvent(i, errVarint)
		}
		p = p[k:]
		c := int64(ux >> 1)
		if ux&1 != 0 {
			c = ^c
		}
		cpu = int(c)
	}
	if f.flags&flagNoLost == 0 {
		v, k := uvarintFast(p)
		if k <= 0 {
			return ts, 0, 0, nil, errEvent(i, errVarint)
		}
		p = p[k:]
		lost = v
	}
	l, k := uvarintFast(p)
	if k <= 0 {
		return ts, 0, 0, nil, errEvent(i, errVarint)
	}
	p = p[k:]
	if l > uint64(len(p)) {
		return ts, 0, 0, nil, errEvent(i, errLength(l, len(p)))
	}
	f.p = p[l:]
	return ts, cpu, lost, p[:l:l], nil
}

// decodeEventsShared decodes the events of a batch whose events share
// their timestamp and CPU and have no Lost count (the common case of a
// ring buffer batch): each event is a length and its raw bytes.
func decodeEventsShared(evs []Event, p []byte, ts time.Time, cpu int) error {
	for i := range evs {
		// The length, with its one-byte case inline: a call per event
		// costs more than the rest of the loop.
		var l uint64
		if len(p) > 0 && p[0] < 0x80 {
			l, p = uint64(p[0]), p[1:]
		} else {
			var k int
			if l, k = uvarintFast(p); k <= 0 {
				return errEvent(i, errVarint)
			}
			p = p[k:]
		}
		if l > uint64(len(p)) {
			return errEvent(i, errLength(l, len(p)))
		}
		e := &evs[i]
		e.Raw = p[:l:l]
		e.Timestamp = ts
		e.CPU = cpu
		e.Lost = 0
		p = p[l:]
	}
	if len(p) != 0 {
		return errTrailing(len(p), len(evs))
	}
	return nil
}

// decodeRingbufShared is decodeEventsShared into ring buffer events.
func decodeRingbufShared(evs []RingbufEvent, p []byte, ts time.Time) error {
	for i := range evs {
		var l uint64
		if len(p) > 0 && p[0] < 0x80 {
			l, p = uint64(p[0]), p[1:]
		} else {
			var k int
			if l, k = uvarintFast(p); k <= 0 {
				return errEvent(i, errVarint)
			}
			p = p[k:]
		}
		if l > uint64(len(p)) {
			return errEvent(i, errLength(l, len(p)))
		}
		e := &evs[i]
		e.Raw = p[:l:l]
		e.Timestamp = ts
		p = p[l:]
	}
	if len(p) != 0 {
		return errTrailing(len(p), len(evs))
	}
	return nil
}

// decodeEvents decodes the events of a batch in the general case.
func decodeEvents(evs []Event, p []byte, flags byte, t0 int64, cpu0 int) error {
	f := eventFields{p: p, flags: flags, tOne: nsTime(t0), cpu0: cpu0}
	for i := range evs {
		ts, cpu, lost, raw, err := f.next(i)
		if err != nil {
			return err
		}
		e := &evs[i]
		e.Raw, e.CPU, e.Timestamp, e.Lost = raw, cpu, ts, lost
	}
	if len(f.p) != 0 {
		return errTrailing(len(f.p), len(evs))
	}
	return nil
}

// decodeRingbuf is decodeEvents into ring buffer events (CPU and Lost are
// read, and dropped).
func decodeRingbuf(evs []RingbufEvent, p []byte, flags byte, t0 int64) error {
	if eachTimeOneCPUNoLost(flags) {
		return decodeRingbufTimes(evs, p)
	}
	f := eventFields{p: p, flags: flags, tOne: nsTime(t0)}
	for i := range evs {
		ts, _, _, raw, err := f.next(i)
		if err != nil {
			return err
		}
		e := &evs[i]
		e.Raw, e.Timestamp = raw, ts
	}
	if len(f.p) != 0 {
		return errTrailing(len(f.p), len(evs))
	}
	return nil
}

// eachTimeOneCPUNoLost says whether a batch record's flags say its events
// each have a time, one CPU and no lost count, as ring buffer batches do
// (decodeRingbufTimes); flags that do not shape events (flagZstd,
// flagMissed) do not matter.
func eachTimeOneCPUNoLost(flags byte) bool {
	return flags&(flagOneTime|flagOneCPU|flagNoLost) == flagOneCPU|flagNoLost
}

// decodeRingbufTimes is decodeRingbuf for the events of a ring buffer
// batch whose times differ: bpf.RingbufReader stamps events from a clock it
// reads now and then, so most of their time deltas are 0. An event whose
// delta is 0 and whose length takes one byte takes the previous event's
// time, which next would compute again to the same value; the others go
// through next.
func decodeRingbufTimes(evs []RingbufEvent, p []byte) error {
	f := eventFields{p: p, flags: flagOneCPU | flagNoLost}
	var ts time.Time
	for i := range evs {
		if q := f.p; i > 0 && len(q) > 1 && q[0] == 0 && q[1] < 0x80 {
			l := int(q[1])
			q = q[2:]
			if l > len(q) {
				return errEvent(i, errLength(uint64(l), len(q)))
			}
			e := &evs[i]
			e.Raw, e.Timestamp = q[:l:l], ts
			f.p = q[l:]
			continue
		}
		t, _, _, raw, err := f.next(i)
		if err != nil {
			return err
		}
		ts = t
		e := &evs[i]
		e.Raw, e.Timestamp = raw, t
	}
	if len(f.p) != 0 {
		return errTrailing(len(f.p), len(evs))
	}
	return nil
}

// reader reads varints from a byte slice; the first error sticks.
type reader struct {
	b   []byte
	err error
}

func (r *reader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.err = errors.New("bad or truncated varint")
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) varint() int64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.err = errors.New("bad or truncated varint")
		return 0
	}
	r.b = r.b[n:]
	return v
}
