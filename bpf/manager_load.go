package bpf

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
)

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
