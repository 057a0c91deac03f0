package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/ebpfrec/ebpfrec/internal/querycli"
)

func init() {
	register(&cli.Command{
		Name:        "query",
		Usage:       querycli.Usage,
		ArgsUsage:   querycli.ArgsUsage,
		Description: querycli.Description,
		Flags:       querycli.Flags(),
		Action:      queryAction,
	})
}

// queryAction checks the request (usage errors need no DuckDB), then
// replaces this process with the companion ebpfrec-query. An exec rather
// than a child: the query is then this very process, so its standard
// streams, its exit status and the signals sent to it (Ctrl-C, a kill of
// this PID, a hang-up) are the companion's without any forwarding, and
// its temporary export is removed by the process that made it however it
// ends (see ebpfrec-query). Only main may run it: in a test run in
// process, it would replace the test.
func queryAction(c *cli.Context) error {
	req, err := querycli.Parse(c)
	if err != nil {
		return err
	}
	return execCompanion("query", "DuckDB is not in ebpfrec but in", req.Args())
}

// execCompanion replaces this process with ebpfrec-query run with args,
// for the command op; why begins the error when there is no companion
// (what is missing from ebpfrec, ending in "in" or "by"). It returns
// only on failure.
func execCompanion(op, why string, args []string) error {
	bin, err := findCompanion(op, why)
	if err != nil {
		return err
	}
	argv := append([]string{bin}, args...)
	err = syscall.Exec(bin, argv, os.Environ())
	return fmt.Errorf("%s: run %s: %w", op, bin, err)
}

// findCompanion returns the path of ebpfrec-query: $EBPFREC_QUERY_BIN if
// set, else the one beside this executable (installed together, same
// version), else the one on PATH. Its error, for the command op, says
// why (see execCompanion) and what to install.
func findCompanion(op, why string) (string, error) {
	if p := os.Getenv(querycli.EnvBin); p != "" {
		if err := executable(p); err != nil {
			return "", fmt.Errorf("%s: %s=%s: %w", op, querycli.EnvBin, p, err)
		}
		return p, nil
	}
	var beside string
	if self, err := os.Executable(); err == nil {
		beside = filepath.Join(filepath.Dir(self), querycli.Companion)
		if executable(beside) == nil {
			return beside, nil
		}
	}
	if p, err := exec.LookPath(querycli.Companion); err == nil {
		return p, nil
	}
	where := "not on PATH"
	if beside != "" {
		where = "neither in " + filepath.Dir(beside) + " (beside ebpfrec) nor on PATH"
	}
	return "", fmt.Errorf("%s: %s the companion program %s, which is %s: "+
		"`make install` installs both, or build it with `go build ./cmd/%s` (needs cgo and a C++ toolchain) "+
		"and put it beside ebpfrec (or name it with %s)", op, why, querycli.Companion, where, querycli.Companion, querycli.EnvBin)
}

// executable says why p cannot be run as the companion, if it cannot.
func executable(p string) error {
	st, err := os.Stat(p)
	if err != nil {
		return err
	}
	if st.IsDir() || st.Mode().Perm()&0o111 == 0 {
		return &fs.PathError{Op: "exec", Path: p, Err: errors.New("not an executable file")}
	}
	return nil
}
