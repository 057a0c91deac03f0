package analyze

// Publishing an export: the output checked, the manifest written last,
// the folder renamed into place and made durable.

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ebpfrec/ebpfrec/analyze/manifest"
	"github.com/ebpfrec/ebpfrec/internal/tmpdir"
)

// checkOutput refuses an output folder that holds an export (without
// force) or anything else, or that is the recording itself.
func checkOutput(dir, out string, force bool) error {
	if out == "" {
		// Abs would make it the working directory, and the rename at
		// the end would fail as if the folder had appeared meanwhile.
		return fmt.Errorf("export: %w (give the folder to write the tables into)", ErrNoOutput)
	}
	ad, err1 := filepath.Abs(dir)
	ao, err2 := filepath.Abs(out)
	if err1 == nil && err2 == nil {
		if ad == ao || strings.HasPrefix(ao, ad+string(filepath.Separator)) {
			return fmt.Errorf("export: %w: %s is inside the recording %s", ErrExists, out, dir)
		}
	}
	st, err := os.Stat(out)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("export: %w", err)
	}
	if !st.IsDir() {
		return fmt.Errorf("export: %w: %s is a file", ErrExists, out)
	}
	if manifest.IsExport(out) {
		if force {
			return nil
		}
		return fmt.Errorf("export: %w: %s already holds an export (Options.Force, --force, replaces it)", ErrExists, out)
	}
	ents, err := os.ReadDir(out)
	if err != nil {
		return fmt.Errorf("export: %w", err)
	}
	if len(ents) > 0 {
		return fmt.Errorf("export: %w: %s is not empty and holds no export; not replacing it", ErrExists, out)
	}
	return nil
}

// install renames the finished temporary folder to out, replacing an
// existing export (force) or empty folder.
func install(tmp *tmpdir.Dir, out string, force bool) error {
	if ents, err := os.ReadDir(out); err == nil && len(ents) == 0 {
		os.Remove(out) // os.Rename does not replace a directory
	}
	if err := os.Rename(tmp.Path, out); err == nil {
		return syncDir(filepath.Dir(out))
	}
	// out exists and is not empty: it must be an export, replaced with force.
	if !manifest.IsExport(out) {
		return fmt.Errorf("%w: %s (it appeared during the export)", ErrExists, out)
	}
	if !force {
		return fmt.Errorf("%w: %s already holds an export (Options.Force, --force, replaces it)", ErrExists, out)
	}
	// The export replaced is moved aside, held (locked) until it is
	// removed, so that a concurrent export's RemoveStale leaves it alone
	// while it may still be put back; a kill leaves it stale.
	held, err := tmpdir.Hold(out)
	if err != nil {
		return fmt.Errorf("replace %s: %w", out, err)
	}
	defer held.Release()
	old := tmp.CompanionPath()
	if err := os.Rename(out, old); err != nil {
		return fmt.Errorf("replace %s: %w", out, err)
	}
	if err := os.Rename(tmp.Path, out); err != nil {
		os.Rename(old, out)
		return fmt.Errorf("replace %s: %w", out, err)
	}
	if err := syncDir(filepath.Dir(out)); err != nil {
		return err
	}
	return os.RemoveAll(old)
}

// syncDir makes a directory's entries durable: the export is published
// by renames, which a power loss could undo until then.
func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("export: syncing %s: %w", dir, err)
	}
	return nil
}

func (x *exporter) finish(dir string) (*Manifest, error) {
	for _, t := range x.tables {
		t.drain()
	}
	for _, w := range x.endWarnings {
		if msg := w(); msg != "" {
			x.warnings = append(x.warnings, msg)
		}
	}
	if x.notUTF8 > 0 {
		x.warnings = append(x.warnings, fmt.Sprintf("%d text values (process or file names, arguments, names) were not valid UTF-8, which Parquet and Arrow strings must be: each byte that is not is U+FFFD in the export (the recording keeps the bytes; replay shows them escaped)", x.notUTF8))
	}
	if x.moreWarnings > 0 {
		x.warnings = append(x.warnings, fmt.Sprintf("... and %d more warnings", x.moreWarnings))
	}
	if x.damaged > 0 {
		x.warnings = append([]string{fmt.Sprintf("%d damaged part(s) of the recording were skipped; the export holds the intact data around them", x.damaged)}, x.warnings...)
	}
	// Every table gets a file, even empty, so that every view exists.
	key := ""
	if x.partition {
		t := x.meta.Started.UnixNano()
		if x.anyT {
			t = x.minT
		}
		key = x.partKey(floorDiv(t, nsPerDay))
	}
	m := &Manifest{
		Version: manifest.Version, Tool: "ebpfrec " + x.opts.Version, Format: x.opts.Format,
		Partitioned: x.partition, RecordingID: x.meta.RecordingID, Host: x.meta.Hostname,
		Created: time.Now().UTC(), Batches: x.batches, Events: x.events,
		DamagedBatches: x.damaged, DecodeErrors: x.decodeErrs, Warnings: x.warnings,
	}
	if abs, err := filepath.Abs(dir); err == nil {
		m.Recording = abs
	}
	for _, t := range x.tables {
		t.ensure(key)
		m.Tables = append(m.Tables, TableFiles{Name: t.tableName(), Rows: t.rowCount(), Files: t.finish()})
	}
	x.waited = true
	if err := x.w.wait(); err != nil {
		return nil, err
	}
	if x.err != nil {
		return nil, x.err
	}
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, err
	}
	out, err := createOut(filepath.Join(x.tmp, manifest.File))
	if err != nil {
		return nil, err
	}
	out.bw.Write(append(b, '\n'))
	if err := out.finish(); err != nil {
		return nil, err
	}
	if err := syncDir(x.tmp); err != nil {
		return nil, err
	}
	return m, nil
}
