package bpf

import "github.com/ebpfrec/ebpfrec/internal/event"

// RingbufEvent represents an event read from a ring buffer: Raw, the raw
// event data, owned by the reader and reused once the handler returns
// (copy it to keep it); and Timestamp, the wall-clock time (monotonic
// reading stripped) when the reader read it, renewed after every wakeup,
// every batch and at least every 64 events.
//
// It is defined in an internal package that store shares, so that replay
// hands recorded events to handlers without a copy; the field docs are
// there.
type RingbufEvent = event.Ringbuf

// PerfbufEvent represents an event read from a perf buffer: Raw (as for
// RingbufEvent), CPU, the CPU that generated it, Timestamp, when it was
// read, and Lost, the samples the kernel lost on that CPU just before it.
type PerfbufEvent = event.Perfbuf
