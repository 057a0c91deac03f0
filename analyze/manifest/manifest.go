// Package manifest reads the manifest of an export folder (export.json,
// which analyze.Export writes last) and checks it: which tables an export
// holds, in which files. It is the part of an export that both the
// exporter (package analyze) and the query engine (package analyze/query,
// which links DuckDB) need, kept apart so that neither has to link the
// other's dependencies.
package manifest

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// Format is the file format of an export.
type Format string

// Formats.
const (
	FormatParquet Format = "parquet"
	FormatArrow   Format = "arrow"
)

// File is the name of the manifest in an export folder, written last: a
// folder without it is not a complete export.
const File = "export.json"

// Version is the version of the manifest this module writes; Read refuses
// a newer one.
const Version = 1

// Manifest describes a complete export; it is written last, as export.json.
type Manifest struct {
	Version     int       `json:"version"`
	Tool        string    `json:"tool"`
	Format      Format    `json:"format"`
	Partitioned bool      `json:"partitioned"`
	Recording   string    `json:"recording"`
	RecordingID string    `json:"recording_id"`
	Host        string    `json:"host"`
	Created     time.Time `json:"created"`
	// Tables lists every table with its files (relative, slash-separated).
	Tables         []TableFiles `json:"tables"`
	Batches        uint64       `json:"batches"`
	Events         uint64       `json:"events"`
	DamagedBatches uint64       `json:"damaged_batches"`
	DecodeErrors   uint64       `json:"decode_errors"`
	Warnings       []string     `json:"warnings,omitempty"`

	// paths are the real paths of Tables' files, by table and file, as
	// Read checked them (see resolve).
	paths [][]string
}

// TableFiles is one table of an export.
type TableFiles struct {
	Name  string   `json:"name"`
	Rows  uint64   `json:"rows"`
	Files []string `json:"files"`
}

// Table returns the named table, if present.
func (m *Manifest) Table(name string) (TableFiles, bool) {
	for _, t := range m.Tables {
		if t.Name == name {
			return t, true
		}
	}
	return TableFiles{}, false
}

// RealPaths returns the real paths (symbolic links resolved) of the files
// of Tables[i], as Read checked them: what a reader of the export may
// open. It is nil for a manifest that Read did not return, which nothing
// has checked.
func (m *Manifest) RealPaths(i int) []string {
	if i < 0 || i >= len(m.paths) {
		return nil
	}
	return m.paths[i]
}

// Read reads the manifest of the export in dir. It refuses a manifest
// whose table names are not plain names, or whose files are not regular
// files inside dir once symbolic links are resolved (an absolute path,
// "..", a link out of the folder, a pattern): an export may come from
// anywhere, and querying it must not read other files. The error names the
// manifest and the entry.
func Read(dir string) (*Manifest, error) {
	path := filepath.Join(dir, File)
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if m.Version > Version {
		return nil, fmt.Errorf("%s: manifest version %d is newer than this tool reads (%d)", dir, m.Version, Version)
	}
	if m.paths, err = m.resolve(dir, path); err != nil {
		return nil, err
	}
	return &m, nil
}

// IsExport reports whether dir holds a complete export.
func IsExport(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, File))
	return err == nil
}

// FindExports returns dir if it holds an export, else the exports in its
// subfolders (a fleet: one export per recording under one root), sorted.
func FindExports(dir string) ([]string, error) {
	if IsExport(dir) {
		return []string{dir}, nil
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range ents {
		if sub := filepath.Join(dir, e.Name()); e.IsDir() && IsExport(sub) {
			out = append(out, sub)
		}
	}
	return out, nil
}
