package store

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
)

// Fingerprint returns a digest of a batch as a handler receives it: its
// stream, its kind and, per event, the raw bytes and the timestamp, and for
// perf buffers the CPU and the lost count. The recorder writes the
// fingerprints of the batches its live handler received; replay computes
// them again from the recording, and the two lists must be equal (contract 1:
// replay is exact). The sequence number is not part of it.
func Fingerprint(stream string, kind Kind, events []Event) string {
	h := sha256.New()
	var buf [8]byte
	binary.LittleEndian.PutUint32(buf[:4], uint32(len(stream)))
	h.Write(buf[:4])
	h.Write([]byte(stream))
	h.Write([]byte{byte(kind)})
	for _, e := range events {
		binary.LittleEndian.PutUint32(buf[:4], uint32(len(e.Raw)))
		h.Write(buf[:4])
		h.Write(e.Raw)
		binary.LittleEndian.PutUint64(buf[:], uint64(e.Timestamp.UnixNano()))
		h.Write(buf[:])
		if kind == KindPerfbuf {
			binary.LittleEndian.PutUint64(buf[:], uint64(int64(e.CPU)))
			h.Write(buf[:])
			binary.LittleEndian.PutUint64(buf[:], e.Lost)
			h.Write(buf[:])
		}
	}
	return hex.EncodeToString(h.Sum(nil))
}

// FingerprintLine is one line of a fingerprints file: "SEQ STREAM EVENTS DIGEST".
func FingerprintLine(seq uint64, stream string, kind Kind, events []Event) string {
	return fmt.Sprintf("%d %s %d %s", seq, stream, len(events), Fingerprint(stream, kind, events))
}
