package analyze

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/ebpfrec/ebpfrec/analyze/manifest"
	"github.com/ebpfrec/ebpfrec/analyze/query"
)

// TestHostileManifestRefused: an export's manifest decides which files
// DuckDB reads. One that names a file outside the folder (absolute, "..",
// a symbolic link to a file or folder outside, a pattern), a FIFO, or a
// table name that is not a plain name is refused by OpenDB with an error
// naming the manifest and the entry, and nothing outside is read. Each
// outside file is a real Parquet file of another export, which DuckDB
// would read.
func TestHostileManifestRefused(t *testing.T) {
	rec, _ := mixed(t)
	base := t.TempDir()
	outside := filepath.Join(base, "outside")
	if _, err := Export(context.Background(), rec, outside, Options{}); err != nil {
		t.Fatal(err)
	}
	secret := filepath.Join(outside, "exec.parquet")
	cases := []struct {
		name  string
		edit  func(t *testing.T, dir string, m *Manifest) // makes the export hostile
		entry string                                      // the entry the error names
		why   string
	}{
		{"absolute", func(t *testing.T, dir string, m *Manifest) { setFile(m, TableExec, secret) }, secret, "an absolute path"},
		{"dotdot", func(t *testing.T, dir string, m *Manifest) { setFile(m, TableExec, "../outside/exec.parquet") }, "../outside/exec.parquet", "leaves the export folder"},
		{"dotdot-inner", func(t *testing.T, dir string, m *Manifest) { setFile(m, TableExec, "x/../../outside/exec.parquet") }, "x/../../outside/exec.parquet", "leaves the export folder"},
		{"symlink", func(t *testing.T, dir string, m *Manifest) {
			replaceWith(t, filepath.Join(dir, "exec.parquet"), func(p string) error { return os.Symlink(secret, p) })
		}, "exec.parquet", "leads outside the export folder"},
		{"symlinked-folder", func(t *testing.T, dir string, m *Manifest) {
			must(t, os.Symlink(outside, filepath.Join(dir, "sub")))
			setFile(m, TableExec, "sub/exec.parquet")
		}, "sub/exec.parquet", "leads outside the export folder"},
		{"pattern", func(t *testing.T, dir string, m *Manifest) { setFile(m, TableExec, "../*/exec.parquet") }, "../*/exec.parquet", "export folder"},
		{"glob", func(t *testing.T, dir string, m *Manifest) { setFile(m, TableExec, "*.parquet") }, "*.parquet", "a pattern"},
		{"fifo", func(t *testing.T, dir string, m *Manifest) {
			p := filepath.Join(dir, "exec.parquet")
			replaceWith(t, p, func(p string) error { return syscall.Mkfifo(p, 0o600) })
			// Held open for writing, so that a reader opening it (the
			// fault this case is about) does not block the test.
			f, err := os.OpenFile(p, os.O_RDWR, 0)
			must(t, err)
			t.Cleanup(func() { f.Close() })
		}, "exec.parquet", "not a regular file"},
		{"sql-name", func(t *testing.T, dir string, m *Manifest) {
			m.Tables = append(m.Tables, TableFiles{Name: `exec" AS SELECT 1; DROP VIEW open; --`, Files: []string{"exec.parquet"}})
		}, `exec\" AS SELECT 1; DROP VIEW open; --`, "name"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := filepath.Join(base, "export-"+c.name) // beside outside: ../outside is there
			if _, err := Export(context.Background(), rec, dir, Options{}); err != nil {
				t.Fatal(err)
			}
			mpath := filepath.Join(dir, manifest.File)
			m, err := manifest.Read(dir)
			if err != nil {
				t.Fatal(err)
			}
			c.edit(t, dir, m)
			b, err := json.Marshal(m)
			if err != nil {
				t.Fatal(err)
			}
			must(t, os.WriteFile(mpath, b, 0o600))
			db, _, err := query.OpenDB(context.Background(), dir)
			if err == nil {
				db.Close()
				t.Fatalf("OpenDB accepted the manifest")
			}
			msg := err.Error()
			if !strings.Contains(msg, mpath) || !strings.Contains(msg, c.entry) || !strings.Contains(msg, "refused") || !strings.Contains(msg, c.why) {
				t.Errorf("error %q does not name the manifest %s, the entry %s and %q", msg, mpath, c.entry, c.why)
			}
		})
	}
}

// TestExportFolderPattern: read_parquet takes patterns, so an export
// folder named "a[b]" read the files of its neighbour "ab" (and "x*" those
// of every folder x...). Its own files are read, each pattern character
// written as a class of one; a path that also holds a backslash (DuckDB's
// escape in a pattern) is refused, naming the manifest.
func TestExportFolderPattern(t *testing.T) {
	rec, want := mixed(t)
	base := t.TempDir()
	for name, from := range map[string]string{"ab": fixture(t, "demo"), "a[b]": rec, "x": fixture(t, "demo"), "x*": rec, `c\[d]`: rec} {
		if _, err := Export(context.Background(), from, filepath.Join(base, name), Options{}); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{"a[b]", "x*"} {
		db := openDB(t, filepath.Join(base, name))
		if n := one[int](t, db, "SELECT count(*) FROM exit"); n != want.Exits {
			t.Errorf("%s: %d exits, want its own %d", name, n, want.Exits)
		}
	}
	_, _, err := query.OpenDB(context.Background(), filepath.Join(base, `c\[d]`))
	if m := filepath.Join(base, `c\[d]`, manifest.File); err == nil || !strings.Contains(err.Error(), m) || !strings.Contains(err.Error(), "backslash") {
		t.Errorf("a folder with a backslash and a [: %v; want an error naming %s", err, m)
	}
}

// setFile makes the files of table name just f.
func setFile(m *Manifest, name, f string) {
	for i := range m.Tables {
		if m.Tables[i].Name == name {
			m.Tables[i].Files = []string{f}
		}
	}
}

// replaceWith removes path and makes something else there.
func replaceWith(t *testing.T, path string, mk func(string) error) {
	t.Helper()
	must(t, os.Remove(path))
	must(t, mk(path))
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
