package bpf

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/perf"
)

// PerfbufStats holds perf buffer statistics.
//
// EventsReceived counts every sample read (those dropped in user space
// included), EventsDropped those whose handler returned an error or that
// could not be queued (PerfbufConfig.DropWhenBusy), EventsLost the samples
// the kernel reported lost because a per-CPU buffer was full, and
// BytesReceived the bytes of the received samples (as the kernel delivers
// them, see PerfbufReader). For a stream: emitted = EventsReceived +
// EventsLost.
type PerfbufStats struct {
	EventsReceived int64
	EventsDropped  int64
	EventsLost     int64
	BytesReceived  int64
}

// PerfbufReader reads events from a BPF perf event array (one buffer per
// CPU) and hands them, in batches, to a PerfEventHandler.
//
// Reading, batching, FlushInterval, Workers and ordering work as for
// RingbufReader, with one difference in order: the samples of one CPU keep
// the kernel's order, but samples of different CPUs are interleaved in no
// particular order (each wakeup reads the per-CPU buffers one after the
// other). Watermark is the kernel's wakeup watermark in bytes (0: wake on
// every sample); samples below it are read at the next deadline, so they
// too reach the handler within about FlushInterval.
//
// Lost samples: when a per-CPU buffer is full the kernel drops samples and
// later writes a record of how many; the reader adds it to EventsLost at
// once and reports it in PerfbufEvent.Lost of the next sample read from that
// CPU. Counts still pending when the reader stops are in EventsLost only.
// The kernel writes that record only when it next has room in the CPU's
// buffer for a sample, so a loss is reported with a delay, and a loss near
// the end of a stream (no later sample on that CPU) is never reported: where
// exact accounting matters, have the program count its failed
// bpf_perf_event_output calls as well.
//
// Raw is the sample as the kernel stores it: bpf_perf_event_output pads it
// to 8 bytes together with its 4-byte size header, so Raw can be up to 7
// bytes longer than what the program wrote (a 64-byte struct arrives as 68
// bytes). Decode by offset, not by length.
//
// The events slice and the bytes of Raw belong to the reader again once the
// handler returns (see PerfEventHandler): copy what you keep.
type PerfbufReader struct {
	rd      *perf.Reader
	mapName string
	handler PerfEventHandler
	cfg     PerfbufConfig
	log     *slog.Logger
	stats   readerStats
	life    *lifecycle
	ncpu    int
}

// perfArenaSize is the initial capacity of each batch's arena; arenas grow
// to what BatchSize events need and keep that size.
const perfArenaSize = 64 * 1024

// NewPerfbufReader creates a reader of perfMap (a
// BPF_MAP_TYPE_PERF_EVENT_ARRAY), with one buffer of PerCPUBufferSize bytes
// (rounded up to pages) per online CPU, which it stores in the map. mapName
// names the stream in logs and metrics. Zero or negative Workers, BatchSize,
// FlushInterval and PerCPUBufferSize take their defaults
// (DefaultPerfbufConfig); a FlushInterval below 1 ms is raised to 1 ms.
// Watermark must be smaller than the per-CPU buffer.
// log and st may be nil.
//
// The reader holds kernel resources from here on: call Start, which releases
// them when it returns, or Close.
func NewPerfbufReader(perfMap *ebpf.Map, mapName string, handler PerfEventHandler, cfg PerfbufConfig, log *slog.Logger, st *Metrics) (*PerfbufReader, error) {
	if perfMap == nil {
		return nil, fmt.Errorf("%w: perf buffer %q: nil map", ErrReaderConfig, mapName)
	}
	if perfMap.Type() != ebpf.PerfEventArray {
		return nil, fmt.Errorf("%w: perf buffer %q: map type is %s, not PerfEventArray", ErrReaderConfig, mapName, perfMap.Type())
	}
	if handler == nil {
		return nil, fmt.Errorf("%w: perf buffer %q: nil handler", ErrReaderConfig, mapName)
	}
	def := DefaultPerfbufConfig()
	cfg.PerCPUBufferSize = orDefault(cfg.PerCPUBufferSize, def.PerCPUBufferSize)
	cfg.Workers = orDefault(cfg.Workers, def.Workers)
	cfg.BatchSize = orDefault(cfg.BatchSize, def.BatchSize)
	cfg.FlushInterval = flushInterval(cfg.FlushInterval, def.FlushInterval)
	if cfg.Watermark < 0 {
		cfg.Watermark = 0
	}
	rd, err := perf.NewReaderWithOptions(perfMap, cfg.PerCPUBufferSize, perf.ReaderOptions{Watermark: cfg.Watermark})
	if err != nil {
		return nil, fmt.Errorf("%w: perf buffer %q: %w", ErrReaderConfig, mapName, err)
	}
	r := &PerfbufReader{rd: rd, mapName: mapName, handler: handler, cfg: cfg, log: discardLogger(log), ncpu: int(perfMap.MaxEntries())}
	r.stats.m = st.forReader(mapName, "perfbuf")
	r.life = newLifecycle(rd.Close, rd.Flush)
	return r, nil
}

// Stats returns the reader's counters. While Start runs, EventsReceived and
// BytesReceived lag by the batch being filled; once Start has returned they
// are final (as for RingbufReader.Stats).
func (r *PerfbufReader) Stats() PerfbufStats {
	return PerfbufStats{
		EventsReceived: r.stats.received.Load(),
		EventsDropped:  r.stats.dropped.Load(),
		EventsLost:     r.stats.lost.Load(),
		BytesReceived:  r.stats.bytes.Load(),
	}
}

// Close stops the reader and releases its kernel resources, as
// RingbufReader.Close does (and, like it, must not be called from the
// handler). Once the reader is released, the BPF program's
// bpf_perf_event_output calls fail (ENOENT) and nothing counts them.
func (r *PerfbufReader) Close() error {
	return r.life.close()
}

// Start reads the perf buffers until ctx is done or Close is called, then
// returns nil, with the guarantees of RingbufReader.Start: every sample
// written to a per-CPU buffer before the cancellation has been read (below
// the watermark too), handed to the handler or counted as dropped, every
// handler call has returned, lost-sample records read are in EventsLost, and
// the kernel reader is released. A second call returns
// ErrReaderAlreadyStarted, a call after Close ErrReaderClosed; read failures
// wrap ErrReaderRead.
func (r *PerfbufReader) Start(ctx context.Context) error {
	if err := r.life.begin(); err != nil {
		return fmt.Errorf("perf buffer %q: %w", r.mapName, err)
	}
	defer r.life.end()
	stop := context.AfterFunc(ctx, func() { _ = r.rd.Flush() })
	defer stop()

	d, b := newDispatcher(context.WithoutCancel(ctx), r.handler, r.cfg.Workers, r.cfg.BatchSize,
		perfArenaSize, r.cfg.DropWhenBusy, &r.stats, r.log, "perfbuf", r.mapName)
	err := r.read(ctx, d, b)
	d.close()
	return err
}

func (r *PerfbufReader) read(ctx context.Context, d *dispatcher[PerfbufEvent], b *batch[PerfbufEvent]) error {
	var (
		rec       perf.Record
		fi        = r.cfg.FlushInterval
		batchSize = r.cfg.BatchSize
		maxRec    int
		pending   = make([]uint64, max(r.ncpu, 1)) // lost counts not yet attached, per CPU
		deadline  = time.Now().Add(fi)
		clk       readClock
	)
	r.rd.SetDeadline(deadline)
	handOff := func(now time.Time) {
		b = d.dispatch(b)
		clk.expire()
		deadline = now.Add(fi)
		r.rd.SetDeadline(deadline)
	}
	for {
		off := len(b.arena)
		if cap(b.arena)-off < maxRec {
			b.arena = slices.Grow(b.arena, max(cap(b.arena), maxRec))
		}
		rec.RawSample = b.arena[off:off]
		err := r.rd.ReadInto(&rec)
		if err == nil {
			cpu := rec.CPU
			if cpu >= len(pending) {
				pending = append(pending, make([]uint64, cpu+1-len(pending))...)
			}
			if rec.LostSamples > 0 {
				pending[cpu] += rec.LostSamples
				r.stats.addLost(int64(rec.LostSamples))
				continue
			}
			n := len(rec.RawSample)
			if inArena(rec.RawSample, b.arena, off) {
				b.arena = b.arena[:off+n] // ReadInto copied into the arena
			} else {
				b.arena = append(b.arena, rec.RawSample...)
			}
			maxRec = max(maxRec, n)
			clk.read(rec.Remaining)
			b.events = append(b.events, PerfbufEvent{Raw: b.arena[off : off+n : off+n], CPU: cpu, Timestamp: clk.ts, Lost: pending[cpu]})
			pending[cpu] = 0
			if len(b.events) >= batchSize || clk.now.After(deadline) {
				handOff(clk.now)
			}
			continue
		}
		switch {
		case errors.Is(err, os.ErrDeadlineExceeded):
			handOff(time.Now())
		case errors.Is(err, perf.ErrFlushed):
			if ctx.Err() != nil || r.life.stopping() {
				d.dispatch(b)
				return nil
			}
			handOff(time.Now())
		case errors.Is(err, perf.ErrClosed):
			d.dispatch(b)
			return nil
		default:
			// An unknown record type included: cilium/ebpf does not skip
			// its body, so what follows cannot be trusted.
			d.dispatch(b)
			return fmt.Errorf("%w: perf buffer %q: %w", ErrReaderRead, r.mapName, err)
		}
	}
}

// CreatePerfEventArray creates a BPF_MAP_TYPE_PERF_EVENT_ARRAY map for use
// with NewPerfbufReader, with maxEntries slots (one per CPU; 0 means the
// number of possible CPUs, which is what a reader needs). name is the map's
// kernel name: characters the kernel refuses become '_' and it is cut to 15
// bytes. The caller owns the map and closes it.
func CreatePerfEventArray(name string, maxEntries uint32) (*ebpf.Map, error) {
	if maxEntries == 0 {
		n, err := ebpf.PossibleCPU()
		if err != nil {
			return nil, fmt.Errorf("perf event array %q: %w", name, err)
		}
		maxEntries = uint32(n)
	}
	m, err := ebpf.NewMap(&ebpf.MapSpec{
		Name:       kernelObjectName(name),
		Type:       ebpf.PerfEventArray,
		KeySize:    4,
		ValueSize:  4,
		MaxEntries: maxEntries,
	})
	if err != nil {
		return nil, fmt.Errorf("perf event array %q: %w", name, err)
	}
	return m, nil
}

// kernelObjectName makes name acceptable as a BPF object name: at most 15
// bytes of [A-Za-z0-9_.].
func kernelObjectName(name string) string {
	s := strings.Map(func(c rune) rune {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_', c == '.':
			return c
		}
		return '_'
	}, name)
	if len(s) > 15 {
		s = s[:15]
	}
	return s
}
