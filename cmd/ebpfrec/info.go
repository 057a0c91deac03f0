package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

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
skipped, and said so.`,
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
	w := c.App.Writer
	if c.Bool("json") {
		return writeJSON(w, s)
	}
	printInfo(w, s)
	return nil
}

func printInfo(out io.Writer, s *store.Summary) {
	m := s.Meta
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintf(w, "recording\t%s (format version %d)\n", m.RecordingID, m.FormatVersion)
	fmt.Fprintf(w, "directory\t%s\n", s.Dir)
	fmt.Fprintf(w, "host\t%s, kernel %s, boot %s\n", orDash(m.Hostname), orDash(m.KernelRelease), orDash(m.BootID))
	if m.BTFID != "" {
		fmt.Fprintf(w, "kernel BTF\t%s\n", m.BTFID)
	}
	fmt.Fprintf(w, "tool\t%s\n", orDash(m.ToolVersion))
	if len(m.CommandLine) > 0 {
		fmt.Fprintf(w, "command\t%s\n", strings.Join(m.CommandLine, " "))
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
	fmt.Fprintln(w, "STREAM\tKIND\tTRACER\tMAP\tEVENT TYPE\tBATCHES\tEVENTS\tBYTES\tKERNEL LOST\tRINGBUF DROPPED\tUSER DROPPED\tPERF LOST (events)")
	for _, st := range s.Streams {
		evType := st.EventType
		if st.Object != nil && st.Object.Path != "" {
			evType += " (" + st.Object.Path + ")"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%d\t%d\t%s\t%d\t%d\t%d\t%d\n", st.Name, st.Kind, orDash(st.Tracer), orDash(st.Map), orDash(evType),
			st.Batches, st.Events, humanBytes(st.Bytes), st.Loss.KernelLost, st.Loss.RingbufDropped, st.Loss.UserDropped, st.PerfLost)
	}
	w.Flush()
	if len(s.Notes) > 0 {
		fmt.Fprintln(out)
		for _, n := range s.Notes {
			fmt.Fprintln(out, "note: "+n)
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
// commands that print one document.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
