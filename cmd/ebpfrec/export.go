package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"
	"golang.org/x/sys/unix"

	"github.com/ebpfrec/ebpfrec/analyze"
)

func init() {
	register(&cli.Command{
		Name:      "export",
		Usage:     "export a recording as Parquet (or Arrow) tables for DuckDB, Spark, pandas",
		ArgsUsage: "RECORDING",
		Description: "Writes one table per event type of the built-in tracers (exec, exit, open, tcp,\n" +
			"syscalls), raw (events of streams without a decoder), losses and recording,\n" +
			"each as a file in the output folder (default RECORDING-export), with export.json\n" +
			"written last. Times are nanosecond UTC timestamps (DuckDB TIMESTAMP_NS).\n\n" +
			"--partition writes Hive-style folders host=HOST/date=YYYY-MM-DD/TABLE.parquet.\n" +
			"An output folder that holds an export is replaced only with --force; the export\n" +
			"is written into a temporary folder beside it and renamed into place when done.\n" +
			"Damaged parts of a recording are skipped with a warning (refused with --strict).",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "output `DIR` (default RECORDING-export)"},
			&cli.StringFlag{Name: "format", Value: "parquet", Usage: "parquet or arrow (Arrow IPC files)"},
			&cli.BoolFlag{Name: "partition", Usage: "write Hive-style host=.../date=.../ folders"},
			&cli.BoolFlag{Name: "force", Usage: "replace an existing export in the output folder"},
			&cli.BoolFlag{Name: "strict", Usage: "refuse a recording with damaged batches or events that do not decode"},
			&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "print nothing but errors and warnings"},
		},
		Action: exportAction,
	})
}

func exportAction(c *cli.Context) error {
	if c.NArg() != 1 {
		return usageError("export: want one RECORDING directory, got %d arguments (see --help)", c.NArg())
	}
	format := analyze.Format(c.String("format"))
	if format != analyze.FormatParquet && format != analyze.FormatArrow {
		return usageError("export: --format %q: want parquet or arrow", format)
	}
	rec := c.Args().First()
	out := c.String("output")
	if out == "" {
		abs, err := filepath.Abs(rec)
		if err != nil {
			return err
		}
		out = abs + "-export" // beside the recording, also for "."
	}
	ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
	defer stop()
	opts := analyze.Options{
		Format: format, Partition: c.Bool("partition"), Force: c.Bool("force"), Strict: c.Bool("strict"),
		Version: version,
	}
	var bar *progressBar
	if !c.Bool("quiet") && stderrIsTerminal(c) {
		bar = &progressBar{w: c.App.ErrWriter}
		opts.Progress = bar.update
	}
	m, err := analyze.Export(ctx, rec, out, opts)
	bar.clear()
	if err != nil {
		return err
	}
	printWarnings(c.App.ErrWriter, m.Warnings)
	if !c.Bool("quiet") {
		printManifest(c.App.Writer, out, m)
	}
	return nil
}

func printWarnings(w io.Writer, warnings []string) {
	for _, s := range warnings {
		fmt.Fprintln(w, "ebpfrec: warning: "+s)
	}
}

func printManifest(w io.Writer, out string, m *analyze.Manifest) {
	var parts []string
	for _, t := range m.Tables {
		parts = append(parts, fmt.Sprintf("%s %d", t.Name, t.Rows))
	}
	fmt.Fprintf(w, "exported %d events (%d batches) to %s (%s", m.Events, m.Batches, out, m.Format)
	if m.Partitioned {
		fmt.Fprintf(w, ", partitioned by host and date")
	}
	fmt.Fprintf(w, ")\nrows: %s\n", strings.Join(parts, ", "))
}

// stderrIsTerminal says whether the app's error output is a terminal.
func stderrIsTerminal(c *cli.Context) bool {
	f, ok := c.App.ErrWriter.(*os.File)
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// progressBar draws "[#####.....]  45%  1.2M/2.6M events" on one line.
type progressBar struct {
	w     io.Writer
	start time.Time
	last  time.Time
	drawn bool
}

func (b *progressBar) update(p analyze.Progress) {
	now := time.Now()
	if b.start.IsZero() {
		b.start = now
	}
	if now.Sub(b.last) < 100*time.Millisecond {
		return
	}
	b.last = now
	rate := ""
	if el := now.Sub(b.start).Seconds(); el > 0.5 {
		rate = "  " + human(uint64(float64(p.Events)/el)) + "/s"
	}
	const width = 30
	if p.TotalEvents == 0 {
		fmt.Fprintf(b.w, "\rexporting: %s events%s\033[K", human(p.Events), rate)
	} else {
		frac := min(float64(p.Events)/float64(p.TotalEvents), 1)
		n := int(frac * width)
		fmt.Fprintf(b.w, "\r[%s%s] %3.0f%%  %s/%s events%s\033[K", strings.Repeat("#", n), strings.Repeat(".", width-n),
			frac*100, human(p.Events), human(p.TotalEvents), rate)
	}
	b.drawn = true
}

func (b *progressBar) clear() {
	if b != nil && b.drawn {
		fmt.Fprint(b.w, "\r\033[K")
	}
}

func human(n uint64) string {
	switch {
	case n >= 1e9:
		return fmt.Sprintf("%.1fG", float64(n)/1e9)
	case n >= 1e6:
		return fmt.Sprintf("%.1fM", float64(n)/1e6)
	case n >= 1e4:
		return fmt.Sprintf("%.1fk", float64(n)/1e3)
	}
	return fmt.Sprint(n)
}

// exportTemp exports a recording into a new temporary folder for query and
// returns it and a function that removes it.
func exportTemp(ctx context.Context, c *cli.Context, rec string) (string, func(), error) {
	tmp, err := os.MkdirTemp("", "ebpfrec-query-")
	if err != nil {
		return "", nil, err
	}
	cleanup := func() { os.RemoveAll(tmp) }
	out := filepath.Join(tmp, "export")
	m, err := analyze.Export(ctx, rec, out, analyze.Options{Version: version})
	if err != nil {
		cleanup()
		return "", nil, err
	}
	printWarnings(c.App.ErrWriter, m.Warnings)
	return out, cleanup, nil
}
