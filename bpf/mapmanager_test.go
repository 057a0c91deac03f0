package bpf

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/cilium/ebpf"

	"github.com/ebpfrec/ebpfrec/internal/kerneltest"
)

// testPinPath returns a pin directory private to the test, removed (with
// anything left in it) at the end.
func testPinPath(t *testing.T) string {
	t.Helper()
	dir := filepath.Join("/sys/fs/bpf", fmt.Sprintf("ebpfrec-mm-%d-%s", os.Getpid(), t.Name()))
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func TestMapManagerCRUD(t *testing.T) {
	kerneltest.Require(t)
	mm, err := NewMapManager(testPinPath(t), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer mm.Close()

	if _, err := mm.CreateMap(MapSpec{Name: "h", Type: ebpf.Hash, KeySize: 4, ValueSize: 8, MaxEntries: 16}); err != nil {
		t.Fatal(err)
	}
	if _, err := mm.CreateMap(MapSpec{Name: "h", Type: ebpf.Hash, KeySize: 4, ValueSize: 8, MaxEntries: 16}); !errors.Is(err, ErrAlreadyExists) {
		t.Errorf("duplicate CreateMap: %v", err)
	}
	if err := mm.UpdateMap("h", uint32(7), uint64(42), uint64(ebpf.UpdateNoExist)); err != nil {
		t.Fatal(err)
	}
	if err := mm.UpdateMap("h", uint32(7), uint64(43), uint64(ebpf.UpdateNoExist)); !errors.Is(err, ebpf.ErrKeyExist) {
		t.Errorf("UpdateNoExist on an existing key: %v", err)
	}
	var v uint64
	if err := mm.LookupMap("h", uint32(7), &v); err != nil || v != 42 {
		t.Errorf("LookupMap = %d, %v", v, err)
	}
	if err := mm.DeleteFromMap("h", uint32(7)); err != nil {
		t.Fatal(err)
	}
	if err := mm.LookupMap("h", uint32(7), &v); !errors.Is(err, ebpf.ErrKeyNotExist) {
		t.Errorf("lookup of a deleted key: %v", err)
	}
	if err := mm.LookupMap("nope", uint32(7), &v); !errors.Is(err, ErrUnknownMap) {
		t.Errorf("lookup in an unknown map: %v", err)
	}

	ext, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.PerCPUArray, KeySize: 4, ValueSize: 8, MaxEntries: 1})
	if err != nil {
		t.Fatal(err)
	}
	mm.RegisterMap("ext", ext)
	if got, ok := mm.GetMap("ext"); !ok || got != ext {
		t.Errorf("GetMap(ext) = %v, %v", got, ok)
	}
	mm.RegisterMap("ext", ext) // ignored: name in use
	if _, err := mm.CreateMap(MapSpec{Name: "rb", Type: ebpf.RingBuf, MaxEntries: 4096}); err != nil {
		t.Fatal(err)
	}

	infos := mm.ListMaps()
	want := []MapInfo{
		{Name: "h", Type: MapTypeHash, KeySize: 4, ValueSize: 8, MaxEntries: 16, Flags: infos[0].Flags},
		{Name: "ext", Type: MapTypePercpuArray, KeySize: 4, ValueSize: 8, MaxEntries: 1, Flags: infos[1].Flags},
		{Name: "rb", Type: MapTypeRingbuf, MaxEntries: 4096, Flags: infos[2].Flags},
	}
	if fmt.Sprint(infos) != fmt.Sprint(want) {
		t.Errorf("ListMaps:\n got %+v\nwant %+v", infos, want)
	}
	if s := mm.Stats(); s.MapsLoaded != 3 {
		t.Errorf("Stats = %+v", s)
	}
	if err := mm.DeleteMap("ext"); err != nil {
		t.Fatal(err)
	}
	if _, ok := mm.GetMap("ext"); ok {
		t.Error("ext still managed after DeleteMap")
	}
	if err := ext.Update(uint32(0), []uint64{1}, 0); err == nil {
		t.Error("DeleteMap did not close the registered map")
	}
	if err := mm.DeleteMap("ext"); !errors.Is(err, ErrUnknownMap) {
		t.Errorf("second DeleteMap: %v", err)
	}

	for _, bad := range []string{"", ".", "..", "a/b"} {
		if _, err := mm.CreateMap(MapSpec{Name: bad, Type: ebpf.Array, KeySize: 4, ValueSize: 4, MaxEntries: 1}); !errors.Is(err, ErrInvalidName) {
			t.Errorf("CreateMap(%q): %v, want ErrInvalidName", bad, err)
		}
	}

	if err := mm.Close(); err != nil {
		t.Fatal(err)
	}
	if err := mm.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := mm.CreateMap(MapSpec{Name: "late", Type: ebpf.Array, KeySize: 4, ValueSize: 4, MaxEntries: 1}); !errors.Is(err, ErrClosed) {
		t.Errorf("CreateMap after Close: %v", err)
	}
}

func TestMapManagerPinning(t *testing.T) {
	kerneltest.Require(t)
	dir := testPinPath(t)
	mm, err := NewMapManager(dir, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	spec := MapSpec{Name: "pinned_counts", Type: ebpf.Array, KeySize: 4, ValueSize: 8, MaxEntries: 4, Pinning: true}
	if _, err := mm.CreateMap(spec); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("pin directory: %v, %v; want mode 0700", fi, err)
	}
	if err := mm.UpdateMap("pinned_counts", uint32(3), uint64(1234), 0); err != nil {
		t.Fatal(err)
	}
	infos := mm.ListMaps()
	pin := filepath.Join(dir, "pinned_counts")
	if len(infos) != 1 || !infos[0].Pinned || infos[0].PinPath != pin {
		t.Errorf("ListMaps = %+v", infos)
	}
	if err := mm.Close(); err != nil {
		t.Fatal(err)
	}

	// The pin survives Close; a new manager finds the map and its contents.
	if _, err := os.Stat(pin); err != nil {
		t.Fatalf("pin gone after Close: %v", err)
	}
	mm2, err := NewMapManager(dir, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer mm2.Close()
	if _, err := mm2.LoadPinnedMap("pinned_counts"); err != nil {
		t.Fatal(err)
	}
	var v uint64
	if err := mm2.LookupMap("pinned_counts", uint32(3), &v); err != nil || v != 1234 {
		t.Errorf("value after reload = %d, %v; want 1234", v, err)
	}
	// LoadPinnedMap's map is not ours to unpin: DeleteMap leaves the pin.
	if err := mm2.DeleteMap("pinned_counts"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(pin); err != nil {
		t.Errorf("DeleteMap removed a pin it did not create: %v", err)
	}

	// CreateMap on an existing compatible pin reuses it (and keeps the
	// data); an incompatible one is refused.
	mp, err := mm2.CreateMap(spec)
	if err != nil {
		t.Fatal(err)
	}
	if err := mp.Lookup(uint32(3), &v); err != nil || v != 1234 {
		t.Errorf("reused pin value = %d, %v", v, err)
	}
	bad := spec
	bad.Name, bad.ValueSize = "pinned_other", 4
	if _, err := mm2.CreateMap(MapSpec{Name: "pinned_other", Type: ebpf.Array, KeySize: 4, ValueSize: 8, MaxEntries: 4, Pinning: true}); err != nil {
		t.Fatal(err)
	}
	if err := mm2.DeleteMap("pinned_other"); err != nil { // ours: unpinned
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "pinned_other")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("DeleteMap left its own pin: %v", err)
	}
	if _, err := mm2.CreateMap(MapSpec{Name: "pinned_other", Type: ebpf.Array, KeySize: 4, ValueSize: 8, MaxEntries: 4, Pinning: true}); err != nil {
		t.Fatal(err)
	}
	mm3, _ := NewMapManager(dir, nil, nil)
	defer mm3.Close()
	if _, err := mm3.CreateMap(bad); !errors.Is(err, ErrIncompatiblePin) {
		t.Errorf("incompatible pin: %v, want ErrIncompatiblePin", err)
	}

	// Clean up: unpin through a map loaded from the pin.
	if err := mp.Unpin(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(pin); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("pin still there after Unpin: %v", err)
	}
}

func TestMapManagerPinFailure(t *testing.T) {
	kerneltest.Require(t)
	// A pin path outside bpffs: pinning fails, and says so.
	dir := t.TempDir()
	mm, err := NewMapManager(dir, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer mm.Close()
	_, err = mm.CreateMap(MapSpec{Name: "p", Type: ebpf.Array, KeySize: 4, ValueSize: 4, MaxEntries: 1, Pinning: true})
	if err == nil {
		t.Fatal("pinning outside bpffs worked")
	}
	t.Log(err)
	if s := mm.Stats(); s.MapsLoaded != 0 {
		t.Errorf("failed CreateMap left a map: %+v", s)
	}
}

func TestManagerMapsListed(t *testing.T) {
	m := newTestManager(t)
	loadTestColl(t, m, "ml")
	if _, err := m.MapManager().CreateMap(MapSpec{Name: "own", Type: ebpf.Hash, KeySize: 4, ValueSize: 4, MaxEntries: 2}); err != nil {
		t.Fatal(err)
	}
	got := make(map[string]MapType)
	for _, mi := range m.MapManager().ListMaps() {
		got[mi.Name] = mi.Type
	}
	want := map[string]MapType{
		"ml/counters": MapTypeArray, "ml/events_rb": MapTypeRingbuf, "ml/events_perf": MapTypePerfEvent,
		"ml/rb_drops": MapTypePercpuArray, "own": MapTypeHash,
	}
	for name, typ := range want {
		if got[name] != typ {
			t.Errorf("map %s: type %q, want %q (all: %v)", name, got[name], typ, got)
		}
	}
	if err := m.MapManager().DeleteMap("ml/counters"); !errors.Is(err, ErrNotOwned) {
		t.Errorf("DeleteMap of a collection map: %v, want ErrNotOwned", err)
	}
}
