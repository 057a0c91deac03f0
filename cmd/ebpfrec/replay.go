package main

import (
	"bufio"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/urfave/cli/v2"

	_ "github.com/ebpfrec/ebpfrec/bpf/tracers/all" // the decoders of every built-in tracer
	"github.com/ebpfrec/ebpfrec/replay"
	"github.com/ebpfrec/ebpfrec/store"
)

func init() {
	register(&cli.Command{
		Name:      "replay",
		Usage:     "print every recorded event, decoded by its tracer, one line each (like perf script)",
		ArgsUsage: "DIR",
		Description: "Replays the recording in DIR through the built-in tracers' decoders, in recorded order,\n" +
			"and prints one line per event: wall-clock time (UTC, from the event's kernel time), CPU\n" +
			"([---] where the buffer does not say), pid, comm, tracer and the event's fields. Events of\n" +
			"streams without a built-in decoder print as their length and hex bytes. A LOSS line says\n" +
			"when a stream's loss counters moved. --format json prints JSON lines instead, with the\n" +
			"fields type, time, cpu (null if unknown), stream, tracer, seq and the event's own fields.\n" +
			"\n" +
			"--from and --to take RFC 3339 times or offsets from the recording's start (+5s, +1m30s).\n" +
			"--speed 1 replays at the recorded pace, 2 twice as fast; 0 (default) as fast as possible.\n" +
			"--follow keeps printing what a running recorder commits, until interrupted.\n" +
			"Damaged parts of the recording are reported on stderr and skipped (exit status 1 at the\n" +
			"end), or stop the replay with --stop-on-damage.",
		Flags: []cli.Flag{
			&cli.StringSliceFlag{Name: "stream", Usage: "replay only this stream (repeatable, or comma-separated)"},
			&cli.StringFlag{Name: "from", Usage: "start at this time: RFC 3339, or +DURATION from the recording's start"},
			&cli.StringFlag{Name: "to", Usage: "end before this time: RFC 3339, or +DURATION from the recording's start"},
			&cli.Float64Flag{Name: "speed", Usage: "pace: 0 as fast as possible, 1 the recorded pace, 2 twice as fast", Value: 0},
			&cli.StringFlag{Name: "format", Usage: "output format: text or json", Value: "text"},
			&cli.BoolFlag{Name: "follow", Aliases: []string{"f"}, Usage: "keep printing new events of a recording still being written, until interrupted"},
			&cli.BoolFlag{Name: "stop-on-damage", Usage: "stop at the first damaged batch (default: report it on stderr and go on)"},
		},
		Action: replayAction,
	})
}

func replayAction(c *cli.Context) error {
	if c.NArg() != 1 {
		return usageError("replay: want one recording directory, got %d arguments (see --help)", c.NArg())
	}
	dir := c.Args().First()
	format := c.String("format")
	if format != "text" && format != "json" {
		return usageError("replay: --format %q: want text or json", format)
	}
	speed := c.Float64("speed")
	if speed < 0 {
		return usageError("replay: --speed %v: want 0 (as fast as possible) or more", speed)
	}
	var streams []string
	for _, s := range c.StringSlice("stream") {
		for _, n := range strings.Split(s, ",") {
			if n = strings.TrimSpace(n); n != "" {
				streams = append(streams, n)
			}
		}
	}

	ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
	defer stop()
	// A closed pipe (| head) makes writes fail with EPIPE instead of
	// killing the process, so that it ends quietly.
	signal.Notify(make(chan os.Signal, 1), syscall.SIGPIPE)

	follow := c.Bool("follow")
	if follow {
		// replay --follow may start before the recorder: wait for its
		// first segment.
		for {
			if segs, _ := filepath.Glob(filepath.Join(dir, "*.seg")); len(segs) > 0 {
				break
			}
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(replay.DefaultPollInterval):
			}
		}
	}
	opts := replay.Options{Speed: speed, Streams: streams, Follow: follow}
	if c.Bool("stop-on-damage") {
		opts.OnDamage = replay.Stop
	} else {
		opts.OnDamage = replay.Continue
	}
	// The recording's start, for offsets, and its streams, to check
	// --stream.
	if c.String("from") != "" || c.String("to") != "" || len(streams) > 0 {
		meta, start, err := recordingStart(ctx, dir, follow)
		if err != nil {
			return err
		}
		if opts.From, err = parseReplayTime(c.String("from"), start); err != nil {
			return usageError("replay: --from: %v", err)
		}
		if opts.To, err = parseReplayTime(c.String("to"), start); err != nil {
			return usageError("replay: --to: %v", err)
		}
		if !opts.From.IsZero() && !opts.To.IsZero() && !opts.From.Before(opts.To) {
			return usageError("replay: --from %s is not before --to %s", c.String("from"), c.String("to"))
		}
		if !follow {
			for _, s := range streams {
				if _, ok := meta.Stream(s); !ok {
					return usageError("replay: no stream %q in the recording (it has: %s)", s, strings.Join(streamNames(meta), ", "))
				}
			}
		}
	}

	out := c.App.Writer
	if out == nil {
		out = os.Stdout
	}
	errOut := c.App.ErrWriter
	if errOut == nil {
		errOut = os.Stderr
	}
	p := &printer{w: bufio.NewWriterSize(out, 256<<10), json: format == "json",
		flushEach: follow || speed > 0}
	opts.OnLoss = p.loss
	var damaged int
	opts.Report = func(err error) {
		damaged++
		p.w.Flush()
		fmt.Fprintf(errOut, "ebpfrec: %v (skipped)\n", err)
	}
	r, err := replay.Open(dir, opts)
	if err != nil {
		return err
	}
	p.r = r
	r.HandleDecoded(p.event)
	_, err = r.Run(ctx)
	ferr := p.w.Flush()
	if isEPIPE(err) || isEPIPE(ferr) {
		return nil
	}
	if err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	if ferr != nil {
		return ferr
	}
	if damaged > 0 {
		return cli.Exit(fmt.Sprintf("ebpfrec: replay: %d damaged part(s) of the recording skipped", damaged), exitFailure)
	}
	return nil
}

func isEPIPE(err error) bool {
	return err != nil && (errors.Is(err, syscall.EPIPE) || errors.Is(err, io.ErrClosedPipe))
}

// recordingStart returns the recording's metadata and start: Meta.Started,
// or the time of its first event.
func recordingStart(ctx context.Context, dir string, follow bool) (store.Meta, time.Time, error) {
	for {
		sr, err := store.Open(dir, store.ReaderOptions{})
		if err != nil {
			return store.Meta{}, time.Time{}, err
		}
		meta := sr.Meta()
		sr.Close()
		if !meta.Started.IsZero() {
			return meta, meta.Started, nil
		}
		info, err := store.Info(dir)
		if err != nil {
			return meta, time.Time{}, err
		}
		if !info.From.IsZero() || !follow {
			return meta, info.From, nil
		}
		select { // following a recording that has no event yet
		case <-ctx.Done():
			return meta, time.Time{}, ctx.Err()
		case <-time.After(replay.DefaultPollInterval):
		}
	}
}

// parseReplayTime parses an RFC 3339 time or +DURATION after start.
func parseReplayTime(s string, start time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if rest, ok := strings.CutPrefix(s, "+"); ok {
		d, err := time.ParseDuration(rest)
		if err != nil || d < 0 {
			return time.Time{}, fmt.Errorf("%q: want +DURATION such as +5s or +1m30s", s)
		}
		if start.IsZero() {
			return time.Time{}, fmt.Errorf("%q: the recording has no start time", s)
		}
		return start.Add(d), nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q: want an RFC 3339 time (2006-01-02T15:04:05Z) or +DURATION", s)
	}
	return t, nil
}

func streamNames(m store.Meta) []string {
	var out []string
	for _, s := range m.Streams {
		out = append(out, s.Name)
	}
	return out
}

// printer writes the replay's lines.
type printer struct {
	r         *replay.Replayer
	w         *bufio.Writer
	json      bool
	flushEach bool
	buf       []byte
}

// timeLayout is RFC 3339 with nanoseconds, fixed width.
const timeLayout = "2006-01-02T15:04:05.000000000Z07:00"

// eventTime is the wall-clock time of an event: its kernel time through
// the recording's MonoToWall, else the time it was read.
func (p *printer) eventTime(d *replay.Decoded) time.Time {
	if d.Event != nil {
		if kt := d.Event.KernelTime(); kt != 0 && kt < 1<<63 {
			if off := p.r.Meta().MonoToWall; off != 0 {
				return time.Unix(0, int64(kt)+off).UTC()
			}
		}
	}
	return d.Timestamp.UTC()
}

func (p *printer) event(d *replay.Decoded) error {
	b := p.buf[:0]
	if p.json {
		b = p.jsonEvent(b, d)
	} else {
		b = p.textEvent(b, d)
	}
	b = append(b, '\n')
	p.buf = b
	if _, err := p.w.Write(b); err != nil {
		return err
	}
	if p.flushEach && d.Last {
		return p.w.Flush() // paced or following: show each batch at once
	}
	return nil
}

func (p *printer) textEvent(b []byte, d *replay.Decoded) []byte {
	b = p.eventTime(d).AppendFormat(b, timeLayout)
	if d.CPU >= 0 {
		b = append(b, " ["...)
		if d.CPU < 100 {
			b = append(b, '0')
		}
		if d.CPU < 10 {
			b = append(b, '0')
		}
		b = strconv.AppendInt(b, int64(d.CPU), 10)
		b = append(b, "] "...)
	} else {
		b = append(b, " [---] "...)
	}
	ev := d.Event
	if ev == nil {
		b = append(b, "- - "...)
		b = append(b, d.Stream.Name...)
		b = append(b, ':')
		if d.Err != nil {
			b = append(b, " decode error: "...)
			b = append(b, d.Err.Error()...)
		}
		b = append(b, " len="...)
		b = strconv.AppendInt(b, int64(len(d.Raw)), 10)
		b = append(b, " raw="...)
		return hex.AppendEncode(b, d.Raw)
	}
	b = strconv.AppendUint(b, uint64(ev.PID()), 10)
	b = append(b, ' ')
	if comm := ev.Comm(); comm != "" {
		b = appendComm(b, comm)
	} else {
		b = append(b, '-')
	}
	b = append(b, ' ')
	b = append(b, ev.Tracer()...)
	if d.Stream.Name != ev.Tracer() {
		b = append(b, '/')
		b = append(b, d.Stream.Name...)
	}
	b = append(b, ": "...)
	return ev.AppendText(b)
}

// appendComm appends a comm, its spaces and control bytes replaced so that
// the line keeps its columns.
func appendComm(b []byte, comm string) []byte {
	for i := 0; i < len(comm); i++ {
		c := comm[i]
		if c <= ' ' || c == 0x7f {
			c = '_'
		}
		b = append(b, c)
	}
	return b
}

// appendJSONString appends s as a JSON string: control bytes as \u00XX,
// invalid UTF-8 as U+FFFD (strconv.AppendQuote writes Go escapes such as
// \x1b, which JSON does not have; names come from the traced host).
func appendJSONString(b []byte, s string) []byte {
	const hexDigits = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c >= utf8.RuneSelf {
			r, size := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && size == 1 {
				b = append(b, `\ufffd`...)
			} else {
				b = append(b, s[i:i+size]...)
			}
			i += size
			continue
		}
		switch {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c < 0x20 || c == 0x7f:
			b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		default:
			b = append(b, c)
		}
		i++
	}
	return append(b, '"')
}

func (p *printer) jsonEvent(b []byte, d *replay.Decoded) []byte {
	b = append(b, `{"type":"event","time":"`...)
	b = p.eventTime(d).AppendFormat(b, timeLayout)
	b = append(b, `","cpu":`...)
	if d.CPU >= 0 {
		b = strconv.AppendInt(b, int64(d.CPU), 10)
	} else {
		b = append(b, "null"...)
	}
	b = append(b, `,"stream":`...)
	b = appendJSONString(b, d.Stream.Name)
	b = append(b, `,"tracer":`...)
	tracer := d.Stream.Tracer
	if d.Event != nil {
		tracer = d.Event.Tracer()
	}
	b = appendJSONString(b, tracer)
	b = append(b, `,"seq":`...)
	b = strconv.AppendUint(b, d.Seq, 10)
	if d.Event != nil {
		j, err := json.Marshal(d.Event)
		if err == nil && len(j) > 2 && j[0] == '{' {
			b = append(b, ',')
			return append(b, j[1:]...)
		}
	}
	if d.Err != nil {
		b = append(b, `,"error":`...)
		ej, _ := json.Marshal(d.Err.Error())
		b = append(b, ej...)
	}
	b = append(b, `,"len":`...)
	b = strconv.AppendInt(b, int64(len(d.Raw)), 10)
	b = append(b, `,"raw":"`...)
	b = hex.AppendEncode(b, d.Raw)
	return append(b, `"}`...)
}

// loss prints a line when a stream's loss counters moved.
func (p *printer) loss(lp store.LossPoint) {
	b := p.buf[:0]
	if p.json {
		b = append(b, `{"type":"loss","time":"`...)
		b = lp.Time.UTC().AppendFormat(b, timeLayout)
		b = append(b, `","cpu":null,"stream":`...)
		b = appendJSONString(b, lp.Stream)
		b = append(b, `,"tracer":`...)
		meta := p.r.Meta()
		info, _ := meta.Stream(lp.Stream)
		b = appendJSONString(b, info.Tracer)
		b = append(b, `,"seq":`...)
		b = strconv.AppendUint(b, lp.Seq, 10)
		b = append(b, `,"kernel_lost":`...)
		b = strconv.AppendUint(b, lp.Loss.KernelLost, 10)
		b = append(b, `,"ringbuf_dropped":`...)
		b = strconv.AppendUint(b, lp.Loss.RingbufDropped, 10)
		b = append(b, `,"user_dropped":`...)
		b = strconv.AppendUint(b, lp.Loss.UserDropped, 10)
		b = append(b, "}\n"...)
	} else {
		b = lp.Time.UTC().AppendFormat(b, timeLayout)
		b = append(b, " LOSS stream="...)
		b = append(b, lp.Stream...)
		b = append(b, " kernel_lost="...)
		b = strconv.AppendUint(b, lp.Loss.KernelLost, 10)
		b = append(b, " ringbuf_dropped="...)
		b = strconv.AppendUint(b, lp.Loss.RingbufDropped, 10)
		b = append(b, " user_dropped="...)
		b = strconv.AppendUint(b, lp.Loss.UserDropped, 10)
		b = append(b, '\n')
	}
	p.buf = b
	// A write error shows again at the next event's write.
	_, _ = p.w.Write(b)
	if p.flushEach {
		_ = p.w.Flush()
	}
}
