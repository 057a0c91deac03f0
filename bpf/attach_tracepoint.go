package bpf

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
)

// tracefsMounted reports whether tracefs is mounted where cilium/ebpf
// looks for it.
func tracefsMounted() bool {
	for _, root := range tracefsRoots {
		if _, err := os.Stat(filepath.Join(root, "events")); err == nil {
			return true
		}
	}
	return false
}

// AttachTracepoint attaches a tracepoint program. What it does depends on
// the program's type:
//
//   - TracePoint (SEC("tracepoint/...")): a classic tracepoint,
//     link.Tracepoint(group, name); the link is "coll/prog@group/name".
//   - RawTracepoint (SEC("raw_tp/...")): link.AttachRawTracepoint(name);
//     group is ignored and may be empty.
//   - Tracing with attach type AttachTraceRawTp (SEC("tp_btf/...")): the
//     tracepoint was fixed at load time (the spec's AttachTo), so name must
//     be empty or equal to it; link.AttachTracing.
//
// For the last two the link is "coll/prog@group/name" if group is given,
// else "coll/prog@name".
func (m *Manager) AttachTracepoint(collName, progName, group, name string) (link.Link, error) {
	point := name
	if group != "" {
		point = group + "/" + name
	}
	if name == "" {
		// tp_btf may leave the name to the spec; resolve it for the link name.
		if _, ps, err := m.program("AttachTracepoint", collName, progName); err == nil && ps != nil && ps.AttachTo != "" {
			point = ps.AttachTo
		}
	}
	if point == "" {
		return nil, fmt.Errorf("bpf: AttachTracepoint %s/%s: empty tracepoint name: %w", collName, progName, ErrInvalidName)
	}
	return m.attach("AttachTracepoint", collName, progName, point, func(p *ebpf.Program, ps *ebpf.ProgramSpec) (link.Link, error) {
		switch p.Type() {
		case ebpf.TracePoint:
			if group == "" || name == "" {
				return nil, fmt.Errorf("a tracepoint needs a group and a name: %w", ErrInvalidName)
			}
			l, err := link.Tracepoint(group, name, p, nil)
			if err != nil && !tracefsMounted() {
				err = fmt.Errorf("%w (tracefs is not mounted: `mount -t tracefs tracefs /sys/kernel/tracing`)", err)
			}
			return l, err
		case ebpf.RawTracepoint, ebpf.RawTracepointWritable:
			if name == "" {
				return nil, fmt.Errorf("a raw tracepoint needs a name: %w", ErrInvalidName)
			}
			return link.AttachRawTracepoint(link.RawTracepointOptions{Name: name, Program: p})
		case ebpf.Tracing:
			if ps == nil || ps.AttachType != ebpf.AttachTraceRawTp {
				return nil, fmt.Errorf("tracing program is not tp_btf: %w", ErrWrongProgramType)
			}
			if name != "" && ps.AttachTo != name {
				return nil, fmt.Errorf("tp_btf program was loaded for %q, not %q: %w", ps.AttachTo, name, ErrWrongProgramType)
			}
			return link.AttachTracing(link.TracingOptions{Program: p, AttachType: ebpf.AttachTraceRawTp})
		}
		return nil, fmt.Errorf("program type %s is not a tracepoint: %w", p.Type(), ErrWrongProgramType)
	})
}
