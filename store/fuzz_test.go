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
	f.Add(appendLossRecord(nil, &LossPoint{Seq: 9, Time: testBase, Loss: Loss{1, 2, 3}}, 1))
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
		if err != nil {
			return
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
