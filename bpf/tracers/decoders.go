package tracers

import (
	"fmt"
	"sync"
)

// EventDecoder is the Go decoder of a recorded stream: the registered tracer
// and its stream whose Decode decodes the stream's events.
type EventDecoder struct {
	Tracer string
	Stream Stream
}

// decoders is the Go decoders of the registered tracers by event type,
// collected once, at the first DecoderOf (the tracers register in init).
var decoders struct {
	once   sync.Once
	byType map[string]EventDecoder
	// byTracer is each tracer's event type by stream name, for what a
	// stream recorded under another event type is told.
	byTracer map[string]map[string]string
}

func loadDecoders() {
	decoders.byType = map[string]EventDecoder{}
	decoders.byTracer = map[string]map[string]string{}
	for _, name := range Names() {
		t, err := New(name, Options{})
		if err != nil {
			continue
		}
		decoders.byTracer[name] = map[string]string{}
		for _, s := range t.Streams() {
			decoders.byTracer[name][s.Name] = s.EventType
			if s.EventType != "" && s.Decode != nil {
				decoders.byType[s.EventType] = EventDecoder{Tracer: name, Stream: s}
			}
		}
	}
}

// DecoderOf returns the Go decoder of a stream that the built-in tracer
// called tracer recorded under the name stream with the event type
// eventType ("" for a recording made before event types were stored: the
// tracer's decoder of that stream): the decoder a registered tracer has
// for that event type, if that tracer is the one that recorded it and the
// stream is not a user object's (fromObject: whatever tracer name a
// user's collection gives, its events are its own). Nil if
// there is none; then mismatch says why, when the tracer of this build
// decodes the stream under another event type (decoding it would misread
// it), and is nil otherwise. This is the one place that decides which Go
// decoder decodes a recorded stream (replay.DecoderOf asks here).
func DecoderOf(tracer, stream, eventType string, fromObject bool) (d *EventDecoder, mismatch error) {
	if fromObject || tracer == "" {
		return nil, nil
	}
	decoders.once.Do(loadDecoders)
	streams := decoders.byTracer[tracer]
	// The event type the tracer of this build gives the stream (the
	// tracer's only one, for a stream renamed when recorded).
	now, ok := streams[stream]
	if !ok && len(streams) == 1 {
		for _, now = range streams {
			ok = true
		}
	}
	typ := eventType
	if typ == "" {
		typ = now // recorded before event types were stored
	}
	if r, found := decoders.byType[typ]; found && r.Tracer == tracer {
		return &r, nil
	}
	if ok && eventType != "" {
		return nil, fmt.Errorf("stream %s: recorded as event type %s; the %s tracer of this build decodes %s", stream, eventType, tracer, now)
	}
	return nil, nil
}
