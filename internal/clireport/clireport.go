// Package clireport is how ebpfrec's commands (ebpfrec and its companion
// ebpfrec-query) end and complain: exit codes, usage errors, the line
// printed for an error and the lines printed for warnings, each escaped
// for a terminal. Both commands use it, so that `ebpfrec query` reads and
// exits the same whichever of the two runs it.
package clireport

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/ebpfrec/ebpfrec/internal/safetext"
)

// Exit codes: 0 success, 1 runtime failure, 2 bad usage (flags, arguments,
// unknown names), as users of perf and friends expect.
const (
	Failure = 1
	Usage   = 2
)

// UsageError returns an error that marks bad usage (exit code Usage), its
// message prefixed with "ebpfrec: ".
func UsageError(format string, args ...any) error {
	return cli.Exit(fmt.Sprintf("ebpfrec: "+format, args...), Usage)
}

// OnUsageError is the OnUsageError of every command and app: a flag that
// does not parse is bad usage, with what the flag wants and a pointer to
// --help.
func OnUsageError(c *cli.Context, err error, _ bool) error {
	return cli.Exit("ebpfrec: "+explainFlagError(c, err)+" (see --help)", Usage)
}

// explainFlagError says what a flag wants when its value did not parse
// (the flag package's "parse error" does not): a duration, a number.
func explainFlagError(c *cli.Context, err error) string {
	msg := err.Error()
	_, after, ok := strings.Cut(msg, " for flag -")
	if !ok || !strings.HasSuffix(msg, ": parse error") {
		return msg
	}
	name, _, _ := strings.Cut(after, ":")
	var want string
	if c != nil && c.Command != nil {
		for _, f := range c.Command.Flags {
			for _, n := range f.Names() {
				if n != name {
					continue
				}
				switch f.(type) {
				case *cli.DurationFlag:
					want = "a duration such as 30s, 5m or 1h30m"
				case *cli.Float64Flag:
					want = "a number such as 1 or 0.5"
				case *cli.IntFlag, *cli.Int64Flag, *cli.UintFlag, *cli.UintSliceFlag:
					want = "a whole number"
				}
			}
		}
	}
	if want == "" {
		return msg
	}
	return strings.TrimSuffix(msg, "parse error") + "want " + want
}

// Lines marks an error whose message has a layout of several lines
// (DuckDB's errors: the SQL, and a caret under the fault on the next
// line), which Print keeps.
type Lines struct{ Err error }

// Error is the wrapped error's text, lines and all.
func (e Lines) Error() string { return e.Err.Error() }

// Unwrap returns the wrapped error.
func (e Lines) Unwrap() error { return e.Err }

// Print prints err to w as main does, and returns the exit code: 0 for
// nil; an ExitCoder's own code and message (nothing printed for an empty
// one); otherwise Failure, the message prefixed with "ebpfrec: ". The
// message is escaped for the terminal: errors name things from recordings
// (streams, files, values quoted by DuckDB), which can hold control
// characters. It is one line, its newlines escaped too, unless err is a
// Lines.
func Print(w io.Writer, err error) int {
	if err == nil {
		return 0
	}
	var ec cli.ExitCoder
	if errors.As(err, &ec) {
		if msg := err.Error(); msg != "" {
			fmt.Fprintln(w, terminal(err, msg))
		}
		return ec.ExitCode()
	}
	fmt.Fprintln(w, terminal(err, "ebpfrec: "+err.Error()))
	return Failure
}

func terminal(err error, msg string) string {
	var le Lines
	if errors.As(err, &le) {
		return safetext.Lines(msg)
	}
	return safetext.Field(msg)
}

// Warnings prints one line per warning, escaped for the terminal
// (warnings name streams, files and values of the recording).
func Warnings(w io.Writer, warnings []string) {
	for _, s := range warnings {
		fmt.Fprintln(w, "ebpfrec: warning: "+safetext.Field(s))
	}
}

// IsEPIPE says whether err is a write into a pipe whose reader went away
// (| head): the reader has what it wanted, and a command ends quietly.
func IsEPIPE(err error) bool {
	return err != nil && (errors.Is(err, syscall.EPIPE) || errors.Is(err, io.ErrClosedPipe))
}
