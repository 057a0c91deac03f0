package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/ebpfrec/ebpfrec/internal/lossterms"
	"github.com/ebpfrec/ebpfrec/internal/safetext"
	"github.com/ebpfrec/ebpfrec/record"
	"github.com/ebpfrec/ebpfrec/store"
)

func init() {
	register(&cli.Command{
		Name:      "info",
		Usage:     "summarize a recording: streams, counts, bytes, time range, segments, losses",
		ArgsUsage: "RECORDING_DIR",
		Description: `Prints what a recording holds: its metadata (host, kernel, tool, command
line), each stream with its batches, events, bytes and loss counters, the
time range, the segments, and what retention deleted. Closed segments are
summarized from their closing summary; a segment left unclosed by a writer
that stopped is scanned; the segment a running recorder is writing is
skipped, and said so. The loss columns hold the latest running totals.
The recorder's note (recorder.note) is shown too: it says when a storage
failure ended the recording, with the events lost to it (storage_lost), or
that the recorder still runs or was killed.

` + lossterms.Legend,
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "json", Usage: "print the summary as JSON"},
		},
		Action: infoAction,
	})
}

func recordingArg(c *cli.Context) (string, error) {
	switch c.NArg() {
	case 0:
		return "", usageError("%s: missing RECORDING_DIR (see ebpfrec %s --help)", c.Command.Name, c.Command.Name)
	case 1:
		return c.Args().First(), nil
	}
	return "", usageError("%s: too many arguments %q: want one RECORDING_DIR", c.Command.Name, c.Args().Slice()[1:])
}

func infoAction(c *cli.Context) error {
	dir, err := recordingArg(c)
	if err != nil {
		return err
	}
	s, err := store.Info(dir)
	if err != nil {
		return err
	}
	// The recorder's note: how a recording that a storage failure stopped
	// ended (what its segments cannot say), or that its recorder still
	// runs or was killed.
	if n, err := record.ReadNote(dir); err != nil {
		s.Notes = append(s.Notes, fmt.Sprintf("%s: unreadable: %v", record.NoteName, err))
	} else if n != "" {
		for _, l := range strings.Split(n, "\n") {
			s.Notes = append(s.Notes, "recorder: "+l)
		}
	}
	w := c.App.Writer
	if c.Bool("json") {
		return writeJSON(w, s)
	}
	printInfo(w, s)
	return nil
}

// printInfo prints the summary for a person; every name and value from the
// recording is escaped for the terminal (f), which also keeps the
// tabwriter's columns.
func printInfo(out io.Writer, s *store.Summary) {
	f := safetext.Field
	m := s.Meta
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintf(w, "recording\t%s (format version %d)\n", f(m.RecordingID), m.FormatVersion)
	fmt.Fprintf(w, "directory\t%s\n", f(s.Dir))
	if s.Live {
		fmt.Fprintf(w, "state\tbeing written: counted up to the recorder's last commit\n")
	}
	fmt.Fprintf(w, "host\t%s, kernel %s, boot %s\n", f(orDash(m.Hostname)), f(orDash(m.KernelRelease)), f(orDash(m.BootID)))
	if m.BTFID != "" {
		fmt.Fprintf(w, "kernel BTF\t%s\n", f(m.BTFID))
	}
	fmt.Fprintf(w, "tool\t%s\n", f(orDash(m.ToolVersion)))
	if len(m.CommandLine) > 0 {
		args := make([]string, len(m.CommandLine))
		for i, a := range m.CommandLine {
			args[i] = f(a)
		}
		fmt.Fprintf(w, "command\t%s\n", strings.Join(args, " "))
	}
	if !m.Started.IsZero() {
		fmt.Fprintf(w, "started\t%s\n", m.Started.Format(time.RFC3339Nano))
	}
	if s.Events > 0 {
		fmt.Fprintf(w, "events from\t%s\n", s.From.Format(time.RFC3339Nano))
		fmt.Fprintf(w, "events to\t%s (%s)\n", s.To.Format(time.RFC3339Nano), s.To.Sub(s.From).Round(time.Millisecond))
	}
	closed, open := 0, 0
	for _, sg := range s.Segments {
		if sg.Closed {
			closed++
		} else {
			open++
		}
	}
	fmt.Fprintf(w, "segments\t%d (%d closed, %d not closed), %s on disk\n", len(s.Segments), closed, open, humanBytes(uint64(s.DiskBytes)))
	fmt.Fprintf(w, "records\t%d batches, %d events, %s of raw events (sequence %d-%d)\n", s.Batches, s.Events, humanBytes(s.Bytes), s.FirstSeq, s.LastSeq)
	if d := s.Deleted; d != nil {
		fmt.Fprintf(w, "history\tstarts after what retention deleted: %d segments (up to %06d), sequence %d-%d, events %s to %s (%d batches, %d events)\n",
			d.Segments, d.LastSegment, d.FirstSeq, d.LastSeq, d.From.Format(time.RFC3339Nano), d.To.Format(time.RFC3339Nano), d.Batches, d.Events)
	} else {
		fmt.Fprintf(w, "history\tcomplete (nothing deleted)\n")
	}
	w.Flush()

	fmt.Fprintln(out)
	w = tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	// The loss columns in the vocabulary of every output (lossterms); the
	// last sums the lost-sample records perf wrote before recorded samples,
	// its own (lagging) report of what kernel_lost_perfbuf counts.
	fmt.Fprintln(w, "STREAM\tKIND\tTRACER\tMAP\tEVENT TYPE\tBATCHES\tEVENTS\tBYTES\t"+strings.ToUpper(lossterms.KernelLostPerfbuf+"\t"+lossterms.KernelLostRingbuf+"\t"+lossterms.EbpfrecDropped)+"\tKERNEL_LOST_PERFBUF (PERF REPORTS)\t"+strings.ToUpper(lossterms.KernelMissed))
	for _, st := range s.Streams {
		evType := st.EventType
		if st.Object != nil && st.Object.Path != "" {
			evType += " (" + st.Object.Path + ")"
		}
		ringLost := fmt.Sprint(st.Loss.RingbufDropped)
		if st.KernelLossUncounted {
			ringLost = lossterms.NotCounted
		}
		kmissed := fmt.Sprint(st.Loss.KernelMissed)
		if !st.KernelMissedCounted {
			kmissed = lossterms.NotCounted
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%d\t%d\t%s\t%d\t%s\t%d\t%d\t%s\n", f(st.Name), st.Kind, f(orDash(st.Tracer)), f(orDash(st.Map)), f(orDash(evType)),
			st.Batches, st.Events, humanBytes(st.Bytes), st.Loss.KernelLost, ringLost, st.Loss.UserDropped, st.PerfLost, kmissed)
	}
	w.Flush()
	if len(s.Notes) > 0 {
		fmt.Fprintln(out)
		for _, n := range s.Notes {
			fmt.Fprintln(out, "note: "+f(n))
		}
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func humanBytes(n uint64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// writeJSON writes v to w as indented JSON, the --json output of the
// commands that print one document: exact values, with the C1 and bidi
// controls that JSON allows raw escaped too (internal/safetext), as it may
// well be read on a terminal.
func writeJSON(w io.Writer, v any) error {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return err
	}
	_, err := w.Write(safetext.JSON(b.Bytes()))
	return err
}
