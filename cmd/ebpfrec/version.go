package main

import (
	"fmt"
	"runtime"

	"github.com/urfave/cli/v2"
)

func init() {
	register(&cli.Command{
		Name:  "version",
		Usage: "print the version of ebpfrec and of the Go runtime",
		Action: func(c *cli.Context) error {
			fmt.Fprintf(c.App.Writer, "ebpfrec %s (%s %s/%s)\n", version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
			return nil
		},
	})
}
