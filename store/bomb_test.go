package store

import (
	"runtime"
	"strings"
	"testing"
)

// TestDecompressionBombRefused: a zstd record of a few KiB that expands to
// 64 MiB of empty events (each one byte of body) claims 64 M events, which
// would decode into 4 GiB of Event values. The decoder refuses it by the
// format's MaxBatchEvents, naming the count, without allocating for it; and
// Append refuses to write such a batch.
func TestDecompressionBombRefused(t *testing.T) {
	const n = 64 << 20
	// The body of a batch of n empty events sharing time, CPU and no
	// loss: three zero loss counters, the time and CPU, then one zero
	// length byte per event.
	body := make([]byte, 5+n)
	rec := compressRecord(nil, appendRecord(nil, recBatch, flagOneTime|flagOneCPU|flagNoLost, byte(KindRingbuf), 1, 0, n, body, false))
	t.Logf("bomb record: %d bytes", len(rec))
	if len(rec) > 64<<10 || rec[9]&flagZstd == 0 {
		t.Fatalf("bomb record: %d bytes, flags %#x: want a compressed record under 64 KiB", len(rec), rec[9])
	}
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	var d decoder
	var b Batch
	_, err := d.decodeRecord(rec, &b, nil)
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	if err == nil || !strings.Contains(err.Error(), "exceeds the format's limit") {
		t.Fatalf("decoding the bomb: %v, want the event limit", err)
	}
	// The 64 MiB body is decoded (it is within maxBody); the events are not.
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 2*(n+1<<20) {
		t.Errorf("decoding the bomb allocated %d MiB", grew>>20)
	}

	big := &Batch{Stream: "s", Kind: KindRingbuf, Events: make([]Event, MaxBatchEvents+1)}
	if _, _, _, err := appendBatchRecord(nil, nil, big, 0, false); err == nil || !strings.Contains(err.Error(), "more than the format's") {
		t.Fatalf("appending %d events: %v", len(big.Events), err)
	}
}
