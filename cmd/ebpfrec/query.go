package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/ebpfrec/ebpfrec/analyze"
)

func init() {
	register(&cli.Command{
		Name:      "query",
		Usage:     "answer a SQL question about a recording or an export, with DuckDB in process",
		ArgsUsage: "RECORDING|EXPORT|FLEET SQL",
		Description: "Runs DuckDB over the tables of an export (see export), each visible as a view\n" +
			"named after its table: exec, exit, open, tcp, syscalls, raw, losses, recording.\n" +
			"A recording is exported to a temporary folder first (removed afterwards). A\n" +
			"folder whose subfolders are exports (one per recording, e.g. of a fleet, made\n" +
			"with export --partition) is queried as one: its views have host and date columns.\n\n" +
			"Example:\n" +
			"  ebpfrec query rec \"SELECT comm, count(*) AS execs FROM exec GROUP BY comm ORDER BY execs DESC LIMIT 10\"",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "format", Value: "table", Usage: "table, csv or json"},
		},
		Action: queryAction,
	})
}

func queryAction(c *cli.Context) error {
	if c.NArg() != 2 {
		return usageError("query: want RECORDING|EXPORT and one SQL statement, got %d arguments (quote the SQL)", c.NArg())
	}
	format := c.String("format")
	if format != "table" && format != "csv" && format != "json" {
		return usageError("query: --format %q: want table, csv or json", format)
	}
	dir, q := c.Args().Get(0), c.Args().Get(1)
	ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
	defer stop()
	if st, err := os.Stat(dir); err != nil {
		return err
	} else if !st.IsDir() {
		return usageError("query: %s is not a directory", dir)
	}
	exports, err := analyze.FindExports(dir)
	if err != nil {
		return err
	}
	if len(exports) == 0 {
		out, cleanup, err := exportTemp(ctx, c, dir)
		if err != nil {
			return fmt.Errorf("query: %s is not an export (no %s), and exporting it as a recording failed: %w", dir, analyze.ManifestFile, err)
		}
		defer cleanup()
		dir = out
	}
	db, _, err := analyze.OpenDB(ctx, dir)
	if err != nil {
		return err
	}
	defer db.Close()
	res, err := analyze.Query(ctx, db, q)
	if err != nil {
		return err
	}
	switch format {
	case "csv":
		return res.WriteCSV(c.App.Writer)
	case "json":
		return res.WriteJSON(c.App.Writer)
	}
	return res.WriteTable(c.App.Writer)
}
