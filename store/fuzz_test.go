package store

import (
	"encoding/binary"
	"hash/crc32"
	"math/rand/v2"
	"testing"
	"time"
)

// FuzzDecodeBatch feeds arbitrary bytes to the record decoder: it must
// return an error or a record, never panic, hang or allocate beyond the
// input's claims.
func FuzzDecodeBatch(f *testing.F) {
	rng := rand.New(rand.NewPCG(3, 4))
	for i := 0; i < 8; i++ {
		b := genBatch(rng, i, testBase.Add(time.Duration(i)*time.Second))
		b.Seq = uint64(i + 1)
		b.Events = b.Events[:min(len(b.Events), 3)] // small seeds fuzz faster
		for j := range b.Events {
			b.Events[j].Raw = b.Events[j].Raw[:min(len(b.Events[j].Raw), 64)]
		}
		rec, _, _, err := appendBatchRecord(nil, nil, b, uint16(i%2), i%2 == 0)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(rec)
	}
	f.Add(appendLossRecord(nil, &LossPoint{Seq: 9, Time: testBase, Loss: Loss{1, 2, 3, 0}}, 1))
	f.Add(appendLossRecord(nil, &LossPoint{Seq: 10, Time: testBase, Loss: Loss{1, 2, 3, 4}}, 1))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		var d decoder
		var b Batch
		var p LossPoint
		_, _ = d.decodeRecord(data, &b, &p)
		// Fix up the length and CRC so that the fuzzer explores the body
		// decoder too.
		if len(data) < headerSize {
			return
		}
		binary.LittleEndian.PutUint32(data[0:], uint32(len(data)))
		binary.LittleEndian.PutUint32(data[4:], crc32.Checksum(data[8:], castagnoli))
		h, err := d.decodeRecord(data, &b, &p)
		// Decoded by a readahead (see inflate.go), a compressed batch
		// decodes the same, or is left to the decoder.
		var s zslot
		if data[8] == recBatch && (&zjob{rec: data}).run(&s, true, false) {
			if err != nil {
				t.Fatalf("decoded ahead, but the decoder says %v", err)
			}
			ab := &s.batch
			if s.h != h || ab.Seq != b.Seq || ab.Loss != b.Loss || len(ab.Events) != len(b.Events) {
				t.Fatalf("decoded ahead: header %+v, %d events; decoder %+v, %d events", s.h, len(ab.Events), h, len(b.Events))
			}
			for i := range ab.Events {
				if string(ab.Events[i].Raw) != string(b.Events[i].Raw) || !ab.Events[i].Timestamp.Equal(b.Events[i].Timestamp) {
					t.Fatalf("decoded ahead: event %d differs", i)
				}
			}
		}
		// Decoding into ring buffer events fails alike and, for a ring
		// buffer batch, keeps the same bytes and times.
		ringDec := decoder{ring: true}
		var rb Batch
		if _, rerr := ringDec.decodeRecord(data, &rb, &p); (rerr == nil) != (err == nil) {
			t.Fatalf("ring buffer decoding error %v, plain %v", rerr, err)
		}
		if err != nil {
			return
		}
		if h.typ == recBatch && h.kind == KindRingbuf {
			if len(rb.Ringbuf) != len(b.Events) || len(rb.Events) != 0 {
				t.Fatalf("%d ring buffer events (and %d Events), want %d", len(rb.Ringbuf), len(rb.Events), len(b.Events))
			}
			for i, e := range rb.Ringbuf {
				if string(e.Raw) != string(b.Events[i].Raw) || !e.Timestamp.Equal(b.Events[i].Timestamp) {
					t.Fatalf("event %d differs as a ring buffer event", i)
				}
			}
		}
		if h.typ == recBatch {
			// A record that decodes re-encodes to the same bytes.
			var ev int
			for _, e := range b.Events {
				ev += len(e.Raw)
			}
			if ev > len(data)+int(h.bodyLen) {
				t.Fatalf("decoded %d raw bytes from %d", ev, len(data))
			}
		}
	})
}

// TestDecodeRejectsTamperedRecords flips every byte of a record in turn:
// each must be refused (the CRC covers everything but itself, the length
// is checked against the record).
func TestDecodeRejectsTamperedRecords(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, compress := range []bool{false, true} {
		b := genBatch(rng, 5, testBase)
		b.Seq = 42
		rec, _, _, err := appendBatchRecord(nil, nil, b, 1, compress)
		if err != nil {
			t.Fatal(err)
		}
		var d decoder
		var got Batch
		if _, err := d.decodeRecord(rec, &got, nil); err != nil {
			t.Fatal(err)
		}
		got.Stream = b.Stream
		batchesEqual(t, &got, b)
		for i := range rec {
			rec[i] ^= 0x40
			if _, err := d.decodeRecord(rec, &got, nil); err == nil {
				t.Fatalf("byte %d flipped: accepted", i)
			}
			rec[i] ^= 0x40
		}
		if _, err := d.decodeRecord(rec[:len(rec)-1], &got, nil); err == nil {
			t.Fatal("truncated record accepted")
		}
	}
}

// refDecodeEvents is the plain decoder of a batch's events (binary.Uvarint
// and binary.Varint, time.Unix per event) that decodeEvents and
// decodeEventsShared must agree with.
func refDecodeEvents(n int, body []byte, flags byte, t0, cpu0 int64) ([]Event, bool) {
	r := reader{b: body}
	evs := make([]Event, n)
	var prev int64
	for i := range evs {
		e := &evs[i]
		if flags&flagOneTime != 0 {
			e.Timestamp = nsTime(t0)
		} else {
			prev += r.varint()
			e.Timestamp = nsTime(prev)
		}
		if flags&flagOneCPU != 0 {
			e.CPU = int(cpu0)
		} else {
			e.CPU = int(r.varint())
		}
		if flags&flagNoLost == 0 {
			e.Lost = r.uvarint()
		}
		l := r.uvarint()
		if r.err != nil || l > uint64(len(r.b)) {
			return nil, false
		}
		e.Raw = r.b[:l:l]
		r.b = r.b[l:]
	}
	return evs, len(r.b) == 0
}

// FuzzDecodeEvents checks the fast event decoders against refDecodeEvents
// on arbitrary bodies: same events (time, CPU, Lost, bytes) or both fail.
func FuzzDecodeEvents(f *testing.F) {
	rng := rand.New(rand.NewPCG(5, 6))
	for i := 0; i < 6; i++ {
		b := genBatch(rng, i, testBase.Add(time.Duration(i)*time.Second))
		b.Events = b.Events[:min(len(b.Events), 4)]
		rec, _, _, err := appendBatchRecord(nil, nil, b, 0, false)
		if err != nil {
			f.Fatal(err)
		}
		h, _ := parseHeader(rec)
		r := reader{b: rec[headerSize:]}
		r.uvarint()
		r.uvarint()
		r.uvarint()
		var t0, cpu0 int64
		if h.flags&flagOneTime != 0 {
			t0 = r.varint()
		}
		if h.flags&flagOneCPU != 0 {
			cpu0 = r.varint()
		}
		f.Add(r.b, h.flags, uint8(h.events), t0, cpu0)
	}
	f.Add([]byte{0x80, 0x00, 0x01, 0x41}, byte(flagOneTime|flagOneCPU), uint8(1), int64(zeroTimeNS), int64(-1))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0x00, 0x00}, byte(flagNoLost), uint8(1), int64(0), int64(0))
	// Ring buffer events whose times mostly repeat (decodeRingbufTimes):
	// deltas of 0 with lengths of one byte and of two, a time after them.
	ring := []byte{0x04, 0x01, 'A', 0x00, 0x01, 'B', 0x00, 0x80, 0x01}
	ring = append(ring, make([]byte, 128)...)
	ring = append(ring, 0x00, 0x01, 'C', 0x02, 0x00, 0x00, 0x01, 'D')
	f.Add(ring, byte(flagOneCPU|flagNoLost), uint8(6), int64(0), int64(-1))
	f.Fuzz(func(t *testing.T, body []byte, flags byte, n uint8, t0, cpu0 int64) {
		flags &= flagOneTime | flagOneCPU | flagNoLost
		want, ok := refDecodeEvents(int(n), body, flags, t0, cpu0)
		got := make([]Event, n)
		var err error
		ring := make([]RingbufEvent, n)
		var rerr error
		if flags == flagOneTime|flagOneCPU|flagNoLost {
			err = decodeEventsShared(got, body, nsTime(t0), int(cpu0))
			rerr = decodeRingbufShared(ring, body, nsTime(t0))
		} else {
			err = decodeEvents(got, body, flags, t0, int(cpu0))
			rerr = decodeRingbuf(ring, body, flags, t0)
		}
		// The ring buffer decoders fail alike and keep the same bytes and
		// times.
		if (rerr == nil) != (err == nil) || rerr != nil && rerr.Error() != err.Error() {
			t.Fatalf("ring buffer decoder error %v, event decoder error %v", rerr, err)
		}
		for i := range ring {
			if err == nil && (!ring[i].Timestamp.Equal(got[i].Timestamp) || string(ring[i].Raw) != string(got[i].Raw)) {
				t.Fatalf("event %d: ring buffer decoder %v %x, event decoder %v %x", i, ring[i].Timestamp, ring[i].Raw, got[i].Timestamp, got[i].Raw)
			}
		}
		if (err == nil) != ok {
			t.Fatalf("fast decoder error %v, reference ok %v", err, ok)
		}
		if !ok {
			return
		}
		for i := range want {
			g, w := &got[i], &want[i]
			if !g.Timestamp.Equal(w.Timestamp) || g.Timestamp.IsZero() != w.Timestamp.IsZero() || g.CPU != w.CPU || g.Lost != w.Lost || string(g.Raw) != string(w.Raw) {
				t.Fatalf("event %d: got %v cpu %d lost %d %x, want %v cpu %d lost %d %x", i, g.Timestamp, g.CPU, g.Lost, g.Raw, w.Timestamp, w.CPU, w.Lost, w.Raw)
			}
		}
	})
}
