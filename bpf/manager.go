package bpf

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/rlimit"
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

// ManagerConfig holds eBPF manager configuration.
type ManagerConfig struct {
	// BTFPath is an optional path to a BTF file (e.g. from BTFHub) used as
	// the kernel's types for CO-RE relocations instead of
	// /sys/kernel/btf/vmlinux.
	BTFPath string `mapstructure:"btf_path"`
	// PinPath is the directory in bpffs for pinning BPF objects. It is
	// created (0700) when something is first pinned.
	PinPath string `mapstructure:"pin_path"`
	// LogLevel for the eBPF verifier: 0 asks for no log on success (a
	// failed load is retried with level 1 so the error still carries the
	// log), 1 the branch log, 2 the per-instruction log; 4 (stats) may be
	// ORed in. See ebpf.LogLevel.
	LogLevel int `mapstructure:"log_level"`
	// LogSize is the verifier log buffer's starting size in bytes; the
	// buffer grows as needed, so this only saves retries. 0 uses
	// cilium/ebpf's default.
	LogSize int `mapstructure:"log_size"`
	// RemoveRlimit lifts RLIMIT_MEMLOCK for BPF where the kernel still
	// charges BPF memory to it (before 5.11). On kernels with memcg
	// accounting (5.11+) it does nothing and so needs no CAP_SYS_RESOURCE.
	RemoveRlimit bool `mapstructure:"remove_rlimit"`
}

// DefaultManagerConfig returns default configuration.
func DefaultManagerConfig() ManagerConfig {
	return ManagerConfig{
		PinPath:      "/sys/fs/bpf/ebpfrec",
		LogLevel:     0,
		LogSize:      64 * 1024,
		RemoveRlimit: true,
	}
}

// ManagerStats holds manager statistics.
type ManagerStats struct {
	SpecsLoaded       int
	CollectionsLoaded int
	ProgramsLoaded    int
	LinksActive       int
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

// collEntry is a loaded collection.
type collEntry struct {
	name string
	spec *ebpf.CollectionSpec
	coll *ebpf.Collection
	maps []string // names registered in the MapManager
}

// linkEntry is an attached link.
type linkEntry struct {
	name string
	coll string
	prog string
	l    link.Link
}

// Manager manages the lifecycle of eBPF programs: specs, the collections
// loaded from them, the links attaching their programs, and closers to run
// at the end.
//
// All methods are safe for concurrent use. Everything the Manager returns
// (collections, programs, links, maps) stays owned by it: do not Close them;
// use DetachLink for a link and Stop for the rest. After Stop every method
// that would create something fails with ErrManagerStopped.
//
// Links are named "collection/program@point", where point is the kprobe
// symbol, the tracepoint "group/name" (or bare name for raw and BTF
// tracepoints), or "path:0xOFFSET" for uprobes. That name is what
// DetachLink takes and ProgramInfo.AttachPoint shows.
type Manager struct {
	cfg  ManagerConfig
	log  *slog.Logger
	st   *Metrics
	maps *MapManager

	mu      sync.Mutex
	specs   map[string]*ebpf.CollectionSpec
	colls   map[string]*collEntry
	collOrd []*collEntry
	links   map[string]*linkEntry
	linkOrd []*linkEntry
	closers []io.Closer
	started bool
	// inflight counts attachments between their start and their
	// registration; Stop waits for them.
	inflight sync.WaitGroup

	stopping bool
	stopped  chan struct{} // closed when Stop has finished
	stopErr  error
}

// NewManager creates a new eBPF program manager. With cfg.RemoveRlimit it
// calls cilium/ebpf's rlimit.RemoveMemlock, which detects at init whether
// the kernel charges BPF memory to the memory cgroup (5.11+): if so it
// changes nothing and needs no CAP_SYS_RESOURCE; only on older kernels
// does it raise RLIMIT_MEMLOCK (and fail without the capability). log and
// st may be nil.
func NewManager(cfg ManagerConfig, log *slog.Logger, st *Metrics) (*Manager, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.LogLevel < 0 || cfg.LogSize < 0 {
		return nil, fmt.Errorf("bpf: NewManager: negative LogLevel (%d) or LogSize (%d)", cfg.LogLevel, cfg.LogSize)
	}
	if cfg.RemoveRlimit {
		if err := rlimit.RemoveMemlock(); err != nil {
			return nil, fmt.Errorf("bpf: NewManager: removing the memlock rlimit (kernel without memcg accounting for BPF needs CAP_SYS_RESOURCE): %w", err)
		}
	}
	mm, err := NewMapManager(cfg.PinPath, log, st)
	if err != nil {
		return nil, err
	}
	return &Manager{
		cfg:     cfg,
		log:     log,
		st:      st,
		maps:    mm,
		specs:   make(map[string]*ebpf.CollectionSpec),
		colls:   make(map[string]*collEntry),
		links:   make(map[string]*linkEntry),
		stopped: make(chan struct{}),
	}, nil
}

// LoadSpec registers an eBPF collection spec (e.g. from a bpf2go Load
// function) under name; LoadCollection loads it. The manager keeps spec
// itself, not a copy: changes made to it before LoadCollection, such as
// spec.Variables["x"].Set(v), take effect. A name can be given only once.
func (m *Manager) LoadSpec(name string, spec *ebpf.CollectionSpec) error {
	if name == "" || strings.ContainsAny(name, "/@") {
		return fmt.Errorf("bpf: LoadSpec %q: names must be non-empty without '/' or '@': %w", name, ErrInvalidName)
	}
	if spec == nil {
		return fmt.Errorf("bpf: LoadSpec %q: nil spec: %w", name, ErrInvalidName)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.stopping {
		return fmt.Errorf("bpf: LoadSpec %q: %w", name, ErrManagerStopped)
	}
	if _, ok := m.specs[name]; ok {
		return fmt.Errorf("bpf: LoadSpec %q: %w", name, ErrAlreadyExists)
	}
	m.specs[name] = spec
	return nil
}

// LoadCollection loads the spec given to LoadSpec under name into the
// kernel and returns the collection (owned by the manager).
//
// The spec's constants and variables are applied as set on the spec.
// opts may be nil; where opts leaves them unset, the manager's config
// supplies the kernel types (BTFPath), the verifier log level (LogLevel),
// the log's starting size (LogSize) and, for maps pinned by name, the pin
// path (PinPath). When the verifier rejects a program the error wraps the
// *ebpf.VerifierError (errors.As) and its message holds the whole verifier
// log.
//
// The collection's maps are registered in MapManager() as
// "collection/map", data sections included ("collection/.rodata"); the
// MapManager does not own them: they close with the collection.
func (m *Manager) LoadCollection(name string, opts *ebpf.CollectionOptions) (*ebpf.Collection, error) {
	m.mu.Lock()
	if m.stopping {
		m.mu.Unlock()
		return nil, fmt.Errorf("bpf: LoadCollection %q: %w", name, ErrManagerStopped)
	}
	spec, ok := m.specs[name]
	if !ok {
		m.mu.Unlock()
		return nil, fmt.Errorf("bpf: LoadCollection %q: %w", name, ErrUnknownSpec)
	}
	if _, ok := m.colls[name]; ok {
		m.mu.Unlock()
		return nil, fmt.Errorf("bpf: LoadCollection %q: %w", name, ErrAlreadyExists)
	}
	m.mu.Unlock()

	var o ebpf.CollectionOptions
	if opts != nil {
		o = *opts
	}
	if o.Programs.KernelTypes == nil && m.cfg.BTFPath != "" {
		kt, err := btf.LoadSpec(m.cfg.BTFPath)
		if err != nil {
			return nil, fmt.Errorf("bpf: LoadCollection %q: loading kernel BTF from %s: %w", name, m.cfg.BTFPath, err)
		}
		o.Programs.KernelTypes = kt
	}
	if o.Programs.LogLevel == 0 {
		o.Programs.LogLevel = ebpf.LogLevel(m.cfg.LogLevel)
	}
	if o.Programs.LogSizeStart == 0 && m.cfg.LogSize > 0 {
		o.Programs.LogSizeStart = uint32(min(m.cfg.LogSize, 1<<30))
	}
	if o.Maps.PinPath == "" && m.cfg.PinPath != "" && pinsByName(spec) {
		if err := os.MkdirAll(m.cfg.PinPath, 0o700); err != nil {
			return nil, fmt.Errorf("bpf: LoadCollection %q: creating pin directory %s (is bpffs mounted?): %w", name, m.cfg.PinPath, err)
		}
		o.Maps.PinPath = m.cfg.PinPath
	}

	coll, err := ebpf.NewCollectionWithOptions(spec, o)
	if err != nil {
		return nil, loadError(name, spec, err)
	}

	e := &collEntry{name: name, spec: spec, coll: coll}
	m.mu.Lock()
	defer m.mu.Unlock()
	// Stop or a concurrent LoadCollection of the same name may have run
	// while the kernel was loading.
	if m.stopping {
		coll.Close()
		return nil, fmt.Errorf("bpf: LoadCollection %q: %w", name, ErrManagerStopped)
	}
	if _, ok := m.colls[name]; ok {
		coll.Close()
		return nil, fmt.Errorf("bpf: LoadCollection %q: %w", name, ErrAlreadyExists)
	}
	for _, mn := range sortedKeys(coll.Maps) {
		full := name + "/" + mn
		pin := ""
		if ms := spec.Maps[mn]; ms != nil && ms.Pinning == ebpf.PinByName && o.Maps.PinPath != "" {
			pin = filepath.Join(o.Maps.PinPath, ms.Name)
		}
		if err := m.maps.register(full, coll.Maps[mn], false, pin); err != nil {
			m.log.Warn("collection map not registered", "map", full, "error", err)
			continue
		}
		e.maps = append(e.maps, full)
	}
	m.colls[name] = e
	m.collOrd = append(m.collOrd, e)
	setGauge(m.st.programsGauge(), m.programsLocked())
	m.log.Debug("collection loaded", "name", name, "programs", len(coll.Programs), "maps", len(coll.Maps))
	return coll, nil
}

// loadError wraps a load failure. A verifier rejection keeps the
// *ebpf.VerifierError reachable and puts the whole log in the message.
func loadError(name string, spec *ebpf.CollectionSpec, err error) error {
	var verr *ebpf.VerifierError
	if errors.As(err, &verr) {
		return fmt.Errorf("bpf: LoadCollection %q: %w\nverifier log:\n%s", name, err, strings.Join(verr.Log, "\n"))
	}
	if errors.Is(err, os.ErrPermission) {
		for _, ps := range spec.Programs {
			if ps.Type == ebpf.Tracing && ps.AttachType != ebpf.AttachTraceRawTp && ps.AttachType != ebpf.AttachTraceIter {
				return fmt.Errorf("bpf: LoadCollection %q: %w (program %q is fentry/fexit-style tracing; a locked-down kernel refuses these)", name, err, ps.Name)
			}
		}
	}
	return fmt.Errorf("bpf: LoadCollection %q: %w", name, err)
}

func pinsByName(spec *ebpf.CollectionSpec) bool {
	for _, ms := range spec.Maps {
		if ms.Pinning != ebpf.PinNone {
			return true
		}
	}
	return false
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func (m *Manager) programsLocked() int {
	n := 0
	for _, e := range m.collOrd {
		n += len(e.coll.Programs)
	}
	return n
}

// program returns the program and its spec.
func (m *Manager) program(op, collName, progName string) (*ebpf.Program, *ebpf.ProgramSpec, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.stopping {
		return nil, nil, fmt.Errorf("bpf: %s %s/%s: %w", op, collName, progName, ErrManagerStopped)
	}
	e, ok := m.colls[collName]
	if !ok {
		return nil, nil, fmt.Errorf("bpf: %s %s/%s: %w", op, collName, progName, ErrUnknownCollection)
	}
	p, ok := e.coll.Programs[progName]
	if !ok {
		return nil, nil, fmt.Errorf("bpf: %s %s/%s: %w", op, collName, progName, ErrUnknownProgram)
	}
	return p, e.spec.Programs[progName], nil
}

// GetProgram retrieves a program of a loaded collection. It stays owned by
// the manager.
func (m *Manager) GetProgram(collName, progName string) (*ebpf.Program, error) {
	p, _, err := m.program("GetProgram", collName, progName)
	return p, err
}

// attach names and records a link made by do. The name is reserved before
// do runs, so two concurrent attachments of the same name cannot both
// succeed; on any failure nothing is left behind.
func (m *Manager) attach(op, collName, progName, point string, do func(*ebpf.Program, *ebpf.ProgramSpec) (link.Link, error)) (link.Link, error) {
	name := collName + "/" + progName + "@" + point
	prog, ps, err := m.program(op, collName, progName)
	if err != nil {
		return nil, err
	}
	e := &linkEntry{name: name, coll: collName, prog: progName}
	m.mu.Lock()
	if m.stopping {
		m.mu.Unlock()
		return nil, fmt.Errorf("bpf: %s %s: %w", op, name, ErrManagerStopped)
	}
	if _, ok := m.links[name]; ok {
		m.mu.Unlock()
		return nil, fmt.Errorf("bpf: %s: link %q: %w", op, name, ErrAlreadyExists)
	}
	m.links[name] = e // reserved; e.l is nil until attached
	// Stop waits for attachments in flight before it closes the programs
	// they use.
	m.inflight.Add(1)
	defer m.inflight.Done()
	m.mu.Unlock()

	l, err := do(prog, ps)

	m.mu.Lock()
	defer m.mu.Unlock()
	if err != nil {
		delete(m.links, name)
		return nil, fmt.Errorf("bpf: %s %s: %w", op, name, err)
	}
	if m.stopping {
		delete(m.links, name)
		l.Close()
		return nil, fmt.Errorf("bpf: %s %s: %w", op, name, ErrManagerStopped)
	}
	e.l = l
	m.linkOrd = append(m.linkOrd, e)
	setGauge(m.st.linksGauge(), len(m.linkOrd))
	m.log.Debug("attached", "link", name)
	return l, nil
}

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

// Where the kernel offers kprobes. Variables so tests could point them
// elsewhere.
var (
	kprobePMU    = "/sys/bus/event_source/devices/kprobe"
	tracefsRoots = []string{"/sys/kernel/tracing", "/sys/kernel/debug/tracing"}
)

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
	if path == "" {
		return nil, fmt.Errorf("bpf: AttachUprobe %s/%s: empty path: %w", collName, progName, ErrInvalidName)
	}
	if offset == 0 {
		return nil, fmt.Errorf("bpf: AttachUprobe %s/%s: offset 0 is not a function: %w", collName, progName, ErrInvalidName)
	}
	point := fmt.Sprintf("%s:%#x", path, offset)
	return m.attach("AttachUprobe", collName, progName, point, func(p *ebpf.Program, ps *ebpf.ProgramSpec) (link.Link, error) {
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
		ret := strings.HasPrefix(sec, "uretprobe")
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

// DetachLink detaches and closes the link of that name (see Manager for
// the naming). An unknown name gives an error wrapping ErrUnknownLink.
func (m *Manager) DetachLink(linkName string) error {
	m.mu.Lock()
	e, ok := m.links[linkName]
	if !ok || e.l == nil {
		m.mu.Unlock()
		return fmt.Errorf("bpf: DetachLink %q: %w", linkName, ErrUnknownLink)
	}
	delete(m.links, linkName)
	m.removeLinkOrdLocked(e)
	setGauge(m.st.linksGauge(), len(m.linkOrd))
	m.mu.Unlock()
	if err := e.l.Close(); err != nil {
		return fmt.Errorf("bpf: DetachLink %q: %w", linkName, err)
	}
	return nil
}

func (m *Manager) removeLinkOrdLocked(e *linkEntry) {
	for i, x := range m.linkOrd {
		if x == e {
			m.linkOrd = append(m.linkOrd[:i:i], m.linkOrd[i+1:]...)
			return
		}
	}
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

// MapManager returns the manager's map manager: maps created through it
// and the maps of every loaded collection (as "collection/map") are listed
// there. Stop closes it.
func (m *Manager) MapManager() *MapManager {
	return m.maps
}

// AddCloser adds c to be closed by Stop, after links and collections, in
// reverse order of addition. Added after Stop, c is closed at once.
func (m *Manager) AddCloser(c io.Closer) {
	if c == nil {
		return
	}
	m.mu.Lock()
	if m.stopping {
		m.mu.Unlock()
		if err := c.Close(); err != nil {
			m.log.Warn("closer added after Stop failed", "error", err)
		}
		return
	}
	m.closers = append(m.closers, c)
	m.mu.Unlock()
}

// Start ties the manager's lifetime to ctx: when ctx ends, the manager
// stops itself as Stop would. It returns at once. Calling Start again is a
// no-op; after Stop it returns ErrManagerStopped.
func (m *Manager) Start(ctx context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.stopping {
		return fmt.Errorf("bpf: Start: %w", ErrManagerStopped)
	}
	if m.started {
		return nil
	}
	m.started = true
	if ctx == nil {
		return nil
	}
	if done := ctx.Done(); done != nil {
		go func() {
			select {
			case <-done:
				if err := m.Stop(context.Background()); err != nil {
					m.log.Warn("stopping the BPF manager", "error", err)
				}
			case <-m.stopped:
			}
		}()
	}
	return nil
}

// Stop releases everything: it closes the links, then the collections,
// then the closers added with AddCloser, each in reverse order of creation,
// and finally the MapManager (maps it owns are closed; pins stay). Every
// close is attempted; the errors are joined.
//
// Stop is idempotent and safe from several goroutines: the first call does
// the work, the others wait for it and return the same result, or
// ctx.Err() if ctx ends first. The work itself is never abandoned halfway.
func (m *Manager) Stop(ctx context.Context) error {
	if ctx == nil {
		ctx = context.Background()
	}
	m.mu.Lock()
	if m.stopping {
		m.mu.Unlock()
		select {
		case <-m.stopped:
			return m.stopErr
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	m.stopping = true
	links, colls, closers := m.linkOrd, m.collOrd, m.closers
	m.linkOrd, m.collOrd, m.closers = nil, nil, nil
	m.links = make(map[string]*linkEntry)
	m.colls = make(map[string]*collEntry)
	m.specs = make(map[string]*ebpf.CollectionSpec)
	m.mu.Unlock()
	// An attachment in flight sees stopping when it finishes and closes
	// its own link; wait so that no program is closed under it.
	m.inflight.Wait()

	var errs []error
	for i := len(links) - 1; i >= 0; i-- {
		if err := links[i].l.Close(); err != nil {
			errs = append(errs, fmt.Errorf("bpf: closing link %q: %w", links[i].name, err))
		}
	}
	setGauge(m.st.linksGauge(), 0)
	for i := len(colls) - 1; i >= 0; i-- {
		for _, mn := range colls[i].maps {
			m.maps.unregister(mn)
		}
		colls[i].coll.Close()
	}
	setGauge(m.st.programsGauge(), 0)
	for i := len(closers) - 1; i >= 0; i-- {
		if err := closers[i].Close(); err != nil {
			errs = append(errs, fmt.Errorf("bpf: closer %d (%T): %w", i, closers[i], err))
		}
	}
	if err := m.maps.Close(); err != nil {
		errs = append(errs, err)
	}

	m.stopErr = errors.Join(errs...)
	close(m.stopped)
	m.log.Debug("manager stopped", "links", len(links), "collections", len(colls), "closers", len(closers))
	return m.stopErr
}

// Stats returns manager statistics.
func (m *Manager) Stats() ManagerStats {
	m.mu.Lock()
	defer m.mu.Unlock()
	return ManagerStats{
		SpecsLoaded:       len(m.specs),
		CollectionsLoaded: len(m.collOrd),
		ProgramsLoaded:    m.programsLocked(),
		LinksActive:       len(m.linkOrd),
	}
}
