package replay

import (
	"context"
	"fmt"
	"time"

	"github.com/ebpfrec/ebpfrec/bpf"
	"github.com/ebpfrec/ebpfrec/bpf/tracers"
	"github.com/ebpfrec/ebpfrec/store"
)

// Decoded is one replayed event, decoded by its stream's built-in tracer.
// It and its Raw bytes are valid during the call of the function given to
// HandleDecoded only.
type Decoded struct {
	// Seq is the sequence number of the event's batch; Index the event's
	// position in it.
	Seq   uint64
	Index int
	// Last is set on the batch's last event.
	Last bool
	// Stream describes the event's stream.
	Stream store.StreamInfo
	// Raw, Timestamp, CPU and Lost are the event as the live reader
	// delivered it; CPU is -1 for ring buffer streams (their reader does
	// not know it).
	Raw       []byte
	Timestamp time.Time
	CPU       int
	Lost      uint64
	// Event is the decoded event: nil if the stream has no built-in
	// tracer (a user object's stream, or a tracer this build does not
	// have), if decoding failed (Err), or if the stream was recorded with
	// another event type than its tracer now decodes (Err says which).
	Event tracers.Event
	// Err is the decoder's error, or why the tracer does not decode it.
	Err error
}

// HandleDecoded makes every stream of the recording replay through its
// built-in tracer's decoder (tracers.Builtin.Decode, the same code that
// decodes live events) into fn, one call per event in recorded order.
// Streams without a built-in tracer reach fn undecoded (Event nil). The
// tracers must be registered (import bpf/tracers/all). An error from fn is a
// handler error of the event's batch (Options.OnHandlerError); the rest of
// that batch is not delivered.
func (r *Replayer) HandleDecoded(fn func(*Decoded) error) {
	dec := &decoders{r: r, tracers: map[string]tracers.Builtin{}, streams: map[string]*streamDec{}}
	r.HandleRingbuf("", func(_ context.Context, evs []bpf.RingbufEvent) error {
		b := r.cur
		sd := dec.stream(b.Stream)
		d := &dec.d
		for i := range evs {
			*d = Decoded{Seq: b.Seq, Index: i, Last: i == len(evs)-1, Stream: sd.info, Raw: evs[i].Raw, Timestamp: evs[i].Timestamp, CPU: -1}
			sd.decode(d)
			if err := fn(d); err != nil {
				return err
			}
		}
		return nil
	})
	r.HandlePerfbuf("", func(_ context.Context, evs []bpf.PerfbufEvent) error {
		b := r.cur
		sd := dec.stream(b.Stream)
		d := &dec.d
		for i := range evs {
			e := &evs[i]
			*d = Decoded{Seq: b.Seq, Index: i, Last: i == len(evs)-1, Stream: sd.info, Raw: e.Raw, Timestamp: e.Timestamp, CPU: e.CPU, Lost: e.Lost}
			sd.decode(d)
			if err := fn(d); err != nil {
				return err
			}
		}
		return nil
	})
}

type decoders struct {
	r       *Replayer
	tracers map[string]tracers.Builtin // by tracer name; nil: none
	streams map[string]*streamDec
	d       Decoded
}

type streamDec struct {
	info store.StreamInfo
	t    tracers.Builtin // nil: no decoder
	err  error           // why the stream's tracer does not decode it
}

func (sd *streamDec) decode(d *Decoded) {
	if sd.t == nil {
		d.Err = sd.err
		return
	}
	d.Event, d.Err = sd.t.Decode(sd.info.Name, d.Raw)
	if d.Err != nil {
		d.Event = nil
	}
}

// stream returns the decoder of a stream.
func (ds *decoders) stream(name string) *streamDec {
	if sd := ds.streams[name]; sd != nil {
		return sd
	}
	info, ok := ds.r.meta.Stream(name)
	if !ok {
		info = store.StreamInfo{Name: name}
	}
	sd := &streamDec{info: info}
	if info.Object == nil && info.Tracer != "" {
		sd.t = ds.tracer(info.Tracer)
		if sd.t != nil {
			spec, ok := tracers.StreamByName(sd.t, name)
			switch {
			case !ok:
				sd.t = nil
			case info.EventType != "" && info.EventType != spec.EventType:
				// Recorded with another layout of the event: decoding it
				// with this one would misread it.
				sd.t = nil
				sd.err = fmt.Errorf("recorded as event type %s; the %s tracer of this build decodes %s", info.EventType, info.Tracer, spec.EventType)
			}
		}
	}
	ds.streams[name] = sd
	return sd
}

func (ds *decoders) tracer(name string) tracers.Builtin {
	if t, ok := ds.tracers[name]; ok {
		return t
	}
	t, err := tracers.New(name, tracers.Options{})
	if err != nil {
		t = nil
	}
	ds.tracers[name] = t
	return t
}
