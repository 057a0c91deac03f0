package manifest

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// An export folder can come from anywhere (copied from another machine,
// unpacked from an archive), and its manifest says which files DuckDB
// reads. resolve makes sure that it names only files of the folder itself:
// query must not read outside it (a manifest naming /etc/shadow, a path
// with "..", a link to another folder), nor hand DuckDB a pattern, nor
// block on a FIFO.

// globChars are the characters of a pattern (DuckDB's read_parquet expands
// *, ? and [...]; braces and backslashes are refused too): no file name in
// an export's manifest has them (partition values are URL-escaped).
const globChars = "*?[]{}\\"

// resolve checks every table name and file of m, the manifest read from
// the file manifest in dir, and returns each file's real path (symbolic
// links resolved), by table and file index: what a reader of the export
// opens (DuckDB, for query). The error names the manifest, the table and
// the file.
func (m *Manifest) resolve(dir, manifest string) ([][]string, error) {
	root, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return nil, err
	}
	if root, err = filepath.Abs(root); err != nil {
		return nil, err
	}
	paths := make([][]string, len(m.Tables))
	for i, t := range m.Tables {
		if !plainName(t.Name) {
			return nil, fmt.Errorf("%s: table %d: name %q refused: a table name is lowercase letters, digits and _", manifest, i+1, t.Name)
		}
		for _, f := range t.Files {
			p, err := resolveFile(root, f)
			if err != nil {
				return nil, fmt.Errorf("%s: table %s: file %q refused: %v", manifest, t.Name, f, err)
			}
			paths[i] = append(paths[i], p)
		}
	}
	return paths, nil
}

// plainName says whether s is a name of the form export writes (exec,
// recording): it then needs no quoting in SQL, whatever a later version
// adds.
func plainName(s string) bool {
	if s == "" || s[0] < 'a' || s[0] > 'z' {
		return false
	}
	for _, c := range []byte(s) {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// resolveFile checks one file name of a manifest (relative, slash
// separated) and returns its real path, which must be a regular file in
// root (itself a real path).
func resolveFile(root, f string) (string, error) {
	switch {
	case f == "":
		return "", fmt.Errorf("empty")
	case strings.HasPrefix(f, "/"):
		return "", fmt.Errorf("an absolute path: a table's files are inside the export folder")
	case !filepath.IsLocal(filepath.FromSlash(f)):
		return "", fmt.Errorf("it leaves the export folder (..)")
	case strings.ContainsAny(f, globChars):
		return "", fmt.Errorf("it holds one of %s, which DuckDB reads as a pattern", globChars)
	case strings.ContainsFunc(f, func(r rune) bool { return r < 0x20 || r == 0x7f }):
		return "", fmt.Errorf("it holds a control character")
	}
	real, err := filepath.EvalSymlinks(filepath.Join(root, filepath.FromSlash(f)))
	if err != nil {
		return "", err
	}
	if rel, err := filepath.Rel(root, real); err != nil || !filepath.IsLocal(rel) {
		return "", fmt.Errorf("it leads outside the export folder, to %s (through a symbolic link)", real)
	}
	st, err := os.Lstat(real)
	if err != nil {
		return "", err
	}
	if !st.Mode().IsRegular() {
		return "", fmt.Errorf("not a regular file (%s)", st.Mode().Type())
	}
	return real, nil
}
