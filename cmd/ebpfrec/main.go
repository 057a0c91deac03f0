// Command ebpfrec records eBPF ring buffer and perf buffer events into
// durable recordings, replays them through the same handlers offline, and
// exports them for analysis. It links no cgo and no arrow-go: `ebpfrec
// query` and `ebpfrec export --format arrow` run the companion command
// ebpfrec-query, which links DuckDB and the Arrow writer (see query.go and
// export.go).
//
// Each subcommand lives in its own file and registers itself in init with
// register; main stays a thin layer from flags to library calls.
package main

import (
	"fmt"
	"os"
	"sort"

	"github.com/urfave/cli/v2"

	"github.com/ebpfrec/ebpfrec/internal/clireport"
)

// version is set at build time (-ldflags "-X main.version=...").
var version = "dev"

// Exit codes: see clireport.
const (
	exitFailure = clireport.Failure
	exitUsage   = clireport.Usage
)

// commandOrder is the order of subcommands in --help; others follow by name.
var commandOrder = []string{"record", "replay", "export", "query", "summary", "info", "verify", "tracers", "version"}

var commands []*cli.Command

// register adds a subcommand; called from init in each command's file.
func register(c *cli.Command) { commands = append(commands, c) }

func rank(name string) int {
	for i, n := range commandOrder {
		if n == name {
			return i
		}
	}
	return len(commandOrder)
}

// usageError marks an error as bad usage (exit code 2).
func usageError(format string, args ...any) error {
	return clireport.UsageError(format, args...)
}

func newApp() *cli.App {
	resetSizeFlags()
	cmds := append([]*cli.Command(nil), commands...)
	sort.SliceStable(cmds, func(i, j int) bool {
		ri, rj := rank(cmds[i].Name), rank(cmds[j].Name)
		if ri != rj {
			return ri < rj
		}
		return cmds[i].Name < cmds[j].Name
	})
	for _, c := range cmds {
		if c.OnUsageError == nil {
			c.OnUsageError = clireport.OnUsageError
		}
	}
	return &cli.App{
		Name:    "ebpfrec",
		Usage:   "record eBPF events, replay them offline, analyze them",
		Version: version,
		Description: "ebpfrec attaches tracers, reads their ring and perf buffers and keeps every raw\n" +
			"event batch, with loss counters, in a recording directory. A recording replays\n" +
			"through the same handlers and decoders that ran live, and exports to Parquet.",
		Commands:     cmds,
		OnUsageError: clireport.OnUsageError,
		CommandNotFound: func(c *cli.Context, name string) {
			// Reported by run: urfave/cli would otherwise exit with 3.
			unknownCommand = name
		},
		EnableBashCompletion: true,
		ExitErrHandler:       func(*cli.Context, error) {}, // main prints and exits
	}
}

// unknownCommand is set when the user named a subcommand that does not exist.
var unknownCommand string

func main() {
	os.Exit(run(os.Args))
}

// run executes the app and maps errors to exit codes and one clear line.
func run(args []string) int {
	unknownCommand = ""
	app := newApp()
	err := app.Run(flagsFirst(app, args))
	if unknownCommand != "" {
		fmt.Fprintf(os.Stderr, "ebpfrec: unknown command %q (see ebpfrec --help)\n", unknownCommand)
		return exitUsage
	}
	return clireport.Print(os.Stderr, err)
}
