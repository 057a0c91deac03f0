// Command ebpfrec-query answers a SQL question about a recording or an
// export with DuckDB in process: it is what `ebpfrec query` runs (ebpfrec
// replaces itself with it), and it runs on its own with the same
// arguments:
//
//	ebpfrec-query [--format table|csv|json] RECORDING|EXPORT|FLEET SQL
//
// It also exports, Arrow included: `ebpfrec export --format arrow` runs
//
//	ebpfrec-query export [options] RECORDING
//
// with the options of ebpfrec export (internal/exportcli).
//
// It is a command of its own because DuckDB comes through cgo as a large
// C++ library, and Arrow through arrow-go: the ebpfrec that records on a
// production host links neither. Building it needs cgo and a C++
// toolchain.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/ebpfrec/ebpfrec/analyze"
	_ "github.com/ebpfrec/ebpfrec/analyze/arrowexport" // --format arrow
	"github.com/ebpfrec/ebpfrec/analyze/manifest"
	"github.com/ebpfrec/ebpfrec/analyze/query"
	"github.com/ebpfrec/ebpfrec/internal/clireport"
	"github.com/ebpfrec/ebpfrec/internal/exportcli"
	"github.com/ebpfrec/ebpfrec/internal/querycli"
	"github.com/ebpfrec/ebpfrec/internal/tmpdir"
)

// version is set at build time (-ldflags "-X main.version=...").
var version = "dev"

// tempPrefix names the temporary folders in TMPDIR of the recordings this
// command exports before it queries them.
const tempPrefix = "ebpfrec-query-"

func newApp() *cli.App {
	return &cli.App{
		Name:  querycli.Companion,
		Usage: querycli.Usage,
		UsageText: querycli.Companion + " [--format table|csv|json] " + querycli.ArgsUsage + " (or: ebpfrec query ...)\n" +
			querycli.Companion + " " + exportcli.Name + " [options] " + exportcli.ArgsUsage + " (or: ebpfrec export ...; see " + querycli.Companion + " " + exportcli.Name + " --help)",
		Description:     querycli.Description,
		Version:         version,
		Flags:           querycli.Flags(),
		Action:          queryAction,
		OnUsageError:    clireport.OnUsageError,
		HideHelpCommand: true,
		ExitErrHandler:  func(*cli.Context, error) {}, // main prints and exits
	}
}

func main() {
	os.Exit(run(os.Args))
}

// newExportApp is `ebpfrec-query export`, the export of ebpfrec (the
// same flags and action), which also writes Arrow.
func newExportApp() *cli.App {
	return &cli.App{
		Name:            querycli.Companion + " " + exportcli.Name,
		Usage:           exportcli.Usage,
		UsageText:       querycli.Companion + " " + exportcli.Name + " [options] " + exportcli.ArgsUsage + " (or: ebpfrec export ...)",
		Description:     exportcli.Description,
		Version:         version,
		Flags:           exportcli.Flags(),
		Action:          exportAction,
		OnUsageError:    clireport.OnUsageError,
		HideHelpCommand: true,
		ExitErrHandler:  func(*cli.Context, error) {}, // main prints and exits
	}
}

// run executes the app and maps errors to exit codes and one clear line
// (or the lines of a DuckDB error). "export" as the first argument is the
// export command; not a urfave/cli subcommand, because those are matched
// after "--" too, and ebpfrec query passes a folder named export there.
func run(args []string) int {
	if len(args) > 1 && args[1] == exportcli.Name {
		return clireport.Print(os.Stderr, newExportApp().Run(args[1:]))
	}
	return clireport.Print(os.Stderr, newApp().Run(args))
}

func exportAction(c *cli.Context) error {
	req, err := exportcli.Parse(c)
	if err != nil {
		return err
	}
	return exportcli.Run(c, req, version)
}

func queryAction(c *cli.Context) error {
	req, err := querycli.Parse(c)
	if err != nil {
		return err
	}
	// Every way a query is stopped but SIGKILL ends in the deferred
	// removal of its temporary export: SIGHUP (the terminal closed) stops
	// it as Ctrl-C does, and a closed pipe (| head) makes the write fail
	// with EPIPE instead of killing the process.
	ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	signal.Notify(make(chan os.Signal, 1), syscall.SIGPIPE)
	dir := req.Dir
	if st, err := os.Stat(dir); err != nil {
		return fmt.Errorf("query: %w", err)
	} else if !st.IsDir() {
		return clireport.UsageError("query: %s is not a directory", dir)
	}
	exports, err := manifest.FindExports(dir)
	if err != nil {
		return err
	}
	if len(exports) == 0 {
		out, cleanup, err := exportTemp(ctx, c, dir)
		if err != nil {
			return fmt.Errorf("query: %s is not an export (no %s), and exporting it as a recording failed: %w", dir, manifest.File, err)
		}
		defer cleanup()
		dir = out
	}
	db, _, err := query.OpenDB(ctx, dir)
	if err != nil {
		return err
	}
	defer db.Close()
	res, err := query.Query(ctx, db, req.SQL)
	if err != nil {
		return clireport.Lines{Err: err} // DuckDB's: the SQL and a caret under the fault
	}
	switch req.Format {
	case "csv":
		err = res.WriteCSV(c.App.Writer)
	case "json":
		err = res.WriteJSON(c.App.Writer)
	default:
		err = res.WriteTable(c.App.Writer)
	}
	if clireport.IsEPIPE(err) {
		return nil // the reader has what it wanted, as with replay
	}
	return err
}

// exportTemp exports a recording into a new temporary folder and returns
// it and a function that removes it. The folder is locked while in use
// (internal/tmpdir); those of earlier queries that were killed (their
// lock free) are removed first, and those of queries still running left
// alone.
func exportTemp(ctx context.Context, c *cli.Context, rec string) (string, func(), error) {
	_, _ = tmpdir.RemoveStale("", tempPrefix) // best effort: this query goes on anyway
	tmp, err := tmpdir.New("", tempPrefix)
	if err != nil {
		return "", nil, err
	}
	cleanup := func() { tmp.Remove() }
	out := filepath.Join(tmp.Path, "export")
	m, err := analyze.Export(ctx, rec, out, analyze.Options{Version: version})
	if err != nil {
		cleanup()
		return "", nil, err
	}
	clireport.Warnings(c.App.ErrWriter, m.Warnings)
	return out, cleanup, nil
}
