package replay

import (
	"fmt"

	"github.com/ebpfrec/ebpfrec/bpf/btflayout"
	"github.com/ebpfrec/ebpfrec/bpf/tracers"
	"github.com/ebpfrec/ebpfrec/store"
)

// StreamDecoder is how a recorded stream's events decode: by a built-in
// tracer's Go decoder (Builtin), else by the layout the stream stored
// (Layout), else not at all (both nil; Err says why, if there is a reason
// to say). DecoderOf makes it; replay, export and summary all take it from
// there, so that the three agree on every stream.
type StreamDecoder struct {
	// Info is the stream as recorded.
	Info store.StreamInfo
	// Tracer names the built-in tracer whose Go decoder decodes the
	// stream, and Builtin is its stream (Builtin.Decode decodes one event).
	Tracer  string
	Builtin *tracers.Stream
	// Layout decodes the stream's events by their fields, when no Go
	// decoder does and the stream stored a layout that reads.
	Layout *btflayout.Layout
	// Err says why the stream decodes by neither: recorded with an event
	// type this build's tracer does not decode and no layout stored, or a
	// stored layout that does not read. Its events stay raw bytes.
	Err error
}

// DecoderOf returns the decoder of a recorded stream. A stream of a
// built-in tracer decodes by the Go decoder registered for its event type
// (which reads every earlier layout of its event by its size); a stream
// recorded before event types were stored, by its tracer's decoder of that
// stream. Any other stream decodes by the layout it stored (bpf/btflayout),
// if any: a user's own stream, and a built-in one recorded with an event
// type this build no longer decodes.
func DecoderOf(si store.StreamInfo) *StreamDecoder {
	sd := &StreamDecoder{Info: si}
	var mismatch error
	var d *tracers.EventDecoder
	if d, mismatch = tracers.DecoderOf(si.Tracer, si.Name, si.EventType, si.Object != nil); d != nil {
		sd.Tracer, sd.Builtin = d.Tracer, &d.Stream
		return sd
	}
	if len(si.Layout) > 0 {
		l, err := btflayout.Unmarshal(si.Layout)
		if err != nil {
			sd.Err = fmt.Errorf("stream %s: stored layout: %w", si.Name, err)
			return sd
		}
		sd.Layout = l
		return sd
	}
	sd.Err = mismatch
	return sd
}

// Decodes says whether the stream's events decode (by a Go decoder or a
// layout).
func (sd *StreamDecoder) Decodes() bool { return sd.Builtin != nil || sd.Layout != nil }
