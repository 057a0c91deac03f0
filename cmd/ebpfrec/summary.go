package main

import (
	"os"
	"os/signal"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/ebpfrec/ebpfrec/analyze"
	"github.com/ebpfrec/ebpfrec/internal/clireport"
	"github.com/ebpfrec/ebpfrec/internal/lossterms"
)

func init() {
	register(&cli.Command{
		Name:      "summary",
		Usage:     "summarize a recording: time range, events per tracer, top processes, files, TCP peers, loss",
		ArgsUsage: "RECORDING",
		Description: "Reads the recording once and prints what a person wants first: the time range,\n" +
			"events per stream, the top processes by events, exec and exit counts, the files\n" +
			"opened most (with failures), the TCP peers, and the events each stream did not\n" +
			"record, over time, with a warning when there are any. A recording still being\n" +
			"written is summarized up to its recorder's last commit, with a warning saying so.\n" +
			"\n" + lossterms.Legend,
		Flags: []cli.Flag{
			&cli.IntFlag{Name: "top", Value: 10, Usage: "length of the top lists"},
			&cli.BoolFlag{Name: "json", Usage: "print JSON instead of text"},
		},
		Action: summaryAction,
	})
}

func summaryAction(c *cli.Context) error {
	if c.NArg() != 1 {
		return usageError("summary: want one RECORDING directory, got %d arguments", c.NArg())
	}
	if c.Int("top") < 1 {
		return usageError("summary: --top must be at least 1")
	}
	ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
	defer stop()
	s, err := analyze.Summarize(ctx, c.Args().First(), analyze.SummaryOptions{Top: c.Int("top")})
	if err != nil {
		return err
	}
	if c.Bool("json") {
		if err := writeJSON(c.App.Writer, s); err != nil {
			return err
		}
	} else if err := s.WriteText(c.App.Writer); err != nil {
		return err
	}
	clireport.Warnings(c.App.ErrWriter, s.Warnings)
	return nil
}
