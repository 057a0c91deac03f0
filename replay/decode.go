package replay

import (
	"context"
	"time"

	"github.com/ebpfrec/ebpfrec/bpf"
	"github.com/ebpfrec/ebpfrec/bpf/btflayout"
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
	// Last is set on the batch's last event; in time order
	// (HandleDecodedInOrder), on the last event of those delivered
	// together, after which the replay reads on (a printer flushes then).
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
	// Time is the event's time, the one to print and to order by: its
	// kernel time through the recording's MonoToWall (store.Meta.WallTime)
	// if it decoded, else Timestamp.
	Time time.Time
	// Late is set, in time order (HandleDecodedInOrder), on an event that
	// arrived after a later event had been delivered: it is delivered at
	// once, out of order, and counted in Stats.Order.
	Late bool
	// Event is the event decoded by its built-in tracer's Go decoder: nil
	// if the stream has none (a user object's stream, or a tracer this
	// build does not have), if decoding failed (Err), or if the stream was
	// recorded with another event type than its tracer now decodes.
	Event tracers.Event
	// Layout and Fields are the event decoded by the layout its stream
	// stored (bpf/btflayout), when no Go decoder decodes it: Fields[i] is
	// the value of Layout.Fields[i]. Nil otherwise, or if decoding failed
	// (Err). Fields is valid during the call of fn only.
	Layout *btflayout.Layout
	Fields []btflayout.Value
	// Err is the decoder's error, or why the stream does not decode
	// (StreamDecoder.Err).
	Err error
}

// HandleDecoded makes every stream of the recording replay through its
// decoder (DecoderOf) into fn, one call per event in recorded order: a
// built-in tracer's Go decoder (the same code that decodes live events;
// Decoded.Event), else the layout the stream stored (Decoded.Fields, by
// name in Decoded.Layout). Streams with neither reach fn undecoded. The
// tracers must be registered (import bpf/tracers/all). An error from fn is a
// handler error of the event's batch (Options.OnHandlerError); the rest of
// that batch is not delivered.
func (r *Replayer) HandleDecoded(fn func(*Decoded) error) {
	if fn == nil {
		r.nilHandler("HandleDecoded", "")
		return
	}
	dec := &decoders{r: r, streams: map[string]*streamDec{}}
	r.decodedAll = true
	r.HandleRingbuf("", func(_ context.Context, evs []bpf.RingbufEvent) error {
		b := r.cur
		sd := dec.stream(b.Stream)
		d := &dec.d
		for i := range evs {
			*d = Decoded{Seq: b.Seq, Index: i, Last: i == len(evs)-1, Stream: sd.info, Raw: evs[i].Raw, Timestamp: evs[i].Timestamp, CPU: -1}
			dec.decode(sd, d)
			if !r.inWindow(d.Time) {
				continue
			}
			r.curEvents++
			r.curBytes += uint64(len(d.Raw))
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
			dec.decode(sd, d)
			if !r.inWindow(d.Time) {
				continue
			}
			r.curEvents++
			r.curBytes += uint64(len(d.Raw))
			if err := fn(d); err != nil {
				return err
			}
		}
		return nil
	})
}

// HandleDecodedInOrder is HandleDecoded in time order: the events of every
// stream and CPU are merged by Decoded.Time within the window of opts (see
// Reorder), which holds copies of at most opts.MaxItems events. Loss points
// (Options.OnLoss) are merged with them by their time. An event
// later than the window is delivered at once with Late set; Stats.Order
// counts them. With Follow, events held are also delivered once the window
// has passed in real time without earlier ones arriving (at the next poll),
// so output lags the recorder by at most the window and a poll interval;
// as the recorder commits every store.WriterOptions.FlushInterval, an
// event its reader handed over just after a commit can then come late
// unless the window is longer than that interval and the reader's flush
// deadline together.
// What is held is delivered when Run reaches the end of the recording (or
// a follower's context ends); not when Run stops on an error or, without
// Follow, on its context.
//
// An error of fn is a handler error of the batch being read when the event
// was delivered (under Continue, the rest of that batch is still merged).
// Batch handlers (HandleRingbuf, HandlePerfbuf, Replayer.Current) keep the
// recorded order: this merges decoded events only.
func (r *Replayer) HandleDecodedInOrder(opts OrderOptions, fn func(*Decoded) error) {
	if fn == nil {
		r.nilHandler("HandleDecodedInOrder", "")
		return
	}
	o := &decodedOrder{fn: fn, onLoss: r.opts.OnLoss}
	o.ro = NewReorder(opts, o.emit)
	r.order = o
	if o.onLoss != nil {
		// Loss points are merged with the events, so that what a replay
		// prints does not depend on when the window released them.
		r.opts.OnLoss = o.pushLoss
	}
	r.HandleDecoded(o.push)
}

// decodedOrder merges decoded events (and loss points) into time order for
// HandleDecodedInOrder.
type decodedOrder struct {
	ro     *Reorder[orderItem]
	fn     func(*Decoded) error
	onLoss func(store.LossPoint) // Options.OnLoss
	free   []*Decoded            // copies passed on, for reuse (their Raw's room)
	err    error                 // the first error of fn since the last batch ended
	// errStream and errSeq name the event of fn's last error.
	errStream string
	errSeq    uint64

	// Follow: the latest time pushed at the last idle check, and when
	// (the replay's clock) it was first seen.
	idleHigh int64
	idleAt   time.Time
}

// orderItem is an event or a loss point held in the window.
type orderItem struct {
	d  *Decoded // nil: the loss point lp
	lp store.LossPoint
}

// push copies an event into the window.
func (o *decodedOrder) push(d *Decoded) error {
	var c *Decoded
	if n := len(o.free); n > 0 {
		c, o.free = o.free[n-1], o.free[:n-1]
	} else {
		c = new(Decoded)
	}
	raw, fields := c.Raw[:0], c.Fields
	*c = *d // the decoded Event is new for each event: it is kept as it is
	c.Raw = append(raw, d.Raw...)
	c.Fields = nil
	if d.Fields != nil {
		// The stream's fields are reused by its next event: decode the
		// copy's own (its text and bytes then refer to the copy's Raw).
		c.Fields, _ = d.Layout.Decode(c.Raw, fields)
	}
	o.keep(o.ro.Push(c.Time.UnixNano(), orderItem{d: c}))
	if !d.Last {
		return nil
	}
	// Every event of the batch is in the window: the first error since
	// the last batch.
	err := o.err
	o.err = nil
	return err
}

// pushLoss puts a loss point into the window.
func (o *decodedOrder) pushLoss(lp store.LossPoint) {
	o.keep(o.ro.Push(lp.Time.UnixNano(), orderItem{lp: lp}))
}

func (o *decodedOrder) keep(err error) {
	if err != nil && o.err == nil {
		o.err = err
	}
}

func (o *decodedOrder) emit(it orderItem, late bool) error {
	if it.d == nil {
		o.onLoss(it.lp)
		return nil
	}
	d := it.d
	d.Late, d.Last = late, !o.ro.More()
	err := o.fn(d)
	if err != nil {
		o.errStream, o.errSeq = d.Stream.Name, d.Seq
	}
	d.Event, d.Err, d.Layout = nil, nil, nil
	o.free = append(o.free, d)
	return err
}

// handlerError makes an error of fn met outside a batch's handler (at the
// end, or between a follower's polls) a *HandlerError of its event's batch.
func (o *decodedOrder) handlerError(err error) error {
	if err == nil {
		return nil
	}
	return &HandlerError{Stream: o.errStream, Seq: o.errSeq, Err: err}
}

// idle returns, for a follower between polls, the time up to which the
// events held are due: the window has passed in real time since the
// latest event arrived. ok is false if nothing is held.
func (o *decodedOrder) idle(now time.Time) (due int64, ok bool) {
	high, ok := o.ro.Latest()
	if !ok || o.ro.Len() == 0 {
		return 0, false
	}
	if high != o.idleHigh || o.idleAt.IsZero() {
		o.idleHigh, o.idleAt = high, now
	}
	return high + int64(now.Sub(o.idleAt)) - int64(o.ro.Options().Window), true
}

// decode decodes an event of the stream sd and sets its time.
func (ds *decoders) decode(sd *streamDec, d *Decoded) {
	sd.decode(d)
	if d.Event != nil {
		d.Time = time.Unix(0, ds.r.meta.WallTime(d.Event.KernelTime(), d.Timestamp))
	} else {
		d.Time = d.Timestamp
	}
}

type decoders struct {
	r       *Replayer
	streams map[string]*streamDec
	d       Decoded
}

type streamDec struct {
	info store.StreamInfo
	dec  *StreamDecoder
	// fields is the stream's decoded fields, reused event after event.
	fields []btflayout.Value
}

func (sd *streamDec) decode(d *Decoded) {
	switch dec := sd.dec; {
	case dec.Builtin != nil:
		d.Event, d.Err = dec.Builtin.Decode(d.Raw)
		if d.Err != nil {
			d.Event = nil
		}
	case dec.Layout != nil:
		d.Layout = dec.Layout
		sd.fields, d.Err = dec.Layout.Decode(d.Raw, sd.fields)
		if d.Err == nil {
			d.Fields = sd.fields
		}
	default:
		d.Err = dec.Err
	}
}

// stream returns the decoder of a stream (DecoderOf, once per stream).
func (ds *decoders) stream(name string) *streamDec {
	if sd := ds.streams[name]; sd != nil {
		return sd
	}
	info, ok := ds.r.meta.Stream(name)
	if !ok {
		info = store.StreamInfo{Name: name}
	}
	sd := &streamDec{info: info, dec: DecoderOf(info)}
	ds.streams[name] = sd
	return sd
}
