package bpf

import (
	"fmt"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
)

// AttachUprobe attaches a uprobe program at offset, a file offset in the
// executable or library at path (for a symbol: its st_value minus its
// section's address plus the section's file offset; for non-PIE
// executables and shared objects alike). The link is
// "coll/prog@/path:0xOFFSET". The probe fires in every process that maps
// the file; filter by PID in the program.
//
// The program's ELF section chooses the probe: SEC("uretprobe...") makes a
// return probe, and a program loaded with attach type
// AttachTraceUprobeMulti (SEC("uprobe.multi...") / "uretprobe.multi...")
// attaches as a one-address uprobe_multi link; anything else is an entry
// uprobe.
func (m *Manager) AttachUprobe(collName, progName, path string, offset uint64) (link.Link, error) {
	return m.attachUprobe("AttachUprobe", collName, progName, path, offset, uprobeBySection)
}

// AttachUretprobe attaches a uprobe program to the return of the function
// at offset in the file at path, whatever its ELF section says (a program
// written for SEC("uprobe") reads its context alike at either end). The
// link is named as for AttachUprobe.
func (m *Manager) AttachUretprobe(collName, progName, path string, offset uint64) (link.Link, error) {
	return m.attachUprobe("AttachUretprobe", collName, progName, path, offset, uprobeReturn)
}

// uprobeMode says where attachUprobe probes: as the program's section says,
// or at the function's return or at the offset itself whatever it says.
type uprobeMode int

const (
	uprobeBySection uprobeMode = iota
	uprobeReturn
	uprobeEntry
)

// attachUprobe attaches as AttachUprobe does, with the kind of probe mode
// chooses.
func (m *Manager) attachUprobe(op, collName, progName, path string, offset uint64, mode uprobeMode) (link.Link, error) {
	if path == "" {
		return nil, fmt.Errorf("bpf: %s %s/%s: empty path: %w", op, collName, progName, ErrInvalidName)
	}
	if offset == 0 {
		return nil, fmt.Errorf("bpf: %s %s/%s: offset 0 is not a function: %w", op, collName, progName, ErrInvalidName)
	}
	point := fmt.Sprintf("%s:%#x", path, offset)
	return m.attach(op, collName, progName, point, func(p *ebpf.Program, ps *ebpf.ProgramSpec) (link.Link, error) {
		if p.Type() != ebpf.Kprobe {
			return nil, fmt.Errorf("program type %s is not a uprobe: %w", p.Type(), ErrWrongProgramType)
		}
		ex, err := link.OpenExecutable(path)
		if err != nil {
			return nil, err
		}
		sec := ""
		if ps != nil {
			sec = ps.SectionName
		}
		ret := mode == uprobeReturn || mode == uprobeBySection && strings.HasPrefix(sec, "uretprobe")
		if ps != nil && ps.AttachType == ebpf.AttachTraceUprobeMulti {
			opts := &link.UprobeMultiOptions{Addresses: []uint64{offset}}
			if ret {
				return ex.UretprobeMulti(nil, p, opts)
			}
			return ex.UprobeMulti(nil, p, opts)
		}
		// The symbol only names the tracefs event should cilium/ebpf have
		// to fall back to tracefs; the address is what counts.
		label := fmt.Sprintf("ebpfrec_%x", offset)
		opts := &link.UprobeOptions{Address: offset}
		if ret {
			return ex.Uretprobe(label, p, opts)
		}
		return ex.Uprobe(label, p, opts)
	})
}
