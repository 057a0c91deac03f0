package tracers

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/ebpfrec/ebpfrec/bpf"
)

// Run implements bpf.Tracer's Run for a loaded and attached built-in tracer:
// it reads every stream with bpf.RingbufReader / bpf.PerfbufReader (the same
// readers the recorder uses, with the tracer's drop counter for ring
// buffers), decodes each event and sends it to out as a bpf.Span, one slice
// per read batch, until ctx ends.
func Run(ctx context.Context, t Builtin, ectx *bpf.EventContext, out *bpf.Queue[[]bpf.Span]) {
	rcfg, pcfg := bpf.DefaultRingbufConfig(), bpf.DefaultPerfbufConfig()
	var metrics *bpf.Metrics
	if ectx != nil {
		rcfg, pcfg, metrics = ectx.Ringbuf, ectx.Perfbuf, ectx.Metrics
	}
	var wg sync.WaitGroup
	for _, s := range t.Streams() {
		m := t.Map(s.Map)
		if m == nil {
			slog.Error("tracers: stream map not loaded", "tracer", t.Name(), "map", s.Map)
			continue
		}
		var start func(context.Context) error
		switch s.Kind {
		case Ringbuf:
			cfg := rcfg
			cfg.DropCounter = t.Map(s.DropCounter)
			rd, err := bpf.NewRingbufReader(m, s.Name, func(ctx context.Context, evs []bpf.RingbufEvent) error {
				spans := make([]bpf.Span, 0, len(evs))
				for _, e := range evs {
					spans = appendSpan(spans, t, s, e.Raw, e.Timestamp)
				}
				return send(ctx, out, spans)
			}, cfg, slog.Default(), metrics)
			if err != nil {
				slog.Error("tracers: stream reader", "tracer", t.Name(), "stream", s.Name, "error", err)
				continue
			}
			start = rd.Start
		case Perfbuf:
			rd, err := bpf.NewPerfbufReader(m, s.Name, func(ctx context.Context, evs []bpf.PerfbufEvent) error {
				spans := make([]bpf.Span, 0, len(evs))
				for _, e := range evs {
					spans = appendSpan(spans, t, s, e.Raw, e.Timestamp)
				}
				return send(ctx, out, spans)
			}, pcfg, slog.Default(), metrics)
			if err != nil {
				slog.Error("tracers: stream reader", "tracer", t.Name(), "stream", s.Name, "error", err)
				continue
			}
			start = rd.Start
		}
		wg.Go(func() {
			if err := start(ctx); err != nil {
				slog.Error("tracers: stream reader failed", "tracer", t.Name(), "stream", s.Name, "error", err)
			}
		})
	}
	wg.Wait()
}

// appendSpan decodes raw (which the reader reuses: the span keeps only
// decoded values) and appends its span; undecodable events are logged.
func appendSpan(spans []bpf.Span, t Builtin, s Stream, raw []byte, ts time.Time) []bpf.Span {
	ev, err := t.Decode(s.Name, raw)
	if err != nil {
		slog.Warn("tracers: undecodable event", "tracer", t.Name(), "stream", s.Name, "error", err)
		return spans
	}
	return append(spans, bpf.Span{
		Tracer:    t.Name(),
		Stream:    s.Name,
		Timestamp: ts,
		PID:       ev.PID(),
		Comm:      ev.Comm(),
		Fields:    FieldValues(ev),
	})
}

// send hands a batch of spans to out; a batch that cannot be delivered
// (ctx ended, queue closed) counts as dropped by the reader.
func send(ctx context.Context, out *bpf.Queue[[]bpf.Span], spans []bpf.Span) error {
	if len(spans) == 0 {
		return nil
	}
	if !out.Send(ctx, spans) {
		return context.Canceled
	}
	return nil
}
