package exeinfo

import (
	"debug/elf"
	"fmt"
	"strconv"
	"strings"
)

// Offsets of the runtime's fields that Go probes read, for binaries
// without DWARF (-ldflags=-w). g.stack is g's first field and stack.hi
// the second word of stack in every release (the runtime's assembly
// depends on it); g.goid moves between releases. The goid offsets were
// read from the DWARF of programs built by each release, on amd64 and
// arm64 alike (go1.21.0 to go1.25.0, go1.26.8; go1.20 no longer
// downloads, and later releases are not known yet): a release not listed
// needs DWARF.
var goidOffset = map[int]uint64{
	21: 152, 22: 152, 23: 160, 24: 160, 25: 152, 26: 152,
}

// runtimeField returns the offset of a field of runtime.g or runtime.stack
// in a 64-bit Go binary built by a release listed above, or an error
// wrapping ErrNoDWARF.
func (f *File) runtimeField(typ, field string, dwarfErr error) (uint64, error) {
	if f.Go == nil || f.f.Class != elf.ELFCLASS64 {
		return 0, dwarfErr
	}
	switch typ + "." + field {
	case "runtime.g.stack":
		return 0, nil
	case "runtime.stack.hi":
		return 8, nil
	case "runtime.g.goid":
		if off, ok := goidOffset[goMinor(f.Go.Version)]; ok {
			return off, nil
		}
		return 0, fmt.Errorf("%w, and the offset of runtime.g.goid in a binary of %q is not known (build it without -w)", dwarfErr, f.Go.Version)
	}
	return 0, dwarfErr
}

// goMinor returns N of a release "go1.N[.P][rcX][ X:...]", 0 for anything
// else (a development build: "devel go1.27-abcdef ...").
func goMinor(v string) int {
	rest, ok := strings.CutPrefix(v, "go1.")
	if !ok {
		return 0
	}
	n := 0
	for n < len(rest) && rest[n] >= '0' && rest[n] <= '9' {
		n++
	}
	minor, err := strconv.Atoi(rest[:n])
	if err != nil {
		return 0
	}
	return minor
}
