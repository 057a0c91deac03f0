package bpf

import (
	"time"
)

// RingbufEvent represents an event read from a ring buffer.
type RingbufEvent struct {
	// Raw is the raw event data. It is owned by the reader and reused once
	// the handler returns: copy it to keep it.
	Raw []byte
	// Timestamp is when the event was read (wall clock, with the monotonic
	// reading stripped so that recorded and replayed values compare equal).
	Timestamp time.Time
}

// PerfbufEvent represents an event read from a perf buffer.
type PerfbufEvent struct {
	// Raw is the raw event data. It is owned by the reader and reused once
	// the handler returns: copy it to keep it.
	Raw []byte
	// CPU is the CPU that generated the event
	CPU int
	// Timestamp is when the event was read (as for RingbufEvent).
	Timestamp time.Time
	// Lost is the number of samples the kernel lost on this CPU just before
	// this event (0 if none).
	Lost uint64
}
