package filecopy

import (
	"os"
	"path/filepath"
	"testing"
)

func TestReadDir(t *testing.T) {
	dir := t.TempDir()
	sizes := []int{0, 1, 4095, 4096, 100_000}
	want := int64(0)
	for i, n := range sizes {
		if err := os.WriteFile(filepath.Join(dir, string(rune('a'+i))), make([]byte, n), 0o600); err != nil {
			t.Fatal(err)
		}
		want += int64(n)
	}
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o700); err != nil {
		t.Fatal(err)
	}
	got, err := ReadDir(dir, make([]byte, 4096))
	if err != nil || got != want {
		t.Fatalf("read %d bytes (%v), want %d", got, err, want)
	}
	if _, err := ReadDir(filepath.Join(dir, "missing"), make([]byte, 16)); err == nil {
		t.Fatal("no error for a missing folder")
	}
}
