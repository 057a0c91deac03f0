// Package event defines the events that BPF buffer readers hand to their
// handlers. Package bpf names them RingbufEvent and PerfbufEvent; they
// live here, below both bpf and store, so that store can decode recorded
// events straight into them and replay can hand them to the same handlers
// without copying every event into another type. The package needs
// nothing but the standard library.
package event

import "time"

// Ringbuf is an event read from a ring buffer (bpf.RingbufEvent).
type Ringbuf struct {
	// Raw is the raw event data. It is owned by the reader and reused once
	// the handler returns: copy it to keep it.
	Raw []byte
	// Timestamp is when the reader read the event from the buffer (not when
	// the BPF program emitted it: put bpf_ktime_get_ns in the event for
	// that). It is wall-clock time with the monotonic reading stripped
	// (Round(0)), so recorded and replayed values compare equal. Events read
	// back to back share one clock reading: it is renewed after every
	// wakeup (whenever the buffer was found empty), after every batch and
	// at least every 64 events, so it can precede the actual read by the
	// time reading up to 64 events takes (microseconds), never follow it.
	Timestamp time.Time
}

// Perfbuf is an event read from a perf buffer (bpf.PerfbufEvent).
type Perfbuf struct {
	// Raw is the raw event data. It is owned by the reader and reused once
	// the handler returns: copy it to keep it.
	Raw []byte
	// CPU is the CPU that generated the event
	CPU int
	// Timestamp is when the event was read (as for Ringbuf; the per-CPU
	// buffers count as one buffer).
	Timestamp time.Time
	// Lost is the number of samples the kernel lost on this CPU just before
	// this event (0 if none), from the kernel's lost-samples records. They
	// are also in PerfbufStats.EventsLost, where counts that no later sample
	// carried (the reader stopped first) are too.
	Lost uint64
}
