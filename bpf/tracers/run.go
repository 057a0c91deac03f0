package tracers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/cilium/ebpf/perf"
	"github.com/cilium/ebpf/ringbuf"

	"github.com/ebpfrec/ebpfrec/bpf"
)

// Run implements bpf.Tracer's Run for a loaded and attached built-in tracer:
// it reads every stream with cilium/ebpf's readers, decodes each event and
// sends it to out as a bpf.Span, one slice per read batch, until ctx ends.
// (The recorder does not use it: it records raw batches with bpf's readers.)
func Run(ctx context.Context, t Builtin, ectx *bpf.EventContext, out *bpf.Queue[[]bpf.Span]) {
	flush := 100 * time.Millisecond
	perCPU := 256 * 1024
	if ectx != nil {
		if ectx.Ringbuf.FlushInterval > 0 {
			flush = ectx.Ringbuf.FlushInterval
		}
		if ectx.Perfbuf.PerCPUBufferSize > 0 {
			perCPU = ectx.Perfbuf.PerCPUBufferSize
		}
	}
	var wg sync.WaitGroup
	for _, s := range t.Streams() {
		m := t.Map(s.Map)
		if m == nil {
			slog.Error("tracers: stream map not loaded", "tracer", t.Name(), "map", s.Map)
			continue
		}
		s := s
		wg.Add(1)
		go func() {
			defer wg.Done()
			var err error
			switch s.Kind {
			case Ringbuf:
				err = runRingbuf(ctx, t, s, flush, out)
			case Perfbuf:
				err = runPerfbuf(ctx, t, s, flush, perCPU, out)
			}
			if err != nil && ctx.Err() == nil {
				slog.Error("tracers: stream reader failed", "tracer", t.Name(), "stream", s.Name, "error", err)
			}
		}()
	}
	wg.Wait()
}

func span(t Builtin, s Stream, ev Event) bpf.Span {
	return bpf.Span{
		Tracer:    t.Name(),
		Stream:    s.Name,
		Timestamp: time.Now(),
		PID:       ev.PID(),
		Comm:      ev.Comm(),
		Fields:    FieldValues(ev),
	}
}

func runRingbuf(ctx context.Context, t Builtin, s Stream, flush time.Duration, out *bpf.Queue[[]bpf.Span]) error {
	rd, err := ringbuf.NewReader(t.Map(s.Map))
	if err != nil {
		return fmt.Errorf("ringbuf reader for %s: %w", s.Map, err)
	}
	stop := context.AfterFunc(ctx, func() { rd.Close() })
	defer stop()
	defer rd.Close()
	var rec ringbuf.Record
	var batch []bpf.Span
	for {
		rd.SetDeadline(time.Now().Add(flush))
		err := rd.ReadInto(&rec)
		switch {
		case err == nil:
			ev, derr := t.Decode(s.Name, rec.RawSample)
			if derr != nil {
				slog.Warn("tracers: undecodable event", "tracer", t.Name(), "stream", s.Name, "error", derr)
				continue
			}
			batch = append(batch, span(t, s, ev))
			if len(batch) < 256 {
				continue
			}
		case errors.Is(err, os.ErrDeadlineExceeded):
		case errors.Is(err, ringbuf.ErrClosed):
			return nil
		default:
			return err
		}
		if len(batch) > 0 {
			if !out.Send(ctx, batch) {
				return nil
			}
			batch = nil
		}
	}
}

func runPerfbuf(ctx context.Context, t Builtin, s Stream, flush time.Duration, perCPU int, out *bpf.Queue[[]bpf.Span]) error {
	rd, err := perf.NewReader(t.Map(s.Map), perCPU)
	if err != nil {
		return fmt.Errorf("perf reader for %s: %w", s.Map, err)
	}
	stop := context.AfterFunc(ctx, func() { rd.Close() })
	defer stop()
	defer rd.Close()
	var rec perf.Record
	var batch []bpf.Span
	for {
		rd.SetDeadline(time.Now().Add(flush))
		err := rd.ReadInto(&rec)
		switch {
		case err == nil:
			if rec.LostSamples > 0 {
				continue
			}
			ev, derr := t.Decode(s.Name, rec.RawSample)
			if derr != nil {
				slog.Warn("tracers: undecodable event", "tracer", t.Name(), "stream", s.Name, "error", derr)
				continue
			}
			batch = append(batch, span(t, s, ev))
			if len(batch) < 256 {
				continue
			}
		case errors.Is(err, os.ErrDeadlineExceeded):
		case errors.Is(err, perf.ErrClosed):
			return nil
		default:
			return err
		}
		if len(batch) > 0 {
			if !out.Send(ctx, batch) {
				return nil
			}
			batch = nil
		}
	}
}
