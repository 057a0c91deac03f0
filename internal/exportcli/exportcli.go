// Package exportcli is the command line of `ebpfrec export`: its help,
// flags and arguments, and the export itself, which both ebpfrec and its
// companion ebpfrec-query run. ebpfrec writes Parquet in process and hands
// an Arrow export (--format arrow) to `ebpfrec-query export` with the
// request's arguments (Request.Args): the Arrow writer,
// analyze/arrowexport, is linked by ebpfrec-query only, to keep the
// recorder small. This package links neither it nor DuckDB, so that both
// commands show the same help, refuse the same usage and export alike.
package exportcli

import (
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/ebpfrec/ebpfrec/analyze"
	"github.com/ebpfrec/ebpfrec/internal/clireport"
	"github.com/ebpfrec/ebpfrec/internal/querycli"
	"github.com/ebpfrec/ebpfrec/internal/safetext"
)

// Name is the command's name, in ebpfrec and in ebpfrec-query.
const Name = "export"

// Usage is the command's one-line summary.
const Usage = "export a recording as Parquet (or Arrow) tables for DuckDB, Spark, pandas"

// ArgsUsage names the command's argument.
const ArgsUsage = "RECORDING"

// Description is the command's --help text.
var Description = "Writes its tables, " + strings.Join(analyze.Tables, ", ") + ",\n" +
	"each as a file in the output folder (default RECORDING-export), with export.json\n" +
	"written last: one per event type of the built-in tracers, processes (one row per\n" +
	"process life, to join events with), raw (events of streams without a decoder),\n" +
	"losses and recording; and one per stream of your own recorded with its struct,\n" +
	"named after the stream. Every event table has the process that made the event,\n" +
	"as it was then (comm, ppid, cgroup_id, container_id, exe). Times are nanosecond\n" +
	"UTC timestamps (DuckDB TIMESTAMP_NS).\n" +
	"losses has, per row, the increase of kernel_lost_perfbuf, kernel_lost_ringbuf and\n" +
	"ebpfrec_dropped (ebpfrec record --help explains them) and each one's running total\n" +
	"(kernel_lost_perfbuf_total, ...).\n\n" +
	"--partition writes Hive-style folders host=HOST/date=YYYY-MM-DD/TABLE.parquet.\n" +
	"An output folder that holds an export is replaced only with --force; the export\n" +
	"is written into a temporary folder beside it and renamed into place when done\n" +
	"(the next export to the same folder removes one left by an export that was killed).\n" +
	"Damaged parts of a recording are skipped with a warning (refused with --strict).\n\n" +
	"ebpfrec writes Parquet itself. Arrow (--format arrow) is written by the companion\n" +
	"program " + querycli.Companion + ", which ebpfrec runs with these arguments (as for query:\n" +
	"found beside ebpfrec, else on PATH, or named by " + querycli.EnvBin + "), so that the\n" +
	"recorder stays small; `make install` installs both."

// Flags returns the command's flags (new ones each time: urfave/cli keeps
// state in them).
func Flags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "output `DIR` (default RECORDING-export)"},
		&cli.StringFlag{Name: "format", Value: "parquet", Usage: "parquet or arrow (Arrow IPC files, written by " + querycli.Companion + ")"},
		&cli.BoolFlag{Name: "partition", Usage: "write Hive-style host=.../date=.../ folders"},
		&cli.BoolFlag{Name: "force", Usage: "replace an existing export in the output folder"},
		&cli.BoolFlag{Name: "strict", Usage: "refuse a recording with damaged batches or events that do not decode"},
		&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "print nothing but errors and warnings"},
	}
}

// Request is an export as its command line asks for it.
type Request struct {
	Recording string
	Output    string // the output folder; Parse sets the default
	Format    analyze.Format
	Partition bool
	Force     bool
	Strict    bool
	Quiet     bool
}

// Parse checks the arguments and flags of c (bad usage is a usage error,
// exit code 2) and returns the request, its output folder made absolute
// when defaulted (beside the recording, also for ".").
func Parse(c *cli.Context) (Request, error) {
	if c.NArg() != 1 {
		return Request{}, clireport.UsageError("export: want one RECORDING directory, got %d arguments (see --help)", c.NArg())
	}
	r := Request{
		Recording: c.Args().First(), Output: c.String("output"), Format: analyze.Format(c.String("format")),
		Partition: c.Bool("partition"), Force: c.Bool("force"), Strict: c.Bool("strict"), Quiet: c.Bool("quiet"),
	}
	if r.Format != analyze.FormatParquet && r.Format != analyze.FormatArrow {
		return Request{}, clireport.UsageError("export: --format %q: want parquet or arrow", r.Format)
	}
	if r.Output == "" {
		abs, err := filepath.Abs(r.Recording)
		if err != nil {
			return Request{}, err
		}
		r.Output = abs + "-export"
	}
	return r, nil
}

// Args returns the arguments of `ebpfrec-query export` for r: the command,
// the flags, then "--", so that a recording named "-x" stays an argument.
func (r Request) Args() []string {
	args := []string{Name, "--output", r.Output, "--format", string(r.Format)}
	for _, f := range []struct {
		on   bool
		name string
	}{{r.Partition, "--partition"}, {r.Force, "--force"}, {r.Strict, "--strict"}, {r.Quiet, "--quiet"}} {
		if f.on {
			args = append(args, f.name)
		}
	}
	return append(args, "--", r.Recording)
}

// Run exports as r asks, in this process (the format's writer must be
// linked: see analyze.ErrFormatNotLinked), and reports on c's writers;
// version is the tool's, written into the files.
func Run(c *cli.Context, r Request, version string) error {
	ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
	defer stop()
	opts := analyze.Options{Format: r.Format, Partition: r.Partition, Force: r.Force, Strict: r.Strict, Version: version}
	var bar *progressBar
	if !r.Quiet && stderrIsTerminal(c) {
		bar = &progressBar{w: c.App.ErrWriter}
		opts.Progress = bar.update
	}
	m, err := analyze.Export(ctx, r.Recording, r.Output, opts)
	bar.clear()
	if err != nil {
		return err
	}
	clireport.Warnings(c.App.ErrWriter, m.Warnings)
	if !r.Quiet {
		printManifest(c.App.Writer, r.Output, m)
	}
	return nil
}

func printManifest(w io.Writer, out string, m *analyze.Manifest) {
	var parts []string
	for _, t := range m.Tables {
		parts = append(parts, fmt.Sprintf("%s %d", t.Name, t.Rows))
	}
	fmt.Fprintf(w, "exported %d events (%d batches) to %s (%s", m.Events, m.Batches, safetext.Field(out), m.Format)
	if m.Partitioned {
		fmt.Fprintf(w, ", partitioned by host and date")
	}
	fmt.Fprintf(w, ")\nrows: %s\n", strings.Join(parts, ", "))
}
