package main

import (
	"github.com/urfave/cli/v2"

	"github.com/ebpfrec/ebpfrec/analyze"
	"github.com/ebpfrec/ebpfrec/internal/exportcli"
)

func init() {
	register(&cli.Command{
		Name:        exportcli.Name,
		Usage:       exportcli.Usage,
		ArgsUsage:   exportcli.ArgsUsage,
		Description: exportcli.Description,
		Flags:       exportcli.Flags(),
		Action:      exportAction,
	})
}

// exportAction writes Parquet in this process; Arrow, whose writer this
// lean recorder does not link (analyze/arrowexport), it hands to
// `ebpfrec-query export` with the same request, by exec as for query
// (see queryAction), once the usage is checked.
func exportAction(c *cli.Context) error {
	req, err := exportcli.Parse(c)
	if err != nil {
		return err
	}
	if req.Format == analyze.FormatArrow {
		return execCompanion("export", "Arrow is not written by ebpfrec (which writes Parquet) but by", req.Args())
	}
	return exportcli.Run(c, req, version)
}
