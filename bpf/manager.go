package bpf

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/rlimit"
)

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
