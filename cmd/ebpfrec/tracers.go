package main

import (
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	"github.com/ebpfrec/ebpfrec/bpf/tracers"
	"github.com/ebpfrec/ebpfrec/bpf/tracers/all"
)

func init() {
	register(&cli.Command{
		Name:      "tracers",
		Usage:     "list the built-in tracers: their events and fields, streams, attach points, and whether this kernel supports them",
		ArgsUsage: "[TRACER...]",
		Description: "Without arguments, lists every built-in tracer; with names, only those.\n" +
			"A tracer this kernel cannot run is marked unsupported, with the reason.\n" +
			"A tracer with several builds of its programs (variants, for older kernels)\n" +
			"says which one this kernel gets, and why the newer ones were passed over.",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "json", Usage: "print JSON instead of text"},
		},
		Action: tracersAction,
	})
}

// tracerInfo is the description of one tracer, as `tracers --json` prints it.
type tracerInfo struct {
	Name         string                 `json:"name"`
	Description  string                 `json:"description"`
	Default      bool                   `json:"default"`
	Supported    bool                   `json:"supported"`
	Unsupported  string                 `json:"unsupported_reason,omitempty"`
	Variant      *tracers.VariantChoice `json:"variant,omitempty"`
	AttachPoints []string               `json:"attach_points"`
	Streams      []streamInfo           `json:"streams"`
}

type streamInfo struct {
	tracers.Stream
	Fields []tracers.Field `json:"fields"`
}

func describeTracers(names []string) ([]tracerInfo, error) {
	if len(names) == 0 {
		names = tracers.Names()
	}
	var out []tracerInfo
	for _, n := range names {
		t, err := tracers.New(n, tracers.Options{})
		if err != nil {
			return nil, usageError("%v", err)
		}
		info := tracerInfo{
			Name:         t.Name(),
			Description:  t.Description(),
			AttachPoints: t.AttachPoints(),
			Supported:    true,
		}
		for _, d := range all.Default {
			info.Default = info.Default || d == n
		}
		if err := t.Supported(); err != nil {
			info.Supported = false
			info.Unsupported = err.Error()
		} else if ch := t.Variant(); ch.Err != nil {
			info.Supported = false
			info.Unsupported = ch.Err.Error()
		} else {
			info.Variant = &ch
		}
		for _, s := range t.Streams() {
			info.Streams = append(info.Streams, streamInfo{Stream: s, Fields: tracers.Fields(s.Event)})
		}
		out = append(out, info)
	}
	return out, nil
}

func tracersAction(c *cli.Context) error {
	infos, err := describeTracers(c.Args().Slice())
	if err != nil {
		return err
	}
	w := c.App.Writer
	if c.Bool("json") {
		return writeJSON(w, infos)
	}
	for i, t := range infos {
		if i > 0 {
			fmt.Fprintln(w)
		}
		def := ""
		if t.Default {
			def = " (default)"
		}
		fmt.Fprintf(w, "%s%s: %s\n", t.Name, def, t.Description)
		if t.Supported {
			fmt.Fprintf(w, "  supported: yes\n")
		} else {
			fmt.Fprintf(w, "  supported: no: %s\n", t.Unsupported)
		}
		if v := t.Variant; v != nil {
			fmt.Fprintf(w, "  variant:   %s", v.Name)
			if v.Note != "" {
				fmt.Fprintf(w, " (%s)", v.Note)
			}
			fmt.Fprintln(w)
			for _, p := range v.PassedOver {
				fmt.Fprintf(w, "    not %s\n", p)
			}
		}
		fmt.Fprintf(w, "  attach:    %s\n", strings.Join(t.AttachPoints, ", "))
		for _, s := range t.Streams {
			fmt.Fprintf(w, "  stream %s: %s map %s, event %s", s.Name, s.Kind, s.Map, s.EventType)
			if s.DropCounter != "" {
				fmt.Fprintf(w, ", drops in %s", s.DropCounter)
			}
			if s.EmittedCounter != "" {
				fmt.Fprintf(w, ", emitted in %s", s.EmittedCounter)
			}
			fmt.Fprintln(w)
			tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
			for _, f := range s.Fields {
				fmt.Fprintf(tw, "    %s\t%s\t%s\n", f.Name, f.Type, f.Doc)
			}
			tw.Flush()
		}
	}
	return nil
}
