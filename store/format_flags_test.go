package store

import "testing"

// TestRingbufTimesPathFlags: the ring buffer batches' fast path
// (decodeRingbufTimes) is taken whatever the flags that do not shape
// events say: a compressed batch (the default) or one with kernel misses.
// It tested flags == flagOneCPU|flagNoLost, which a compressed batch never
// has.
func TestRingbufTimesPathFlags(t *testing.T) {
	for _, extra := range []byte{0, flagZstd, flagMissed, flagZstd | flagMissed} {
		if !eachTimeOneCPUNoLost(flagOneCPU | flagNoLost | extra) {
			t.Errorf("flags %#x: the fast path is not taken", flagOneCPU|flagNoLost|extra)
		}
		for _, other := range []byte{flagOneTime | flagOneCPU | flagNoLost, flagNoLost, flagOneCPU, 0} {
			if eachTimeOneCPUNoLost(other | extra) {
				t.Errorf("flags %#x: the fast path is taken", other|extra)
			}
		}
	}
}
