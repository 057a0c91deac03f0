package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/urfave/cli/v2"
	"golang.org/x/sys/unix"

	"github.com/ebpfrec/ebpfrec/bpf"
	"github.com/ebpfrec/ebpfrec/bpf/tracers"
	_ "github.com/ebpfrec/ebpfrec/bpf/tracers/all"
	"github.com/ebpfrec/ebpfrec/internal/lossterms"
	"github.com/ebpfrec/ebpfrec/record"
	"github.com/ebpfrec/ebpfrec/store"
)

var defaultTracers = []string{"exec", "exit", "open", "tcp"}

func init() {
	register(&cli.Command{
		Name:      "record",
		Usage:     "record the events of built-in tracers or of your own BPF object",
		ArgsUsage: "[-- COMMAND [ARGS...]]",
		Description: `Attaches tracers, reads their ring and perf buffers and stores every event
batch, with loss counters, in a recording directory (bbolt segment files).

Without --duration it records until SIGINT or SIGTERM (Ctrl-C); a second
SIGINT stops at once, still leaving a valid recording. With "-- COMMAND" it
starts COMMAND, records it and its descendants only, and stops when it exits.

Built-in tracers (ebpfrec tracers lists them): exec, exit, open, tcp, syscalls,
proc, and the user-space tracers gofunc, dns and bash.
A user BPF object is recorded with --object, --attach and --ringbuf/--perfbuf:

  ebpfrec record --object prog.o --attach tracepoint:sched/sched_process_exec=handle_exec \
      --ringbuf events=event --duration 10s

--ringbuf MAP=STRUCT names the C struct of the map's events (in the object's
BTF): its layout is stored with the stream, and replay and export show the
events' fields by name. --drops MAP=COUNTER names the per-CPU array counting
the map's failed reserve calls, so that a ring buffer's kernel loss is
counted ("not counted" without it).

--pid, --comm and "-- COMMAND" select processes in the kernel, for the
built-in tracers and for an object that opts into ebpfrec's process filter:
it includes ebpfrec_filter.h (bpf/include in ebpfrec's source) and starts
each program that emits events with "if (!ebpfrec_selected()) return 0;".
ebpfrec then fills the header's maps (ebpfrec_filter_config,
ebpfrec_pid_allow, ebpfrec_pid_block, ebpfrec_comm_allow). For an object
without them, a selection is refused, never ignored.

User-space tracers record what chosen programs do inside, through uprobes:
gofunc traces Go functions chosen by --func (globs; "main.(*Server).Handle*"
matches the methods of *Server named Handle...), at each entry and exit,
with the goroutine id and the latency; dns records getaddrinfo calls (host,
result, addresses) and bash the lines interactive bash reads. They
instrument the processes chosen by --exec PATH (the processes of that
executable file, running at the start or started later: the file is
instrumented at the start, and the kernel selects each process from its
exec of it), --pid, --comm, or "-- COMMAND" (its executable, before it
runs); processes started later whose comm --comm matches are instrumented
at their exec (the libraries dns probes at the start, as a new process
calls them at once; a Go program's functions from when its exec is
seen, so prefer --exec for short-lived Go programs):

  ebpfrec record --tracer gofunc --exec ./server --func 'main.handle*'
  ebpfrec record --tracer gofunc --func 'main.handle*' -- ./server -port 8080

Go executables built with -ldflags=-s -w (functions from their Go function
table) or -buildmode=pie are instrumented too. A process that cannot be
instrumented (not ELF, gone, no matching function, neither symbols nor a
Go function table) gets a line in the summary; the recording goes on
without it.

At the end a summary accounts for every event of every stream. A storage
failure (full disk, a segment or the directory removed) stops the recording
with exit status 1: what was committed stays readable, the summary counts
the rest as storage_lost, and the recorder's note in the recording
(recorder.note, shown by info) says how it ended.

` + lossterms.Legend + `

Recording needs root (or CAP_BPF and CAP_PERFMON) and tracefs mounted.`,
		Flags: []cli.Flag{
			&cli.DurationFlag{Name: "duration", Aliases: []string{"d"}, Usage: "stop this long after every tracer is attached (loading them takes a moment, during which the first attached already record; default: until SIGINT/SIGTERM or the command exits)"},
			&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "recording directory to create (default: ./ebpfrec-YYYYMMDD-HHMMSS)"},
			&cli.StringSliceFlag{Name: "tracer", Aliases: []string{"t"}, Usage: "built-in tracer to record, repeatable or comma-separated (default: exec,exit,open,tcp; none with --object)"},
			&cli.BoolFlag{Name: "no-proc", Usage: "leave out the proc stream (fork, exec, exit and rename of the recorded processes, and a snapshot of those alive at start), from which replay and export tell which process did what"},
			&cli.UintSliceFlag{Name: "pid", Usage: "record only these processes (repeatable); the recording ends when they have all exited (an --object must opt in: see above)"},
			&cli.StringSliceFlag{Name: "comm", Usage: "record only processes with this command name (repeatable; an --object must opt in: see above)"},
			&cli.StringSliceFlag{Name: "exec", Usage: "with a user-space tracer (gofunc, dns, bash): instrument the processes of this executable file, running or started later (repeatable); the kernel selects each from its exec of the file (unlike --pid, their exits do not end the recording)"},
			&cli.StringSliceFlag{Name: "func", Usage: "with --tracer gofunc: Go functions to trace, as globs of their symbol names (repeatable or comma-separated), e.g. 'main.(*Server).Handle*'"},
			&cli.StringFlag{Name: "object", Usage: "record a compiled BPF object file (ELF); --pid, --comm and -- COMMAND need it to include ebpfrec_filter.h"},
			&cli.StringSliceFlag{Name: "attach", Usage: "with --object: KIND:TARGET=PROGRAM, KIND one of tracepoint (GROUP/NAME), raw_tracepoint, tp_btf, uprobe (/path:SYMBOL), uretprobe, kprobe, kretprobe (default: the programs' ELF sections)"},
			&cli.StringSliceFlag{Name: "ringbuf", Usage: "with --object: ring buffer map to record, MAP or MAP=STRUCT (STRUCT: the C struct of its events, whose layout is stored so that replay and export show their fields; default: every ring buffer and perf event array)"},
			&cli.StringSliceFlag{Name: "perfbuf", Usage: "with --object: perf event array map to record, MAP or MAP=STRUCT"},
			&cli.StringSliceFlag{Name: "drops", Usage: "with --object: MAP=COUNTER, the per-CPU array whose key 0 counts the map's failed reserve/output calls (a ring buffer's kernel loss is then counted, not unknown)"},
			&cli.StringSliceFlag{Name: "emitted", Usage: "with --object: MAP=COUNTER, the per-CPU array whose key 0 counts the map's events emitted (reserve/output attempts)"},
			&cli.StringSliceFlag{Name: "set", Usage: "with --object: NAME=VALUE sets an integer global (volatile const) of the object before loading"},
			sizeFlag("ringbuf-size", 0, "size of built-in tracers' ring buffers (power of two, multiple of the page size; 0: tracer default)"),
			sizeFlag("perf-buffer-size", int64(bpf.DefaultPerfbufConfig().PerCPUBufferSize), "size of each per-CPU perf buffer"),
			&cli.IntFlag{Name: "wakeup-every", Value: tracers.DefaultWakeupEvery, Usage: "built-in ring buffer tracers wake the reader every N events (latency stays bounded by --read-flush)"},
			&cli.DurationFlag{Name: "read-flush", Value: bpf.DefaultRingbufConfig().FlushInterval, Usage: "longest time an event waits in a buffer before it is read"},
			&cli.DurationFlag{Name: "flush-interval", Value: store.DefaultFlushInterval, Usage: "commit recorded batches at least this often (a crash loses at most this much)"},
			sizeFlag("flush-bytes", 0, "commit as soon as this many bytes are pending (0: store default, 4MiB); the Go heap is held near 16MiB + 4 times this (GOMEMLIMIT, if set, instead)"),
			&cli.StringFlag{Name: "sync", Value: "interval", Usage: "when to fsync: interval, always or never"},
			sizeFlag("segment-size", 0, "rotate to a new segment file at this size (0: store default, 64MiB)"),
			&cli.DurationFlag{Name: "segment-age", Usage: "rotate to a new segment file at this age (0: store default, 1h)"},
			&cli.BoolFlag{Name: "compress", Value: true, Usage: "compress batches with zstd (--compress=false stores them as they are)"},
			&cli.IntFlag{Name: "keep-segments", Usage: "flight recorder: keep at most this many segments on disk, the one being written included (2 or more), deleting the oldest at each rotation"},
			sizeFlag("keep-size", 0, "flight recorder: keep the segments on disk within this size, the one being written counted at --segment-size (2 segments or more), deleting the oldest at each rotation"),
			&cli.StringFlag{Name: "metrics-addr", Usage: "serve Prometheus metrics at [HOST]:PORT (loopback when HOST is empty)"},
			&cli.StringFlag{Name: "fingerprints", Usage: "write a digest of every batch, as the live handler received it, to this file (to check a replay against the live run)"},
			&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "no progress line and no summary"},
		},
		Action: recordAction,
	})
}

func recordAction(c *cli.Context) error {
	opts, err := recordOptions(c)
	if err != nil {
		return err
	}
	limitMemory(opts.Store.FlushBytes)
	names := splitList(c.StringSlice("tracer"))
	if len(names) == 0 && c.String("object") == "" {
		names = defaultTracers
	}
	if err := checkUserTracerFlags(c, names); err != nil {
		return err
	}
	var coll *record.Collection
	if obj := c.String("object"); obj != "" {
		cl, err := record.ObjectCollection(obj, record.ObjectOptions{Attach: c.StringSlice("attach"),
			Ringbufs: splitList(c.StringSlice("ringbuf")), Perfbufs: splitList(c.StringSlice("perfbuf")), Set: c.StringSlice("set"),
			Drops: splitList(c.StringSlice("drops")), Emitted: splitList(c.StringSlice("emitted"))})
		if err != nil {
			return usageError("--object: %v", err)
		}
		coll = &cl
	} else if len(c.StringSlice("attach")) > 0 || len(c.StringSlice("ringbuf")) > 0 || len(c.StringSlice("perfbuf")) > 0 || len(c.StringSlice("set")) > 0 ||
		len(c.StringSlice("drops")) > 0 || len(c.StringSlice("emitted")) > 0 {
		return usageError("--attach, --ringbuf, --perfbuf, --drops, --emitted and --set go with --object")
	}
	if addr := c.String("metrics-addr"); addr != "" {
		stop, err := serveMetrics(addr, &opts)
		if err != nil {
			return err
		}
		defer stop()
	}
	if fp := c.String("fingerprints"); fp != "" {
		f, err := os.OpenFile(fp, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
		if err != nil {
			return usageError("--fingerprints: %v", err)
		}
		defer f.Close()
		opts.Fingerprints = f
	}
	rec, err := record.New(opts)
	if err != nil {
		return usageError("%v", err)
	}
	for _, n := range names {
		if err := rec.AddBuiltin(n); err != nil {
			return usageError("%v", err)
		}
	}
	if coll != nil {
		if err := rec.AddCollection(*coll); err != nil {
			return usageError("%v", err)
		}
	}
	if !canLoadBPF() {
		return cli.Exit("ebpfrec: record needs root (or the capabilities CAP_BPF and CAP_PERFMON) to load BPF programs: run it with sudo", exitFailure)
	}

	ctx, cancel := context.WithCancel(c.Context)
	defer cancel()
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)
	go func() {
		n := 0
		for range sigs {
			n++
			if n == 1 {
				if !c.Bool("quiet") {
					fmt.Fprintln(c.App.ErrWriter, "\nebpfrec: stopping (flushing buffers; press Ctrl-C again to stop at once)")
				}
				cancel()
			} else {
				rec.Abort()
			}
		}
	}()

	sum, err := rec.Run(ctx)
	if sum != nil && !c.Bool("quiet") {
		printRecordSummary(c.App.Writer, sum)
	}
	if err != nil {
		return err
	}
	// Like time and strace: the recorded command's status is ours, so a CI
	// job wrapped in a recording still fails (128+N for a signal).
	if sum.CommandExit > 0 {
		return cli.Exit("", sum.CommandExit)
	}
	return nil
}

// checkUserTracerFlags refuses --func without gofunc and --exec without a
// user-space tracer, which would otherwise be ignored.
func checkUserTracerFlags(c *cli.Context, names []string) error {
	user, funcs := false, false
	for _, n := range names {
		t, err := tracers.New(n, tracers.Options{})
		if err != nil {
			continue // AddBuiltin says so
		}
		if tracers.InstrumentsProcesses(t) {
			user = true
		}
		if _, ok := t.(interface{ SetFuncs([]string) }); ok {
			funcs = true
		}
	}
	if len(c.StringSlice("func")) > 0 && !funcs {
		return usageError("--func goes with --tracer gofunc")
	}
	if len(c.StringSlice("exec")) > 0 && !user {
		return usageError("--exec goes with a user-space tracer (--tracer gofunc, dns or bash)")
	}
	return nil
}

func recordOptions(c *cli.Context) (record.Options, error) {
	var o record.Options
	sync, err := store.ParseSyncPolicy(c.String("sync"))
	if err != nil {
		return o, usageError("--sync: %v", err)
	}
	out := c.String("output")
	if out == "" {
		out = "ebpfrec-" + time.Now().Format("20060102-150405")
	}
	if _, err := os.Stat(out); err == nil {
		if ents, _ := os.ReadDir(out); len(ents) > 0 {
			return o, usageError("--output %s: exists and is not empty (choose a new directory)", out)
		}
	}
	for _, f := range []string{"wakeup-every", "keep-segments"} {
		if c.Int(f) < 0 {
			return o, usageError("--%s must not be negative", f)
		}
	}
	for _, f := range []string{"ringbuf-size", "perf-buffer-size", "flush-bytes"} {
		if sizeOf(c, f) > math.MaxInt32 {
			return o, usageError("--%s %d: too large (at most 2GiB)", f, sizeOf(c, f))
		}
	}
	if rs := int(sizeOf(c, "ringbuf-size")); rs != 0 && (rs&(rs-1) != 0 || rs%os.Getpagesize() != 0) {
		return o, usageError("--ringbuf-size %d: must be a power of two and a multiple of the page size (%d)", rs, os.Getpagesize())
	}
	if c.Duration("duration") < 0 || c.Duration("flush-interval") < 0 || c.Duration("read-flush") < 0 {
		return o, usageError("durations must not be negative")
	}
	o = record.Options{
		Dir:      out,
		Duration: c.Duration("duration"),
		Store: store.WriterOptions{
			FlushInterval:   c.Duration("flush-interval"),
			FlushBytes:      int(sizeOf(c, "flush-bytes")),
			Sync:            sync,
			MaxSegmentBytes: sizeOf(c, "segment-size"),
			MaxSegmentAge:   c.Duration("segment-age"),
			KeepSegments:    c.Int("keep-segments"),
			KeepBytes:       sizeOf(c, "keep-size"),
			Uncompressed:    !c.Bool("compress"),
		},
		Ringbuf:     bpf.RingbufConfig{FlushInterval: c.Duration("read-flush")},
		Perfbuf:     bpf.PerfbufConfig{PerCPUBufferSize: int(sizeOf(c, "perf-buffer-size")), FlushInterval: c.Duration("read-flush")},
		ToolVersion: version,
		CommandLine: os.Args,
		Comms:       splitList(c.StringSlice("comm")),
		Exec:        c.StringSlice("exec"),
		Funcs:       splitList(c.StringSlice("func")),
		Command:     c.Args().Slice(),
		WakeupEvery: uint32(c.Int("wakeup-every")),
		NoProc:      c.Bool("no-proc"),
		RingbufSize: uint32(sizeOf(c, "ringbuf-size")),
		Log:         slog.New(slog.NewTextHandler(c.App.ErrWriter, &slog.HandlerOptions{Level: slog.LevelWarn})),
	}
	if err := o.Store.Check(); err != nil {
		msg := strings.TrimPrefix(err.Error(), "store: ")
		msg = strings.NewReplacer("KeepSegments", "--keep-segments", "KeepBytes", "--keep-size", "MaxSegmentBytes", "--segment-size").Replace(msg)
		return o, usageError("%s", msg)
	}
	for _, p := range c.UintSlice("pid") {
		o.PIDs = append(o.PIDs, uint32(p))
	}
	if len(o.Command) > 0 {
		o.CommandStdin, o.CommandStdout, o.CommandStderr = os.Stdin, os.Stdout, os.Stderr
	}
	if !c.Bool("quiet") && isTerminal(os.Stderr) {
		o.Progress = progressLine(c.App.ErrWriter)
	}
	return o, nil
}

func serveMetrics(addr string, opts *record.Options) (func(), error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		// A bare port.
		host, port = "", strings.TrimPrefix(addr, ":")
	}
	if host == "" {
		host = "127.0.0.1"
	}
	reg := prometheus.NewRegistry()
	m, err := bpf.NewMetrics(reg)
	if err != nil {
		return nil, err
	}
	opts.Metrics = m
	ln, err := net.Listen("tcp", net.JoinHostPort(host, port))
	if err != nil {
		return nil, usageError("--metrics-addr %s: %v", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	return func() { _ = srv.Close() }, nil
}

// progressLine renders a live one-line progress report on a terminal.
func progressLine(w io.Writer) func(record.Progress) {
	return func(p record.Progress) {
		var b strings.Builder
		fmt.Fprintf(&b, "\r\033[K%s  %.1f MB", p.Elapsed.Truncate(time.Second), float64(p.DiskBytes)/1e6)
		for _, s := range p.Streams {
			fmt.Fprintf(&b, "  %s %d (%.0f/s)", s.Name, s.Events, s.EventsPerSec)
			for _, t := range []struct {
				name string
				n    uint64
			}{{lossterms.KernelLostPerfbuf, s.KernelLostPerfbuf}, {lossterms.KernelLostRingbuf, s.KernelLostRingbuf}, {lossterms.EbpfrecDropped, s.EbpfrecDropped}, {lossterms.KernelMissed, s.KernelMissed}} {
				if t.n > 0 {
					fmt.Fprintf(&b, " %s %d", t.name, t.n)
				}
			}
		}
		if p.Final {
			b.WriteString("\r\033[K")
		}
		io.WriteString(w, b.String())
	}
}

func printRecordSummary(w io.Writer, s *record.Summary) {
	fmt.Fprintf(w, "recorded %d events in %s into %s (%d segment(s), %.2f MB)\n",
		s.Events(), s.Duration.Truncate(time.Millisecond), s.Dir, s.Segments, float64(s.DiskBytes)/1e6)
	if s.CommandExit >= 0 {
		fmt.Fprintf(w, "command exited with status %d\n", s.CommandExit)
	}
	if s.Aborted {
		fmt.Fprintln(w, "stopped at once: the events still in the buffers were counted as "+lossterms.EbpfrecDropped+", not recorded")
	}
	for _, sk := range s.Skipped {
		fmt.Fprintf(w, "not recorded: tracer %s\n", sk)
	}
	for _, in := range s.Instrumented {
		switch {
		case in.Err == nil && in.PID == 0:
			fmt.Fprintf(w, "instrumented: %s: %s (for its processes, those started later too)\n", in.Tracer, in.Exe)
		case in.Err != nil && in.PID == 0 && in.Exe != "":
			fmt.Fprintf(w, "not instrumented: %s: %s: %v\n", in.Tracer, in.Exe, in.Err)
		case in.Err != nil && in.PID != 0:
			fmt.Fprintf(w, "not instrumented: %s: pid %d (%s): %v\n", in.Tracer, in.PID, in.Exe, in.Err)
		case in.Err != nil:
			fmt.Fprintf(w, "not instrumented: %s: %v\n", in.Tracer, in.Err)
		default:
			fmt.Fprintf(w, "instrumented: %s: pid %d (%s)\n", in.Tracer, in.PID, in.Exe)
		}
	}
	if d := s.Deleted; d != nil {
		fmt.Fprintf(w, "retention deleted %d of these events (%d batch(es) in %d segment(s), up to %s)\n",
			d.Events, d.Batches, d.Segments, d.To.UTC().Format(time.RFC3339Nano))
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "stream\tkind\trecorded\tbatches\tbytes\t%s\t%s\t%s\t%s\temitted\t%s\t\n",
		lossterms.KernelLostPerfbuf, lossterms.KernelLostRingbuf, lossterms.EbpfrecDropped, lossterms.StorageLost, lossterms.KernelMissed)
	var kernelLost, dropped, missed bool
	var storageLost uint64
	for _, st := range s.Streams {
		emitted := "-"
		if st.HasEmitted {
			emitted = fmt.Sprint(st.Emitted)
		}
		ringLost := fmt.Sprint(st.KernelLostRingbuf)
		if st.KernelLossUncounted {
			ringLost = lossterms.NotCounted
		}
		kmissed := fmt.Sprint(st.KernelMissed)
		if !st.KernelMissedCounted {
			kmissed = lossterms.NotCounted
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%s\t%d\t%d\t%s\t%s\t\n", st.Name, st.Kind, st.Recorded, st.Batches, st.Bytes,
			st.KernelLostPerfbuf, ringLost, st.EbpfrecDropped, st.StorageLost, emitted, kmissed)
		kernelLost = kernelLost || st.KernelLostPerfbuf+st.KernelLostRingbuf > 0
		missed = missed || st.KernelMissed > 0
		dropped = dropped || st.EbpfrecDropped > 0
		storageLost += st.StorageLost
	}
	tw.Flush()
	if s.StorageErr != nil {
		fmt.Fprintf(w, "error: a storage failure stopped the recording: %v\n", s.StorageErr)
		fmt.Fprintf(w, "error: %d events read from the kernel were not stored (%s); the recording holds what is counted as recorded\n", storageLost, lossterms.StorageLost)
	}
	if kernelLost {
		fmt.Fprintln(w, "warning: events were lost in the kernel (buffers full); a larger --ringbuf-size/--perf-buffer-size or fewer selected processes may help")
	}
	if dropped {
		fmt.Fprintln(w, "warning: ebpfrec dropped events it had read (see the log above for why)")
	}
	if missed {
		fmt.Fprintln(w, "warning: the kernel skipped runs of the programs (another BPF program was running on the CPU): their events, if any, were never emitted ("+lossterms.KernelMissed+")")
	}
}

// canLoadBPF reports whether this process may load tracing BPF programs:
// it is root, or has CAP_BPF and CAP_PERFMON in its effective set.
func canLoadBPF() bool {
	if os.Geteuid() == 0 {
		return true
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return true // cannot tell: let the kernel say
	}
	has := func(c uint) bool { return data[c/32].Effective&(1<<(c%32)) != 0 }
	return has(unix.CAP_BPF) && has(unix.CAP_PERFMON)
}

func isTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

func splitList(in []string) []string {
	var out []string
	for _, s := range in {
		for _, p := range strings.Split(s, ",") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
	}
	return out
}
