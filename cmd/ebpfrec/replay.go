package main

import (
	"bufio"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/urfave/cli/v2"

	"github.com/ebpfrec/ebpfrec/bpf/btflayout"
	"github.com/ebpfrec/ebpfrec/bpf/tracers"
	_ "github.com/ebpfrec/ebpfrec/bpf/tracers/all" // the decoders of every built-in tracer
	"github.com/ebpfrec/ebpfrec/bpf/tracers/proc"
	"github.com/ebpfrec/ebpfrec/internal/clireport"
	"github.com/ebpfrec/ebpfrec/internal/lossterms"
	"github.com/ebpfrec/ebpfrec/internal/proctable"
	"github.com/ebpfrec/ebpfrec/internal/safetext"
	"github.com/ebpfrec/ebpfrec/replay"
	"github.com/ebpfrec/ebpfrec/store"
)

func init() {
	register(&cli.Command{
		Name:      "replay",
		Usage:     "print every recorded event, decoded by its tracer, one line each (like perf script)",
		ArgsUsage: "DIR",
		Description: "Replays the recording in DIR through the built-in tracers' decoders and prints one\n" +
			"line per event, in time order (below): wall-clock time (UTC, from the event's kernel\n" +
			"time), CPU (the perf buffer's, else the event's own; [---] where neither says), pid,\n" +
			"comm, tracer and the event's fields. Events of streams without a built-in decoder print\n" +
			"as their length and hex bytes.\n" +
			"Return values that are errors show their errno name (ret=-2 (ENOENT)), durations human\n" +
			"units (latency=1.2ms, lifetime=3.4s), exec arguments a list quoted as for a shell\n" +
			"(args=[sh -c 'echo hi']). A LOSS line says when a stream's loss counters moved, with\n" +
			"their running totals (NAME_total, below).\n" +
			"--format json prints JSON lines instead, with the fields type, time, cpu (null if\n" +
			"unknown), stream, tracer, seq and the event's own fields (or the totals): exact values\n" +
			"(latency_ns, lifetime_ns), args as a list, errno (the name, null if ret is not an error)\n" +
			"for open and syscalls, and 64-bit identifiers that may exceed 2^53 (tcp socket,\n" +
			"cgroup_id) as strings.\n" +
			"Who did what: the recording's proc stream (every recording has one unless recorded with\n" +
			"--no-proc) names the process of events that carry no comm, as it was at the event's time,\n" +
			"and JSON lines add the process's comm, ppid, cgroup_id, container_id and exe where the\n" +
			"event has none of its own. A follower adds the processes recorded after it started as it\n" +
			"reads them (with --stream, it reads the proc stream too, and prints none of it).\n" +
			"Control characters in names and values from the recording (a traced host names its\n" +
			"files and processes) print escaped: \\x1b, \\n, \\u202e, bytes that are not UTF-8 as\n" +
			"\\xff; in JSON as JSON escapes, bytes that are not UTF-8 as U+FFFD.\n" +
			"\n" +
			"Time order: the recorder's readers hand events over per stream and per CPU, each up to\n" +
			"their flush deadline late (--read-flush, 100ms), so the recording holds them almost but\n" +
			"not quite in time order. --order time (the default) merges streams and CPUs by event time\n" +
			"within a window (--order-window: 500ms, 1.5s with --follow; at most --order-max-events\n" +
			"events are held, the earliest printed when more arrive). An event that arrives later than\n" +
			"that, behind an event already printed (an open or syscall stamped at its entry and blocked\n" +
			"longer than the window, a recording made with a longer --read-flush), is printed when it\n" +
			"arrives, counted, and reported at the end on stderr; in JSON it carries \"late\":true and,\n" +
			"if there were any, a last line of type \"order\" counts them. LOSS lines are merged by\n" +
			"their time; MISSED lines print when read. With --follow the window delays output by at\n" +
			"most the window and a poll interval; events then also come as the recorder commits them\n" +
			"(each --flush-interval, 1s), hence the longer window: it must exceed the recorder's\n" +
			"--flush-interval and --read-flush together.\n" +
			"--order recorded prints the batches exactly in recorded order, as handlers replaying the\n" +
			"recording get them (as ebpfrec printed them before time order).\n" +
			"\n" +
			"--from and --to take RFC 3339 times or offsets from the recording's start (+5s, +1m30s).\n" +
			"--speed 1 replays at the recorded pace, 2 twice as fast; 0 (default) as fast as possible.\n" +
			"--follow keeps printing what a running recorder commits, until interrupted. Records the\n" +
			"recorder's retention (--keep-segments, --keep-size) deleted before they were read print as\n" +
			"a MISSED line with their range (JSON type \"missed\"), on stderr too, and the exit status is 1.\n" +
			"Damaged parts of the recording are reported on stderr and skipped (exit status 1 at the\n" +
			"end), or stop the replay with --stop-on-damage.\n" +
			"\n" + lossterms.Legend,
		Flags: []cli.Flag{
			&cli.StringSliceFlag{Name: "stream", Usage: "replay only this stream (repeatable, or comma-separated)"},
			&cli.StringFlag{Name: "from", Usage: "start at this time: RFC 3339, or +DURATION from the recording's start"},
			&cli.StringFlag{Name: "to", Usage: "end before this time: RFC 3339, or +DURATION from the recording's start"},
			&cli.Float64Flag{Name: "speed", Usage: "pace: 0 as fast as possible, 1 the recorded pace, 2 twice as fast", Value: 0},
			&cli.StringFlag{Name: "format", Usage: "output format: text or json", Value: "text"},
			&cli.BoolFlag{Name: "follow", Aliases: []string{"f"}, Usage: "keep printing new events of a recording still being written, until interrupted"},
			&cli.StringFlag{Name: "order", Usage: "time: merge streams and CPUs by event time (within --order-window); recorded: batch by batch as recorded", Value: "time"},
			&cli.DurationFlag{Name: "order-window", Usage: "how long in event time an event is held for earlier ones to arrive (--order time)", Value: replay.DefaultOrderWindow},
			&cli.IntFlag{Name: "order-max-events", Usage: "the most events held for time order (bounds memory)", Value: replay.DefaultOrderMaxItems},
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
	order := c.String("order")
	if order != "time" && order != "recorded" {
		return usageError("replay: --order %q: want time or recorded", order)
	}
	oopts := replay.OrderOptions{Window: c.Duration("order-window"), MaxItems: c.Int("order-max-events")}
	if c.Bool("follow") && !c.IsSet("order-window") {
		oopts.Window = replay.DefaultFollowOrderWindow
	}
	if oopts.Window <= 0 || oopts.MaxItems <= 0 {
		return usageError("replay: --order-window %v, --order-max-events %d: want more than 0", oopts.Window, oopts.MaxItems)
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
	// A follower limited to some streams reads the proc streams too, to
	// extend its process table, and prints none of their events.
	var hidden map[string]bool
	if follow && len(streams) > 0 {
		// A recording not there yet (the follower started before the
		// recorder) will have its proc stream under the recorder's name.
		procStreams := []string{proc.StreamProc}
		if r, err := store.Open(dir, store.ReaderOptions{}); err == nil {
			procStreams = proctable.Streams(r.Meta())
			r.Close()
		}
		for _, n := range procStreams {
			if !slices.Contains(streams, n) {
				streams = append(streams, n)
				if hidden == nil {
					hidden = map[string]bool{}
				}
				hidden[n] = true
			}
		}
	}
	opts := replay.Options{Speed: speed, Streams: streams, Follow: follow}
	if c.Bool("stop-on-damage") {
		opts.OnDamage = replay.Stop
	} else {
		opts.OnDamage = replay.Continue
	}
	var err error
	if opts.From, opts.FromStart, err = parseReplayTime(c.String("from")); err != nil {
		return usageError("replay: --from: %v", err)
	}
	if opts.To, opts.ToStart, err = parseReplayTime(c.String("to")); err != nil {
		return usageError("replay: --to: %v", err)
	}
	if c.String("to") != "" && opts.To.IsZero() && opts.ToStart == 0 {
		return usageError("replay: --to %s: the range ends where the recording starts", c.String("to"))
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
	// Who did what: the recording's process table resolves the process of
	// every event. A follower extends it with the proc events of the
	// batches committed after it was loaded, as it prints them.
	procs, bad, procsSeq, procsErr := proctable.LoadSeq(dir)
	if procsErr != nil && follow && procsSeq == 0 && c.String("from") == "" {
		// Nothing loaded: the follower reads every proc batch from the
		// start and builds the whole table itself (a recording not
		// there yet is no error for it).
		procsErr = nil
	}
	if procs.Len() > 0 || follow {
		p.procs = procs
	}
	if follow {
		p.extendAfter, p.extend, p.hidden = procsSeq, true, hidden
	}
	opts.OnLoss = p.loss
	var damaged, missed int
	opts.Report = func(err error) {
		var me *replay.MissedError
		if errors.As(err, &me) {
			missed++
			p.missed(me)
			p.w.Flush()
			fmt.Fprintf(errOut, "ebpfrec: %v\n", err)
			return
		}
		damaged++
		p.w.Flush()
		fmt.Fprintf(errOut, "ebpfrec: %s (skipped)\n", safetext.Field(err.Error()))
	}
	r, err := replay.Open(dir, opts)
	if errors.Is(err, replay.ErrUnknownStream) || errors.Is(err, replay.ErrEmptyRange) {
		return usageError("%v", err)
	}
	if err != nil {
		return err
	}
	// Said once the recording opened: a folder that holds none gets that
	// error alone.
	if procsErr != nil {
		fmt.Fprintf(errOut, "ebpfrec: replay: process table incomplete: %s\n", safetext.Field(procsErr.Error()))
	} else if bad > 0 {
		fmt.Fprintf(errOut, "ebpfrec: replay: process table: %d events of the proc stream do not decode\n", bad)
	}
	p.r = r
	if order == "time" {
		r.HandleDecodedInOrder(oopts, p.event)
	} else {
		r.HandleDecoded(p.event)
	}
	stats, err := r.Run(ctx)
	ost := stats.Order
	if ost.Late > 0 && !clireport.IsEPIPE(err) {
		p.order(ost, oopts.Window)
	}
	ferr := p.w.Flush()
	if clireport.IsEPIPE(err) || clireport.IsEPIPE(ferr) {
		return nil // the reader stopped reading: no more to say
	}
	if ost.Late > 0 && ost.Forced > 0 {
		// The bound on held events, not the window, let them through.
		fmt.Fprintf(errOut, "ebpfrec: replay: %d event(s) arrived after later events were printed: %d were printed before their %v window ended, as --order-max-events (%d) were held; printed out of order, the latest %v behind\n",
			ost.Late, ost.Forced, oopts.Window, oopts.MaxItems, ost.MaxLate.Round(time.Millisecond))
	} else if ost.Late > 0 {
		fmt.Fprintf(errOut, "ebpfrec: replay: %d event(s) arrived after later events were printed (more than the %v window late): printed out of order, the latest %v behind\n",
			ost.Late, oopts.Window, ost.MaxLate.Round(time.Millisecond))
	}
	if err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	if ferr != nil {
		return ferr
	}
	if damaged > 0 || missed > 0 {
		return cli.Exit(fmt.Sprintf("ebpfrec: replay: %d damaged part(s) of the recording skipped, %d range(s) of records deleted by retention before they were read", damaged, missed), exitFailure)
	}
	return nil
}

// parseReplayTime parses an RFC 3339 time, or +DURATION from the
// recording's start (which replay resolves when it reads the recording).
func parseReplayTime(s string) (time.Time, time.Duration, error) {
	if s == "" {
		return time.Time{}, 0, nil
	}
	if rest, ok := strings.CutPrefix(s, "+"); ok {
		d, err := time.ParseDuration(rest)
		if err != nil || d < 0 {
			return time.Time{}, 0, fmt.Errorf("%q: want +DURATION such as +5s or +1m30s", s)
		}
		return time.Time{}, d, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, 0, fmt.Errorf("%q: want an RFC 3339 time (2006-01-02T15:04:05Z) or +DURATION", s)
	}
	return t, 0, nil
}

// printer writes the replay's lines.
type printer struct {
	r     *replay.Replayer
	procs *proc.Table // nil: no process table
	// extend (following): add the proc events of batches after
	// extendAfter (those proctable.LoadSeq did not read) to procs.
	extend      bool
	extendAfter uint64
	hidden      map[string]bool // streams read only to extend procs
	w           *bufio.Writer
	json        bool
	flushEach   bool
	buf         []byte
	esc         []byte // a line escaped for the terminal
}

// timeLayout is RFC 3339 with nanoseconds, fixed width.
const timeLayout = "2006-01-02T15:04:05.000000000Z07:00"

// eventTime is the wall-clock time of an event (replay.Decoded.Time).
func (p *printer) eventTime(d *replay.Decoded) time.Time { return d.Time.UTC() }

// order prints the JSON line that counts the events printed out of time
// order (text says it on stderr).
func (p *printer) order(st replay.OrderStats, window time.Duration) {
	if !p.json {
		return
	}
	b := append(p.buf[:0], `{"type":"order","order":"time","window_ns":`...)
	b = strconv.AppendInt(b, int64(window), 10)
	b = append(b, `,"late_events":`...)
	b = strconv.AppendUint(b, st.Late, 10)
	b = append(b, `,"max_late_ns":`...)
	b = strconv.AppendInt(b, int64(st.MaxLate), 10)
	b = append(b, `,"forced_events":`...)
	b = strconv.AppendUint(b, st.Forced, 10)
	p.buf = append(b, "}\n"...)
	_, _ = p.w.Write(p.buf)
}

func (p *printer) event(d *replay.Decoded) error {
	if pe, ok := d.Event.(*proc.Event); ok && p.extend && d.Seq > p.extendAfter {
		p.procs.Extend(pe)
	}
	if p.hidden[d.Stream.Name] {
		return nil
	}
	b := p.buf[:0]
	if p.json {
		b = p.jsonEvent(b, d)
	} else {
		b = p.textEvent(b, d)
	}
	p.buf = append(b, '\n') // kept with room for the newline below
	b = append(p.safe(b), '\n')
	if _, err := p.w.Write(b); err != nil {
		return err
	}
	if p.flushEach && d.Last {
		return p.w.Flush() // paced or following: show each batch at once
	}
	return nil
}

// eventCPU is the CPU of d: its buffer's (perf), else the event's own
// (ring buffer tracers record it), -1 if neither says.
func eventCPU(d *replay.Decoded) int {
	if d.Event == nil {
		return d.CPU
	}
	return tracers.EventCPU(d.Event, d.CPU)
}

func (p *printer) textEvent(b []byte, d *replay.Decoded) []byte {
	b = p.eventTime(d).AppendFormat(b, timeLayout)
	if cpu := eventCPU(d); cpu >= 0 {
		b = append(b, " ["...)
		if cpu < 100 {
			b = append(b, '0')
		}
		if cpu < 10 {
			b = append(b, '0')
		}
		b = strconv.AppendInt(b, int64(cpu), 10)
		b = append(b, "] "...)
	} else {
		b = append(b, " [---] "...)
	}
	ev := d.Event
	if ev == nil && d.Fields != nil {
		// Decoded by the stream's layout: its fields by name.
		b = append(b, "- - "...)
		b = append(b, d.Stream.Name...)
		b = append(b, ": "...)
		b = append(b, d.Layout.Name...)
		for i := range d.Layout.Fields {
			f := &d.Layout.Fields[i]
			b = append(b, ' ')
			b = append(b, f.Name...)
			b = append(b, '=')
			b = btflayout.AppendText(b, f, &d.Fields[i])
		}
		return b
	}
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
	if pid := ev.PID(); pid != 0 {
		b = strconv.AppendUint(b, uint64(pid), 10)
	} else {
		b = append(b, '-') // unknown (a tcp socket's owner the tracer could not know)
	}
	b = append(b, ' ')
	if comm := ev.Comm(); comm != "" {
		b = appendComm(b, comm)
	} else if pr := p.process(ev); pr != nil && pr.Comm != "" {
		b = appendComm(b, pr.Comm)
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

// safe returns a line to print escaped for the terminal by
// internal/safetext: a text line whole, as every part of it but its fixed
// words comes from the recording (names, comm, the event's fields, decode
// errors); a JSON line's strings as JSON escapes. Most lines need nothing
// and are returned as they are.
func (p *printer) safe(line []byte) []byte {
	if p.json {
		return safetext.JSON(line)
	}
	if safetext.CleanBytes(line) {
		return line
	}
	p.esc = safetext.AppendField(p.esc[:0], string(line))
	return p.esc
}

// appendComm appends a comm, its spaces replaced so that the line keeps its
// columns (its control characters are escaped with the whole line).
func appendComm(b []byte, comm string) []byte {
	for i := 0; i < len(comm); i++ {
		c := comm[i]
		if c == ' ' {
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
	if cpu := eventCPU(d); cpu >= 0 {
		b = strconv.AppendInt(b, int64(cpu), 10)
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
	if d.Late {
		b = append(b, `,"late":true`...)
	}
	if d.Event != nil {
		j, err := json.Marshal(d.Event)
		if err == nil && len(j) > 2 && j[0] == '{' {
			b, has := appendEventMembers(b, j, d.Event)
			return append(p.jsonProcess(b, d.Event, &has), '}')
		}
	}
	if d.Fields != nil {
		// Decoded by the stream's layout: its struct and fields by name.
		b = append(b, `,"struct":`...)
		b = appendJSONString(b, d.Layout.Name)
		b = append(b, `,"fields":{`...)
		for i := range d.Layout.Fields {
			f := &d.Layout.Fields[i]
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, f.Name)
			b = append(b, ':')
			j, _ := json.Marshal(btflayout.JSON(f, &d.Fields[i]))
			b = append(b, j...)
		}
		return append(b, `}}`...)
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

// process returns the process of ev as it was at ev's time, nil if the
// recording does not say.
func (p *printer) process(ev tracers.Event) *proc.Process {
	if p.procs == nil {
		return nil
	}
	return p.procs.Resolve(ev.PID(), ev.KernelTime())
}

// jsonProcess appends the resolved process's fields (processFields) that
// the event's own JSON lacks (has).
func (p *printer) jsonProcess(b []byte, ev tracers.Event, has *[len(processFields)]bool) []byte {
	pr := p.process(ev)
	if pr == nil {
		return b
	}
	for i := range processFields {
		if !has[i] {
			f := &processFields[i]
			b = append(b, ',')
			b = appendJSONString(b, f.key)
			b = append(b, ':')
			b = f.value(b, pr)
		}
	}
	return b
}

// missed prints a line for records a follower could not read because the
// recorder's retention deleted them first.
func (p *printer) missed(me *replay.MissedError) {
	b := p.buf[:0]
	known := !me.Deleted.To.IsZero() // the time of the last event missed
	if p.json {
		b = append(b, `{"type":"missed","time":`...)
		if known {
			b = append(b, '"')
			b = me.Deleted.To.UTC().AppendFormat(b, timeLayout)
			b = append(b, '"')
		} else {
			b = append(b, "null"...)
		}
		b = append(b, `,"first_seq":`...)
		b = strconv.AppendUint(b, me.First, 10)
		b = append(b, `,"last_seq":`...)
		b = strconv.AppendUint(b, me.Last, 10)
		b = append(b, `,"reason":"deleted by retention before it was read"}`+"\n"...)
	} else {
		if known {
			b = me.Deleted.To.UTC().AppendFormat(b, timeLayout)
		} else {
			b = append(b, '-')
		}
		b = append(b, " MISSED records="...)
		b = strconv.AppendUint(b, me.First, 10)
		b = append(b, '-')
		b = strconv.AppendUint(b, me.Last, 10)
		b = append(b, " reason=deleted-by-retention-before-read\n"...)
	}
	p.buf = b
	_, _ = p.w.Write(b)
}

// loss prints a line when a stream's loss counters moved: their running
// totals, named NAME_total in the vocabulary of every output (lossterms).
// kernel_missed_total is "-" (JSON null) where the kernel does not count
// skipped runs: 0 would say there were none.
func (p *printer) loss(lp store.LossPoint) {
	if p.hidden[lp.Stream] {
		return
	}
	b := p.buf[:0]
	meta := p.r.Meta()
	info, _ := meta.Stream(lp.Stream)
	terms := [...]struct {
		name    string
		n       uint64
		counted bool
	}{
		{lossterms.KernelLostPerfbuf + lossterms.TotalSuffix, lp.Loss.KernelLost, true},
		{lossterms.KernelLostRingbuf + lossterms.TotalSuffix, lp.Loss.RingbufDropped, true},
		{lossterms.EbpfrecDropped + lossterms.TotalSuffix, lp.Loss.UserDropped, true},
		{lossterms.KernelMissed + lossterms.TotalSuffix, lp.Loss.KernelMissed, info.KernelMissedCounted},
	}
	if p.json {
		b = append(b, `{"type":"loss","time":"`...)
		b = lp.Time.UTC().AppendFormat(b, timeLayout)
		b = append(b, `","cpu":null,"stream":`...)
		b = appendJSONString(b, lp.Stream)
		b = append(b, `,"tracer":`...)
		b = appendJSONString(b, info.Tracer)
		b = append(b, `,"seq":`...)
		b = strconv.AppendUint(b, lp.Seq, 10)
		for _, t := range terms {
			b = append(b, `,"`...)
			b = append(b, t.name...)
			b = append(b, `":`...)
			if t.counted {
				b = strconv.AppendUint(b, t.n, 10)
			} else {
				b = append(b, "null"...)
			}
		}
		b = append(b, '}')
	} else {
		b = lp.Time.UTC().AppendFormat(b, timeLayout)
		b = append(b, " LOSS stream="...)
		b = append(b, lp.Stream...)
		for _, t := range terms {
			b = append(b, ' ')
			b = append(b, t.name...)
			b = append(b, '=')
			if t.counted {
				b = strconv.AppendUint(b, t.n, 10)
			} else {
				b = append(b, '-')
			}
		}
	}
	p.buf = append(b, '\n') // kept with room for the newline below
	// A write error shows again at the next event's write.
	_, _ = p.w.Write(append(p.safe(b), '\n'))
	if p.flushEach {
		_ = p.w.Flush()
	}
}
