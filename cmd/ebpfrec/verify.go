package main

import (
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/ebpfrec/ebpfrec/internal/safetext"
	"github.com/ebpfrec/ebpfrec/store"
)

func init() {
	register(&cli.Command{
		Name:      "verify",
		Usage:     "check every segment, batch, checksum and sequence of a recording",
		ArgsUsage: "RECORDING_DIR",
		Description: `Checks file modes, format versions, metadata, the bbolt page structure, every
record's checksum and encoding, the global sequence (gaps, order), the time
index and each closed segment's summary, and lists every problem with its
segment and batch. Exits 0 when the recording is sound, 1 when a problem was
found. The segment a running recorder is writing is checked as of its last
commit, and said so.`,
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "json", Usage: "print the report as JSON"},
		},
		Action: verifyAction,
	})
}

func verifyAction(c *cli.Context) error {
	dir, err := recordingArg(c)
	if err != nil {
		return err
	}
	rep, err := store.Verify(dir)
	if err != nil {
		return err
	}
	w := c.App.Writer
	if c.Bool("json") {
		if err := writeJSON(w, struct {
			OK bool `json:"ok"`
			*store.Report
		}{rep.OK(), rep}); err != nil {
			return err
		}
	} else {
		for _, s := range rep.Skipped {
			fmt.Fprintln(w, "skipped: "+safetext.Field(s))
		}
		for _, s := range rep.Notes {
			fmt.Fprintln(w, "note: "+s)
		}
		for _, p := range rep.Problems {
			fmt.Fprintln(w, safetext.Field(p.Message))
		}
	}
	if !rep.OK() {
		return cli.Exit(fmt.Sprintf("ebpfrec: verify: %s: %d problem(s) found in %d segment(s)", dir, len(rep.Problems), len(rep.Segments)), exitFailure)
	}
	if !c.Bool("json") {
		fmt.Fprintf(w, "ok: %s: %d segments, %d batches, %d events, %d loss points, no problems\n",
			safetext.Field(dir), len(rep.Segments), rep.Batches, rep.Events, rep.LossPoints)
	}
	return nil
}
