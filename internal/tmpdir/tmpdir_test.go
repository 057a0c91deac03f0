package tmpdir

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// TestRemoveStale: a held folder (and its held companion) stays; once
// released, RemoveStale removes it; names not of the prefix's form, links
// and files are never touched. (flock locks belong to an open file, so a
// second open in this process contends like another process: the tests of
// export and query kill real processes.)
func TestRemoveStale(t *testing.T) {
	parent := t.TempDir()
	const prefix = ".out.tmp-"
	held, err := New(parent, prefix)
	if err != nil {
		t.Fatal(err)
	}
	stale, err := New(parent, prefix)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(stale.Path, "exec.parquet"), []byte("half"), 0o600); err != nil {
		t.Fatal(err)
	}
	stale.Release() // as if its process had died
	old := held.CompanionPath()
	if err := os.Mkdir(old, 0o700); err != nil {
		t.Fatal(err)
	}
	oldHeld, err := Hold(old)
	if err != nil || oldHeld == nil {
		t.Fatalf("Hold: %v %v", oldHeld, err)
	}
	staleOld := filepath.Join(parent, prefix+"77"+Companion)
	others := []string{prefix + "12x", prefix, ".other.tmp-12", prefix + "12.new"}
	for _, n := range append(others, filepath.Base(staleOld)) {
		if err := os.Mkdir(filepath.Join(parent, n), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(t.TempDir(), filepath.Join(parent, prefix+"13")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(parent, prefix+"14"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	removed, err := RemoveStale(parent, prefix)
	slices.Sort(removed)
	want := []string{stale.Path, staleOld}
	slices.Sort(want)
	if err != nil || !slices.Equal(removed, want) {
		t.Fatalf("RemoveStale removed %v (%v), want %v", removed, err, want)
	}
	for _, p := range append([]string{held.Path, old}, others...) {
		if !filepath.IsAbs(p) {
			p = filepath.Join(parent, p)
		}
		if _, err := os.Stat(p); err != nil {
			t.Errorf("%s: %v", p, err)
		}
	}
	// Released: stale.
	held.Release()
	oldHeld.Release()
	removed, err = RemoveStale(parent, prefix)
	slices.Sort(removed)
	if want := []string{held.Path, old}; err != nil || !slices.Equal(removed, want) {
		t.Fatalf("after release RemoveStale removed %v (%v), want %v", removed, err, want)
	}
	// Remove removes a held folder.
	d, err := New(parent, prefix)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Remove(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(d.Path); !os.IsNotExist(err) {
		t.Errorf("Remove left %s: %v", d.Path, err)
	}
}
