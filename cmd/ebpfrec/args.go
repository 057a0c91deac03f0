package main

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/urfave/cli/v2"
)

// size is a byte count given with an optional unit, for flags such as
// --segment-size 64MiB: K, M, G, T and KiB, MiB, GiB, TiB are powers of
// 1024 (as dd reads them), KB, MB, GB, TB powers of 1000, B or nothing
// bytes. The unit is case-insensitive.
type size int64

func (s *size) Set(v string) error {
	n, err := parseSize(v)
	if err != nil {
		return err
	}
	*s = size(n)
	return nil
}

func (s *size) String() string {
	if s == nil || *s == 0 {
		return "0"
	}
	return strconv.FormatInt(int64(*s), 10)
}

// parseSize parses a size (see size).
func parseSize(v string) (int64, error) {
	t := strings.TrimSpace(v)
	i := 0
	for i < len(t) && (t[i] >= '0' && t[i] <= '9' || t[i] == '.') {
		i++
	}
	num, unit := t[:i], strings.ToLower(strings.TrimSpace(t[i:]))
	mult := map[string]float64{"": 1, "b": 1,
		"k": 1 << 10, "kib": 1 << 10, "m": 1 << 20, "mib": 1 << 20, "g": 1 << 30, "gib": 1 << 30, "t": 1 << 40, "tib": 1 << 40,
		"kb": 1e3, "mb": 1e6, "gb": 1e9, "tb": 1e12}[unit]
	f, err := strconv.ParseFloat(num, 64)
	if num == "" || err != nil || mult == 0 {
		return 0, fmt.Errorf("%q: want a size such as 4096, 64MiB, 1G or 500MB", v)
	}
	n := f * mult
	if n > math.MaxInt64 || n != math.Trunc(n) {
		return 0, fmt.Errorf("%q: not a whole number of bytes that fits", v)
	}
	return int64(n), nil
}

// sizeFlag is a flag holding a size.
func sizeFlag(name string, value int64, usage string) *cli.GenericFlag {
	s := size(value)
	sizeDefaults = append(sizeDefaults, sizeDefault{&s, value})
	return &cli.GenericFlag{Name: name, Value: &s, Usage: usage + " (units: 64MiB, 1G, 500MB)"}
}

// sizeDefaults lets newApp reset the size flags: a generic flag's value
// lives in the flag, which the commands registered once share between
// runs of the app (the tests run many).
var sizeDefaults []sizeDefault

type sizeDefault struct {
	v   *size
	def int64
}

func resetSizeFlags() {
	for _, d := range sizeDefaults {
		*d.v = size(d.def)
	}
}

// sizeOf returns the value of a size flag.
func sizeOf(c *cli.Context, name string) int64 {
	if s, ok := c.Generic(name).(*size); ok && s != nil {
		return int64(*s)
	}
	return 0
}

// flagsFirst moves the flags that follow a command's positional arguments
// before them (ebpfrec replay REC --format json), since the flag parser
// stops at the first argument that is not a flag. It leaves alone what
// follows "--", and the commands whose arguments are a command line of
// their own (record COMMAND ...).
func flagsFirst(app *cli.App, args []string) []string {
	if len(args) < 3 {
		return args
	}
	var cmd *cli.Command
	for _, c := range app.Commands {
		if c.HasName(args[1]) {
			cmd = c
		}
	}
	if cmd == nil || cmd.Name == "record" {
		return args
	}
	takesValue := map[string]bool{}
	for _, f := range cmd.Flags {
		_, isBool := f.(*cli.BoolFlag)
		for _, n := range f.Names() {
			takesValue[n] = !isBool
		}
	}
	var flags, pos []string
	rest := args[2:]
	for i := 0; i < len(rest); i++ {
		a := rest[i]
		if a == "--" {
			pos = append(pos, rest[i:]...)
			break
		}
		if len(a) < 2 || a[0] != '-' {
			pos = append(pos, a)
			continue
		}
		flags = append(flags, a)
		name, _, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if takesValue[name] && !hasValue && i+1 < len(rest) {
			i++
			flags = append(flags, rest[i])
		}
	}
	out := append([]string{args[0], args[1]}, flags...)
	return append(out, pos...)
}
