package bpf

import (
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
)

// AttachTracing attaches a BPF_PROG_TYPE_TRACING program (fentry, fexit,
// fmod_ret, tp_btf) to the kernel function or tracepoint it was loaded for
// (the spec's AttachTo); the link is "coll/prog@AttachTo". This is an
// addition to the seed's API. On kernels that refuse fentry/fexit (locked
// down, as on this project's CI) LoadCollection already fails with EPERM.
func (m *Manager) AttachTracing(collName, progName string) (link.Link, error) {
	_, ps, err := m.program("AttachTracing", collName, progName)
	if err != nil {
		return nil, err
	}
	point := "?"
	if ps != nil && ps.AttachTo != "" {
		point = ps.AttachTo
	}
	return m.attach("AttachTracing", collName, progName, point, func(p *ebpf.Program, ps *ebpf.ProgramSpec) (link.Link, error) {
		if p.Type() != ebpf.Tracing {
			return nil, fmt.Errorf("program type %s is not tracing: %w", p.Type(), ErrWrongProgramType)
		}
		at := ebpf.AttachNone
		if ps != nil {
			at = ps.AttachType
		}
		return link.AttachTracing(link.TracingOptions{Program: p, AttachType: at})
	})
}
