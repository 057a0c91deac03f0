// Package querycli is the command line of `ebpfrec query`: its help, flags
// and arguments, and how ebpfrec hands them to the companion command
// ebpfrec-query, which runs the query. ebpfrec links no DuckDB (the
// recorder must not carry the analysis engine) and ebpfrec-query does;
// this package links neither, so that both show the same help and refuse
// the same usage.
package querycli

import (
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/ebpfrec/ebpfrec/analyze"
	"github.com/ebpfrec/ebpfrec/internal/clireport"
)

// Companion is the name of the command that runs queries: ebpfrec runs it
// from its own folder, else from PATH.
const Companion = "ebpfrec-query"

// EnvBin, when set, is the path of the companion that ebpfrec runs (a
// packager's own layout, tests); it must then exist.
const EnvBin = "EBPFREC_QUERY_BIN"

// Usage is the command's one-line summary.
const Usage = "answer a SQL question about a recording or an export, with DuckDB"

// ArgsUsage names the command's arguments.
const ArgsUsage = "RECORDING|EXPORT|FLEET SQL"

// Description is the command's --help text.
var Description = "Runs DuckDB over the tables of an export (see export), each visible as a view\n" +
	"named after its table: " + strings.Join(analyze.Tables, ", ") + ",\n" +
	"and one per stream recorded with its struct.\n" +
	"A recording is exported to a temporary folder first, removed afterwards however\n" +
	"the query ends (one that SIGKILL left is removed by the next query). A\n" +
	"folder whose subfolders are exports (one per recording, e.g. of a fleet, made\n" +
	"with export --partition) is queried as one: its views have host and date columns.\n" +
	"A recording still being written is read up to its recorder's last commit, with a\n" +
	"warning saying so.\n\n" +
	"Text from the recording can hold control characters (a traced host names its files\n" +
	"and processes). The table format shows them escaped (\\x1b, \\n, \\u202e), one row\n" +
	"per line; json writes them as JSON escapes; csv writes every value exactly as the\n" +
	"export holds it, control characters included (quoted where CSV needs it): CSV is\n" +
	"data for a program, not for a terminal.\n\n" +
	"DuckDB is not in ebpfrec, so that the recorder stays small: ebpfrec query runs the\n" +
	"companion program " + Companion + " (DuckDB in process) with these arguments, found\n" +
	"beside ebpfrec, else on PATH (" + EnvBin + " names another one). Install both\n" +
	"with `make install`; " + Companion + " alone builds with `go build ./cmd/" + Companion + "`\n" +
	"(cgo and a C++ toolchain).\n\n" +
	"Example:\n" +
	"  ebpfrec query rec \"SELECT comm, count(*) AS execs FROM exec GROUP BY comm ORDER BY execs DESC LIMIT 10\""

// Flags returns the command's flags (new ones each time: urfave/cli keeps
// state in them).
func Flags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "format", Value: "table", Usage: "table, csv or json (csv keeps control characters as they are: see above)"},
	}
}

// Request is a query as its command line asks for it.
type Request struct {
	Format string // table, csv or json
	Dir    string // a recording, an export or a folder of exports
	SQL    string // one statement
}

// Parse checks the arguments and flags of c (bad usage is a usage error,
// exit code 2) and returns the request.
func Parse(c *cli.Context) (Request, error) {
	if c.NArg() != 2 {
		return Request{}, clireport.UsageError("query: want RECORDING|EXPORT and one SQL statement, got %d arguments (quote the SQL)", c.NArg())
	}
	r := Request{Format: c.String("format"), Dir: c.Args().Get(0), SQL: c.Args().Get(1)}
	if r.Format != "table" && r.Format != "csv" && r.Format != "json" {
		return Request{}, clireport.UsageError("query: --format %q: want table, csv or json", r.Format)
	}
	return r, nil
}

// Args returns the companion's arguments for r: the flags, then "--", so
// that a folder named "-x" or SQL starting with "--" stays an argument.
func (r Request) Args() []string {
	return []string{"--format", r.Format, "--", r.Dir, r.SQL}
}
