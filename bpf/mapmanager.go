package bpf

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/cilium/ebpf"
)

// MapType represents the type of BPF map. The constants below cover the
// common types; ListMaps reports any other type as the lower-cased
// cilium/ebpf name of its ebpf.MapType (e.g. "stacktrace").
type MapType string

// Map types, with the seed's string values.
const (
	MapTypeHash        MapType = "hash"
	MapTypeArray       MapType = "array"
	MapTypePerfEvent   MapType = "perf_event"
	MapTypeRingbuf     MapType = "ringbuf"
	MapTypeLRUHash     MapType = "lru_hash"
	MapTypePercpuHash  MapType = "percpu_hash"
	MapTypePercpuArray MapType = "percpu_array"
	MapTypeLPMTrie     MapType = "lpm_trie"
)

// mapTypeOf names a kernel map type.
func mapTypeOf(t ebpf.MapType) MapType {
	switch t {
	case ebpf.Hash:
		return MapTypeHash
	case ebpf.Array:
		return MapTypeArray
	case ebpf.PerfEventArray:
		return MapTypePerfEvent
	case ebpf.RingBuf:
		return MapTypeRingbuf
	case ebpf.LRUHash:
		return MapTypeLRUHash
	case ebpf.PerCPUHash:
		return MapTypePercpuHash
	case ebpf.PerCPUArray:
		return MapTypePercpuArray
	case ebpf.LPMTrie:
		return MapTypeLPMTrie
	}
	return MapType(strings.ToLower(t.String()))
}

// MapSpec defines a map to be created by MapManager.CreateMap.
type MapSpec struct {
	// Name is the map's name in the manager, and its file name under the pin
	// path when Pinning is set. It must be a single path element (no '/').
	// The kernel sees at most its first 15 characters.
	Name       string
	Type       ebpf.MapType
	KeySize    uint32
	ValueSize  uint32
	MaxEntries uint32
	Flags      uint32
	// Pinning pins the map in bpffs at <pin path>/<Name>, so that it
	// outlives this process; see MapManager.CreateMap.
	Pinning bool
}

// MapInfo holds information about a BPF map.
type MapInfo struct {
	Name       string
	Type       MapType
	KeySize    uint32
	ValueSize  uint32
	MaxEntries uint32
	Flags      uint32
	// Pinned says whether the map is pinned in bpffs, and PinPath where
	// (empty if the map was registered already pinned at a path the
	// manager does not know).
	Pinned  bool
	PinPath string
}

// MapManagerStats holds map manager statistics.
type MapManagerStats struct {
	// MapsLoaded is how many maps the manager holds (created, registered,
	// loaded from a pin, or belonging to a loaded collection).
	MapsLoaded int
}

// managedMap is one map of a MapManager.
type managedMap struct {
	m *ebpf.Map
	// owned maps are closed by DeleteMap and Close. Maps of a Manager's
	// collections are not owned: their collection closes them.
	owned bool
	// pinPath is where the map is pinned, if it is.
	pinPath string
	// pinnedByUs says this manager created the pin (DeleteMap removes it).
	pinnedByUs bool
}

// MapManager manages BPF maps and their lifecycle.
//
// All methods are safe for concurrent use. Maps are addressed by name.
// Ownership: maps created by CreateMap, handed over by RegisterMap or opened
// by LoadPinnedMap belong to the manager, which closes them in DeleteMap and
// Close; callers must not Close them. Pins are different: Close never removes
// a pin (a pinned map is meant to outlive the process and be found again by
// LoadPinnedMap); DeleteMap removes a pin only if this manager created it.
type MapManager struct {
	pinPath string
	log     *slog.Logger
	st      *Metrics

	mu     sync.Mutex
	maps   map[string]*managedMap
	order  []string // creation order, for ListMaps and Close
	closed bool
}

// NewMapManager creates a map manager whose pinned maps live under pinPath
// (a directory in a bpffs mount, e.g. /sys/fs/bpf/ebpfrec). The directory is
// created, mode 0700, the first time a map is pinned; pinPath may be empty,
// in which case pinning is refused. log and st may be nil.
func NewMapManager(pinPath string, log *slog.Logger, st *Metrics) (*MapManager, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if pinPath != "" {
		pinPath = filepath.Clean(pinPath)
	}
	return &MapManager{
		pinPath: pinPath,
		log:     log,
		st:      st,
		maps:    make(map[string]*managedMap),
	}, nil
}

// PinPath returns the directory under which maps are pinned.
func (m *MapManager) PinPath() string { return m.pinPath }

// validPinName reports whether name can be a file name under the pin path.
func validPinName(name string) error {
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\x00") {
		return fmt.Errorf("bpf: map name %q: %w", name, ErrInvalidName)
	}
	return nil
}

// ensurePinDir creates the pin directory, mode 0700, and checks that it is
// on a bpffs mount.
func (m *MapManager) ensurePinDir() error {
	if m.pinPath == "" {
		return fmt.Errorf("bpf: no pin path configured: %w", ErrInvalidName)
	}
	if err := os.MkdirAll(m.pinPath, 0o700); err != nil {
		return fmt.Errorf("bpf: creating pin directory %s (is bpffs mounted? `mount -t bpf bpf /sys/fs/bpf`): %w", m.pinPath, err)
	}
	return nil
}

// CreateMap creates a new BPF map and manages it under spec.Name.
//
// With spec.Pinning the map is pinned at <pin path>/<spec.Name>. If a map is
// already pinned there (left by an earlier run), it is opened instead of
// creating a new one, provided it is compatible with spec (same type, sizes
// and flags); an incompatible pin is an error wrapping ErrIncompatiblePin. A
// pin failure is returned as an error and leaves nothing behind.
func (m *MapManager) CreateMap(spec MapSpec) (*ebpf.Map, error) {
	if err := validPinName(spec.Name); err != nil {
		return nil, err
	}
	es := &ebpf.MapSpec{
		Name:       kernelObjName(spec.Name),
		Type:       spec.Type,
		KeySize:    spec.KeySize,
		ValueSize:  spec.ValueSize,
		MaxEntries: spec.MaxEntries,
		Flags:      spec.Flags,
	}

	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, fmt.Errorf("bpf: CreateMap %q: %w", spec.Name, ErrClosed)
	}
	if _, ok := m.maps[spec.Name]; ok {
		return nil, fmt.Errorf("bpf: CreateMap %q: %w", spec.Name, ErrAlreadyExists)
	}

	mm := &managedMap{owned: true}
	if spec.Pinning {
		if err := m.ensurePinDir(); err != nil {
			return nil, err
		}
		path := filepath.Join(m.pinPath, spec.Name)
		existing, err := ebpf.LoadPinnedMap(path, nil)
		switch {
		case err == nil:
			if err := es.Compatible(existing); err != nil {
				existing.Close()
				return nil, fmt.Errorf("bpf: CreateMap %q: map pinned at %s differs from the spec (%v): %w", spec.Name, path, err, ErrIncompatiblePin)
			}
			mm.m, mm.pinPath = existing, path
			m.log.Debug("reusing pinned map", "name", spec.Name, "path", path)
		case errors.Is(err, os.ErrNotExist):
			mp, err := ebpf.NewMap(es)
			if err != nil {
				return nil, fmt.Errorf("bpf: CreateMap %q: %w", spec.Name, err)
			}
			if err := mp.Pin(path); err != nil {
				mp.Close()
				return nil, fmt.Errorf("bpf: CreateMap %q: pinning at %s: %w", spec.Name, path, err)
			}
			mm.m, mm.pinPath, mm.pinnedByUs = mp, path, true
		default:
			return nil, fmt.Errorf("bpf: CreateMap %q: opening pin %s: %w", spec.Name, path, err)
		}
	} else {
		mp, err := ebpf.NewMap(es)
		if err != nil {
			return nil, fmt.Errorf("bpf: CreateMap %q: %w", spec.Name, err)
		}
		mm.m = mp
	}
	m.addLocked(spec.Name, mm)
	return mm.m, nil
}

// kernelObjName keeps the characters the kernel accepts in object names
// (alphanumerics, '_' and '.') and at most 15 of them.
func kernelObjName(name string) string {
	b := make([]byte, 0, 15)
	for i := 0; i < len(name) && len(b) < 15; i++ {
		c := name[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.' {
			b = append(b, c)
		}
	}
	return string(b)
}

func (m *MapManager) addLocked(name string, mm *managedMap) {
	m.maps[name] = mm
	m.order = append(m.order, name)
	setGauge(m.st.mapsGauge(), len(m.maps))
}

func (m *MapManager) removeLocked(name string) {
	delete(m.maps, name)
	if i := slices.Index(m.order, name); i >= 0 {
		m.order = slices.Delete(m.order, i, i+1)
	}
	setGauge(m.st.mapsGauge(), len(m.maps))
}

// RegisterMap registers an externally created map under name. The manager
// takes ownership: DeleteMap and Close will close it. Registering a nil map,
// or a name already in use, is logged and ignored (the seed's signature has
// no error); use GetMap to check.
func (m *MapManager) RegisterMap(name string, mp *ebpf.Map) {
	if err := m.register(name, mp, true, ""); err != nil {
		m.log.Warn("RegisterMap ignored", "name", name, "error", err)
	}
}

// register adds mp under name; owned says whether the manager closes it,
// pinPath where it is pinned (if known; not by this manager).
func (m *MapManager) register(name string, mp *ebpf.Map, owned bool, pinPath string) error {
	if mp == nil {
		return fmt.Errorf("bpf: register map %q: nil map: %w", name, ErrInvalidName)
	}
	if name == "" {
		return fmt.Errorf("bpf: register map: empty name: %w", ErrInvalidName)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return fmt.Errorf("bpf: register map %q: %w", name, ErrClosed)
	}
	if _, ok := m.maps[name]; ok {
		return fmt.Errorf("bpf: register map %q: %w", name, ErrAlreadyExists)
	}
	m.addLocked(name, &managedMap{m: mp, owned: owned, pinPath: pinPath})
	return nil
}

// unregister forgets name without closing it (for maps the manager does not
// own).
func (m *MapManager) unregister(name string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if mm, ok := m.maps[name]; ok && !mm.owned {
		m.removeLocked(name)
	}
}

// GetMap retrieves a map by name. The map still belongs to the manager.
func (m *MapManager) GetMap(name string) (*ebpf.Map, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	mm, ok := m.maps[name]
	if !ok {
		return nil, false
	}
	return mm.m, true
}

func (m *MapManager) get(op, name string) (*ebpf.Map, error) {
	mp, ok := m.GetMap(name)
	if !ok {
		return nil, fmt.Errorf("bpf: %s: map %q: %w", op, name, ErrUnknownMap)
	}
	return mp, nil
}

// LookupMap looks up key in the named map and stores the result in value
// (a pointer, as for ebpf.Map.Lookup). A missing key gives an error wrapping
// ebpf.ErrKeyNotExist; an unknown map one wrapping ErrUnknownMap.
func (m *MapManager) LookupMap(name string, key, value interface{}) error {
	mp, err := m.get("LookupMap", name)
	if err != nil {
		return err
	}
	if err := mp.Lookup(key, value); err != nil {
		return fmt.Errorf("bpf: LookupMap %q: %w", name, err)
	}
	return nil
}

// UpdateMap sets key to value in the named map. flags are the kernel's
// BPF_ANY (0), BPF_NOEXIST (1), BPF_EXIST (2), as ebpf.MapUpdateFlags.
func (m *MapManager) UpdateMap(name string, key, value interface{}, flags uint64) error {
	mp, err := m.get("UpdateMap", name)
	if err != nil {
		return err
	}
	if err := mp.Update(key, value, ebpf.MapUpdateFlags(flags)); err != nil {
		return fmt.Errorf("bpf: UpdateMap %q: %w", name, err)
	}
	return nil
}

// DeleteFromMap deletes key from the named map. A missing key gives an
// error wrapping ebpf.ErrKeyNotExist.
func (m *MapManager) DeleteFromMap(name string, key interface{}) error {
	mp, err := m.get("DeleteFromMap", name)
	if err != nil {
		return err
	}
	if err := mp.Delete(key); err != nil {
		return fmt.Errorf("bpf: DeleteFromMap %q: %w", name, err)
	}
	return nil
}

// DeleteMap removes the named map from the manager and closes it. If this
// manager pinned the map (CreateMap with Pinning, on a path that had no pin
// before), the pin is removed too; pins it found (LoadPinnedMap, or a
// CreateMap that reused an existing pin) are left in place. Maps of a
// Manager's collections cannot be deleted (ErrNotOwned): they go with their
// collection.
func (m *MapManager) DeleteMap(name string) error {
	m.mu.Lock()
	mm, ok := m.maps[name]
	if !ok {
		m.mu.Unlock()
		return fmt.Errorf("bpf: DeleteMap: map %q: %w", name, ErrUnknownMap)
	}
	if !mm.owned {
		m.mu.Unlock()
		return fmt.Errorf("bpf: DeleteMap: map %q belongs to a collection: %w", name, ErrNotOwned)
	}
	m.removeLocked(name)
	m.mu.Unlock()

	var errs []error
	if mm.pinnedByUs {
		if err := mm.m.Unpin(); err != nil {
			errs = append(errs, fmt.Errorf("bpf: DeleteMap %q: unpin %s: %w", name, mm.pinPath, err))
		}
	}
	if err := mm.m.Close(); err != nil {
		errs = append(errs, fmt.Errorf("bpf: DeleteMap %q: close: %w", name, err))
	}
	return errors.Join(errs...)
}

// LoadPinnedMap opens the map pinned at <pin path>/<name> and manages it
// under name (closing it in DeleteMap/Close, never unpinning it). If name is
// already managed, the managed map is returned.
func (m *MapManager) LoadPinnedMap(name string) (*ebpf.Map, error) {
	if err := validPinName(name); err != nil {
		return nil, err
	}
	if m.pinPath == "" {
		return nil, fmt.Errorf("bpf: LoadPinnedMap %q: no pin path configured: %w", name, ErrInvalidName)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, fmt.Errorf("bpf: LoadPinnedMap %q: %w", name, ErrClosed)
	}
	if mm, ok := m.maps[name]; ok {
		return mm.m, nil
	}
	path := filepath.Join(m.pinPath, name)
	mp, err := ebpf.LoadPinnedMap(path, nil)
	if err != nil {
		return nil, fmt.Errorf("bpf: LoadPinnedMap %q from %s: %w", name, path, err)
	}
	m.addLocked(name, &managedMap{m: mp, owned: true, pinPath: path})
	return mp, nil
}

// ListMaps returns information about all managed maps, in the order they
// were added.
func (m *MapManager) ListMaps() []MapInfo {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]MapInfo, 0, len(m.order))
	for _, name := range m.order {
		mm := m.maps[name]
		info := MapInfo{
			Name:       name,
			Type:       mapTypeOf(mm.m.Type()),
			KeySize:    mm.m.KeySize(),
			ValueSize:  mm.m.ValueSize(),
			MaxEntries: mm.m.MaxEntries(),
			Flags:      mm.m.Flags(),
			Pinned:     mm.pinPath != "" || mm.m.IsPinned(),
			PinPath:    mm.pinPath,
		}
		out = append(out, info)
	}
	return out
}

// Stats returns map manager statistics.
func (m *MapManager) Stats() MapManagerStats {
	m.mu.Lock()
	defer m.mu.Unlock()
	return MapManagerStats{MapsLoaded: len(m.maps)}
}

// Close closes every map the manager owns, in reverse order of addition, and
// forgets all maps. It does NOT remove pins: a pinned map stays in bpffs and
// LoadPinnedMap finds it again. After Close, adding maps fails with
// ErrClosed. Close is idempotent and returns the joined close errors.
func (m *MapManager) Close() error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	order, maps := m.order, m.maps
	m.order, m.maps = nil, make(map[string]*managedMap)
	setGauge(m.st.mapsGauge(), 0)
	m.mu.Unlock()

	var errs []error
	for i := len(order) - 1; i >= 0; i-- {
		mm := maps[order[i]]
		if !mm.owned {
			continue
		}
		if err := mm.m.Close(); err != nil {
			errs = append(errs, fmt.Errorf("bpf: closing map %q: %w", order[i], err))
		}
	}
	return errors.Join(errs...)
}
