package bpf

import (
	"strings"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// ProgramType represents the type of eBPF program as ListPrograms reports
// it. The kernel knows kprobe, kretprobe, uprobe and uretprobe programs all
// as BPF_PROG_TYPE_KPROBE; the manager tells them apart by the program's ELF
// section (SEC("uretprobe/...") and so on).
type ProgramType string

// Program types, with the seed's string values. ProgramTracing is this
// project's addition, for BPF_PROG_TYPE_TRACING programs other than tp_btf
// (which reports as ProgramRawTracepoint) and iterators (ProgramIter). Other
// kernel types report as the lower-cased cilium/ebpf name of the type.
const (
	ProgramKprobe        ProgramType = "kprobe"
	ProgramKretprobe     ProgramType = "kretprobe"
	ProgramUprobe        ProgramType = "uprobe"
	ProgramUretprobe     ProgramType = "uretprobe"
	ProgramTracepoint    ProgramType = "tracepoint"
	ProgramRawTracepoint ProgramType = "raw_tracepoint"
	ProgramPerfEvent     ProgramType = "perf_event"
	ProgramSocketFilter  ProgramType = "socket_filter"
	ProgramTC            ProgramType = "tc"
	ProgramXDP           ProgramType = "xdp"
	ProgramIter          ProgramType = "iter"
	ProgramTracing       ProgramType = "tracing"
)

// programTypeOf names a program of kernel type t whose spec is ps (may be nil).
func programTypeOf(t ebpf.ProgramType, ps *ebpf.ProgramSpec) ProgramType {
	switch t {
	case ebpf.Kprobe:
		sec := ""
		if ps != nil {
			sec = ps.SectionName
		}
		switch {
		case strings.HasPrefix(sec, "kretprobe"), strings.HasPrefix(sec, "kretsyscall"):
			return ProgramKretprobe
		case strings.HasPrefix(sec, "uretprobe"):
			return ProgramUretprobe
		case strings.HasPrefix(sec, "uprobe"):
			return ProgramUprobe
		}
		return ProgramKprobe
	case ebpf.TracePoint:
		return ProgramTracepoint
	case ebpf.RawTracepoint, ebpf.RawTracepointWritable:
		return ProgramRawTracepoint
	case ebpf.PerfEvent:
		return ProgramPerfEvent
	case ebpf.SocketFilter:
		return ProgramSocketFilter
	case ebpf.SchedCLS, ebpf.SchedACT:
		return ProgramTC
	case ebpf.XDP:
		return ProgramXDP
	case ebpf.Tracing:
		if ps != nil {
			switch ps.AttachType {
			case ebpf.AttachTraceRawTp:
				return ProgramRawTracepoint
			case ebpf.AttachTraceIter:
				return ProgramIter
			}
		}
		return ProgramTracing
	}
	return ProgramType(strings.ToLower(t.String()))
}

// ProgramInfo holds information about a loaded eBPF program.
type ProgramInfo struct {
	// Name is "collection/program", the names GetProgram takes (the
	// kernel's own name for the program is truncated to 15 characters).
	Name string
	// Type is from the kernel's program info, refined by the ELF section
	// for the kprobe family (see ProgramType).
	Type ProgramType
	// Tag is the kernel's tag of the program (hex SHA of its instructions).
	Tag string
	// ID is the kernel's program ID.
	ID uint32
	// LoadedAt is when the kernel loaded the program.
	LoadedAt time.Time
	// AttachPoint is the name of the program's link, as DetachLink takes
	// it ("coll/prog@group/name", ...); if the program has several links,
	// their names joined by ", " in attach order; empty if not attached.
	AttachPoint string
}

// ListPrograms returns information about all loaded programs, by
// collection in load order and by program name within one. Type, Tag, ID
// and LoadedAt come from the kernel's own program info; a program whose
// info cannot be read is listed with what the manager knows.
func (m *Manager) ListPrograms() []ProgramInfo {
	m.mu.Lock()
	type item struct {
		name   string
		prog   *ebpf.Program
		spec   *ebpf.ProgramSpec
		points []string
	}
	var items []item
	for _, e := range m.collOrd {
		for _, pn := range sortedKeys(e.coll.Programs) {
			items = append(items, item{name: e.name + "/" + pn, prog: e.coll.Programs[pn], spec: e.spec.Programs[pn]})
		}
	}
	for _, l := range m.linkOrd {
		full := l.coll + "/" + l.prog
		for i := range items {
			if items[i].name == full {
				items[i].points = append(items[i].points, l.name)
			}
		}
	}
	// Read the info while holding the lock, so Stop cannot close the
	// programs underneath; it is a cheap syscall.
	defer m.mu.Unlock()

	now := time.Now()
	boot := bootTime(now)
	out := make([]ProgramInfo, 0, len(items))
	for _, it := range items {
		pi := ProgramInfo{
			Name:        it.name,
			Type:        programTypeOf(it.prog.Type(), it.spec),
			AttachPoint: strings.Join(it.points, ", "),
		}
		if info, err := it.prog.Info(); err == nil {
			pi.Type = programTypeOf(info.Type, it.spec)
			pi.Tag = info.Tag
			if id, ok := info.ID(); ok {
				pi.ID = uint32(id)
			}
			if lt, ok := info.LoadTime(); ok && !boot.IsZero() {
				pi.LoadedAt = boot.Add(lt)
			}
		} else {
			m.log.Debug("program info unavailable", "program", it.name, "error", err)
		}
		out = append(out, pi)
	}
	return out
}

// bootTime returns the wall-clock time of boot as CLOCK_BOOTTIME counts it
// (the clock of the kernel's program load times), or zero.
func bootTime(now time.Time) time.Time {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts); err != nil {
		return time.Time{}
	}
	return now.Add(-time.Duration(ts.Nano())).Round(0)
}
