package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/cilium/ebpf"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/urfave/cli/v2"
	"golang.org/x/sys/unix"

	"github.com/ebpfrec/ebpfrec/bpf"
	"github.com/ebpfrec/ebpfrec/bpf/tracers"
	_ "github.com/ebpfrec/ebpfrec/bpf/tracers/all"
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

Built-in tracers (ebpfrec tracers lists them): exec, exit, open, tcp, syscalls.
A user BPF object is recorded with --object, --attach and --ringbuf/--perfbuf:

  ebpfrec record --object prog.o --attach tracepoint:sched/sched_process_exec=handle_exec \
      --ringbuf events --duration 10s

Recording needs root (or CAP_BPF and CAP_PERFMON) and tracefs mounted.`,
		Flags: []cli.Flag{
			&cli.DurationFlag{Name: "duration", Aliases: []string{"d"}, Usage: "stop after this long (default: until SIGINT/SIGTERM or the command exits)"},
			&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "recording directory to create (default: ./ebpfrec-YYYYMMDD-HHMMSS)"},
			&cli.StringSliceFlag{Name: "tracer", Aliases: []string{"t"}, Usage: "built-in tracer to record, repeatable or comma-separated (default: exec,exit,open,tcp; none with --object)"},
			&cli.UintSliceFlag{Name: "pid", Usage: "record only these processes (repeatable); the recording ends when they have all exited"},
			&cli.StringSliceFlag{Name: "comm", Usage: "record only processes with this command name (repeatable)"},
			&cli.StringFlag{Name: "object", Usage: "record a compiled BPF object file (ELF)"},
			&cli.StringSliceFlag{Name: "attach", Usage: "with --object: KIND:TARGET=PROGRAM, KIND one of tracepoint (GROUP/NAME), raw_tracepoint, tp_btf, uprobe (/path:SYMBOL), uretprobe, kprobe, kretprobe (default: the programs' ELF sections)"},
			&cli.StringSliceFlag{Name: "ringbuf", Usage: "with --object: ring buffer map to record (default: every ring buffer and perf event array)"},
			&cli.StringSliceFlag{Name: "perfbuf", Usage: "with --object: perf event array map to record"},
			&cli.StringSliceFlag{Name: "set", Usage: "with --object: NAME=VALUE sets an integer global (volatile const) of the object before loading"},
			&cli.IntFlag{Name: "ringbuf-size", Usage: "size in bytes of built-in tracers' ring buffers (power of two, multiple of the page size; 0: tracer default)"},
			&cli.IntFlag{Name: "perf-buffer-size", Value: bpf.DefaultPerfbufConfig().PerCPUBufferSize, Usage: "size in bytes of each per-CPU perf buffer"},
			&cli.IntFlag{Name: "wakeup-every", Value: tracers.DefaultWakeupEvery, Usage: "built-in ring buffer tracers wake the reader every N events (latency stays bounded by --read-flush)"},
			&cli.DurationFlag{Name: "read-flush", Value: bpf.DefaultRingbufConfig().FlushInterval, Usage: "longest time an event waits in a buffer before it is read"},
			&cli.DurationFlag{Name: "flush-interval", Value: store.DefaultFlushInterval, Usage: "commit recorded batches at least this often (a crash loses at most this much)"},
			&cli.IntFlag{Name: "flush-bytes", Usage: "commit as soon as this many bytes are pending (0: store default)"},
			&cli.StringFlag{Name: "sync", Value: "interval", Usage: "when to fsync: interval, always or never"},
			&cli.Int64Flag{Name: "segment-size", Usage: "rotate to a new segment file at this size in bytes (0: store default, 64 MiB)"},
			&cli.DurationFlag{Name: "segment-age", Usage: "rotate to a new segment file at this age (0: store default, 1h)"},
			&cli.BoolFlag{Name: "compress", Usage: "compress batches with zstd"},
			&cli.IntFlag{Name: "keep-segments", Usage: "flight recorder: keep at most this many closed segments, deleting the oldest"},
			&cli.Int64Flag{Name: "keep-size", Usage: "flight recorder: keep at most this many bytes of closed segments, deleting the oldest"},
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
	names := splitList(c.StringSlice("tracer"))
	if len(names) == 0 && c.String("object") == "" {
		names = defaultTracers
	}
	var coll *record.Collection
	if obj := c.String("object"); obj != "" {
		cl, err := objectCollection(obj, c.StringSlice("attach"), splitList(c.StringSlice("ringbuf")), splitList(c.StringSlice("perfbuf")))
		if err != nil {
			return usageError("%v", err)
		}
		if err := setVariables(cl.Spec, c.StringSlice("set")); err != nil {
			return usageError("--object %s: %v", obj, err)
		}
		coll = &cl
	} else if len(c.StringSlice("attach")) > 0 || len(c.StringSlice("ringbuf")) > 0 || len(c.StringSlice("perfbuf")) > 0 || len(c.StringSlice("set")) > 0 {
		return usageError("--attach, --ringbuf, --perfbuf and --set go with --object")
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
	for _, s := range sum.Streams {
		if !s.Balanced() {
			return fmt.Errorf("stream %s: accounting mismatch: emitted %d != recorded %d + lost %d", s.Name, s.Emitted, s.Recorded, s.Lost())
		}
	}
	// Like time and strace: the recorded command's status is ours, so a CI
	// job wrapped in a recording still fails (128+N for a signal).
	if sum.CommandExit > 0 {
		return cli.Exit("", sum.CommandExit)
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
	for _, f := range []string{"ringbuf-size", "perf-buffer-size", "wakeup-every", "flush-bytes", "keep-segments"} {
		if c.Int(f) < 0 {
			return o, usageError("--%s must not be negative", f)
		}
	}
	if rs := c.Int("ringbuf-size"); rs != 0 && (rs&(rs-1) != 0 || rs%os.Getpagesize() != 0) {
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
			FlushBytes:      c.Int("flush-bytes"),
			Sync:            sync,
			MaxSegmentBytes: c.Int64("segment-size"),
			MaxSegmentAge:   c.Duration("segment-age"),
			KeepSegments:    c.Int("keep-segments"),
			KeepBytes:       c.Int64("keep-size"),
			Compress:        c.Bool("compress"),
		},
		Ringbuf:     bpf.RingbufConfig{FlushInterval: c.Duration("read-flush")},
		Perfbuf:     bpf.PerfbufConfig{PerCPUBufferSize: c.Int("perf-buffer-size"), FlushInterval: c.Duration("read-flush")},
		ToolVersion: version,
		CommandLine: os.Args,
		Comms:       splitList(c.StringSlice("comm")),
		Command:     c.Args().Slice(),
		WakeupEvery: uint32(c.Int("wakeup-every")),
		RingbufSize: uint32(c.Int("ringbuf-size")),
		Log:         slog.New(slog.NewTextHandler(c.App.ErrWriter, &slog.HandlerOptions{Level: slog.LevelWarn})),
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

// objectCollection loads a user's BPF object file and says what to record.
func objectCollection(path string, attach, ringbufs, perfbufs []string) (record.Collection, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return record.Collection{}, fmt.Errorf("--object: %w", err)
	}
	spec, err := ebpf.LoadCollectionSpecFromReader(bytes.NewReader(b))
	if err != nil {
		return record.Collection{}, fmt.Errorf("--object %s: not a BPF object file: %v", path, err)
	}
	sum := sha256.Sum256(b)
	obj := &store.ObjectInfo{Path: path, SHA256: hex.EncodeToString(sum[:])}
	name := strings.TrimSuffix(baseName(path), ".o")
	coll := record.Collection{Name: name, Spec: spec}
	for _, a := range attach {
		att, err := record.ParseAttachment(a)
		if err != nil {
			return coll, fmt.Errorf("--attach: %v", err)
		}
		coll.Attach = append(coll.Attach, att)
	}
	maps := append(append([]string(nil), ringbufs...), perfbufs...)
	if len(maps) == 0 {
		for n, m := range spec.Maps {
			if m.Type == ebpf.RingBuf || m.Type == ebpf.PerfEventArray {
				maps = append(maps, n)
			}
		}
		sort.Strings(maps)
		if len(maps) == 0 {
			return coll, fmt.Errorf("--object %s: no ring buffer or perf event array to record", path)
		}
	}
	for _, m := range maps {
		ms, ok := spec.Maps[m]
		if !ok {
			return coll, fmt.Errorf("--object %s: no map %q", path, m)
		}
		want := ebpf.RingBuf
		if contains(perfbufs, m) {
			want = ebpf.PerfEventArray
		}
		if (contains(ringbufs, m) || contains(perfbufs, m)) && ms.Type != want {
			return coll, fmt.Errorf("--object %s: map %q is a %s, not a %s", path, m, ms.Type, want)
		}
		coll.Streams = append(coll.Streams, record.Stream{Map: m, Name: m, Object: obj})
	}
	return coll, nil
}

// setVariables applies --set NAME=VALUE to the spec's global variables.
func setVariables(spec *ebpf.CollectionSpec, sets []string) error {
	for _, kv := range sets {
		name, val, ok := strings.Cut(kv, "=")
		if !ok {
			return fmt.Errorf("--set %q: want NAME=VALUE", kv)
		}
		v, ok := spec.Variables[name]
		if !ok {
			var names []string
			for n := range spec.Variables {
				if !strings.HasPrefix(n, ".") {
					names = append(names, n)
				}
			}
			sort.Strings(names)
			return fmt.Errorf("--set %s: no global variable %q (variables: %s)", kv, name, strings.Join(names, ", "))
		}
		n, err := strconv.ParseInt(val, 0, 64)
		if err != nil {
			u, uerr := strconv.ParseUint(val, 0, 64)
			if uerr != nil {
				return fmt.Errorf("--set %s: %q is not an integer", kv, val)
			}
			n = int64(u)
		}
		var setErr error
		switch v.Size() {
		case 1:
			setErr = v.Set(uint8(n))
		case 2:
			setErr = v.Set(uint16(n))
		case 4:
			setErr = v.Set(uint32(n))
		case 8:
			setErr = v.Set(uint64(n))
		default:
			setErr = fmt.Errorf("variable of %d bytes is not an integer", v.Size())
		}
		if setErr != nil {
			return fmt.Errorf("--set %s: %v", kv, setErr)
		}
	}
	return nil
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
			if s.Lost+s.Dropped > 0 {
				fmt.Fprintf(&b, " lost %d dropped %d", s.Lost, s.Dropped)
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
		fmt.Fprintln(w, "stopped at once: events still in the buffers were not read")
	}
	for _, sk := range s.Skipped {
		fmt.Fprintf(w, "not recorded: tracer %s\n", sk)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "stream\tkind\tevents\tbatches\tbytes\tkernel lost\tringbuf dropped\tuser dropped\temitted\t")
	lost := false
	for _, st := range s.Streams {
		emitted := "-"
		if st.HasEmitted {
			emitted = fmt.Sprint(st.Emitted)
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%s\t\n", st.Name, st.Kind, st.Recorded, st.Batches, st.Bytes,
			st.KernelLost, st.RingbufDropped, st.UserDropped, emitted)
		lost = lost || st.Lost() > 0
	}
	tw.Flush()
	if lost {
		fmt.Fprintln(w, "warning: events were lost; a larger --ringbuf-size/--perf-buffer-size or fewer selected processes may help")
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

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func baseName(p string) string {
	if i := strings.LastIndexByte(p, '/'); i >= 0 {
		return p[i+1:]
	}
	return p
}
