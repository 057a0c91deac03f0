package bpf

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
)

// Where the kernel offers kprobes. Variables so tests could point them
// elsewhere.
var (
	kprobePMU    = "/sys/bus/event_source/devices/kprobe"
	tracefsRoots = []string{"/sys/kernel/tracing", "/sys/kernel/debug/tracing"}
)

// AttachKprobe attaches a kprobe program to the entry of a kernel function.
// The link is named "coll/prog@symbol".
//
// On a kernel without kprobes (neither the perf_kprobe PMU nor tracefs
// kprobe_events exists, as on this project's CI kernel) it fails, without
// opening anything, with an error for which errors.Is(err,
// ebpf.ErrNotSupported) holds.
func (m *Manager) AttachKprobe(collName, progName, symbol string) (link.Link, error) {
	return m.attachKprobe("AttachKprobe", collName, progName, symbol, false)
}

// AttachKretprobe attaches a kprobe program to the return of a kernel
// function. The link is named "coll/prog@symbol"; errors are as for
// AttachKprobe.
func (m *Manager) AttachKretprobe(collName, progName, symbol string) (link.Link, error) {
	return m.attachKprobe("AttachKretprobe", collName, progName, symbol, true)
}

func (m *Manager) attachKprobe(op, collName, progName, symbol string, ret bool) (link.Link, error) {
	if symbol == "" {
		return nil, fmt.Errorf("bpf: %s %s/%s: empty symbol: %w", op, collName, progName, ErrInvalidName)
	}
	return m.attach(op, collName, progName, symbol, func(p *ebpf.Program, _ *ebpf.ProgramSpec) (link.Link, error) {
		if p.Type() != ebpf.Kprobe {
			return nil, fmt.Errorf("program type %s is not a kprobe: %w", p.Type(), ErrWrongProgramType)
		}
		if err := kprobesAvailable(); err != nil {
			return nil, err
		}
		if ret {
			return link.Kretprobe(symbol, p, nil)
		}
		return link.Kprobe(symbol, p, nil)
	})
}

// kprobesAvailable tells, before anything is opened, whether the kernel can
// create kprobes the way cilium/ebpf does (perf_kprobe PMU, else tracefs
// kprobe_events). cilium/ebpf itself reports a missing PMU as
// ErrNotSupported but then falls back to tracefs and reports the missing
// kprobe_events file as os.ErrNotExist, which callers cannot tell from a
// missing symbol; hence this check.
func kprobesAvailable() error {
	if _, err := os.Stat(kprobePMU); err == nil {
		return nil
	}
	for _, root := range tracefsRoots {
		if _, err := os.Stat(filepath.Join(root, "kprobe_events")); err == nil {
			return nil
		}
	}
	if !tracefsMounted() {
		return fmt.Errorf("the kernel most likely has no kprobes: no perf_kprobe PMU at %s, and tracefs is not mounted to look for kprobe_events (`mount -t tracefs tracefs /sys/kernel/tracing`): %w", kprobePMU, ebpf.ErrNotSupported)
	}
	return fmt.Errorf("this kernel has no kprobes (built without CONFIG_KPROBE_EVENTS: no perf_kprobe PMU at %s and no kprobe_events in tracefs); use tracepoints, raw tracepoints or uprobes: %w", kprobePMU, ebpf.ErrNotSupported)
}
