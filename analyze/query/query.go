// Package query answers SQL questions about exports with DuckDB, in
// process: OpenDB makes one view per table over an export's Parquet files
// (or over a fleet of exports), Query runs a statement, and Result prints
// what it returned for a terminal (WriteTable), a program (WriteCSV) or
// JSON (WriteJSON).
//
// It links DuckDB through cgo, a C++ library that weighs about 68 MB in a
// binary (105.6 against 38.0 MB for ebpfrec built with and without it),
// which is why it is a package of its own: package analyze (export,
// summary) and the recorder link no cgo; the command that imports this
// one is ebpfrec-query, which `ebpfrec query` runs.
package query

import (
	"context"
	"database/sql"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"time"
	"unicode/utf8"

	// DuckDB in process (cgo; ships its library).
	_ "github.com/duckdb/duckdb-go/v2"

	"github.com/ebpfrec/ebpfrec/analyze/manifest"
	"github.com/ebpfrec/ebpfrec/internal/safetext"
)

// OpenDB opens an in-memory DuckDB with one view per table (exec, exit,
// open, tcp, syscalls, raw, losses, recording) over the export in dir, or
// over every export in dir's subfolders (see manifest.FindExports),
// reading their Parquet files in place; views of partitioned exports have
// host and date columns too. The manifest returned lists the files of all
// of them. Each manifest is checked by manifest.Read: DuckDB is given only
// the real paths of regular files inside their export folder. The caller
// closes the DB.
func OpenDB(ctx context.Context, dir string) (*sql.DB, *manifest.Manifest, error) {
	dirs, err := manifest.FindExports(dir)
	if err != nil {
		return nil, nil, err
	}
	if len(dirs) == 0 {
		return nil, nil, fmt.Errorf("%s is not an export (no %s in it or its subfolders)", dir, manifest.File)
	}
	var all *manifest.Manifest
	var names []string // the views, in the exports' table order
	files := map[string][]string{}
	for _, d := range dirs {
		m, err := manifest.Read(d)
		if err != nil {
			return nil, nil, err
		}
		if m.Format != manifest.FormatParquet {
			return nil, nil, fmt.Errorf("%s is an %s export: queries read Parquet exports (export with --format parquet)", d, m.Format)
		}
		if all == nil {
			all = &manifest.Manifest{Version: manifest.Version, Format: manifest.FormatParquet, Partitioned: m.Partitioned}
			if len(dirs) == 1 {
				all = m
			}
		} else if m.Partitioned != all.Partitioned {
			return nil, nil, fmt.Errorf("%s mixes partitioned and flat exports (%s): query them separately", dir, d)
		}
		for i, t := range m.Tables {
			if _, ok := files[t.Name]; !ok {
				names = append(names, t.Name)
				files[t.Name] = nil
			}
			for _, p := range m.RealPaths(i) { // checked, real paths
				lp, err := literal(p)
				if err != nil {
					return nil, nil, fmt.Errorf("%s: table %s: %w", filepath.Join(d, manifest.File), t.Name, err)
				}
				files[t.Name] = append(files[t.Name], sqlString(lp))
			}
		}
		if len(dirs) > 1 {
			all.Events += m.Events
			all.Batches += m.Batches
			all.Warnings = append(all.Warnings, m.Warnings...)
		}
	}
	db, err := sql.Open("duckdb", "")
	if err != nil {
		return nil, nil, err
	}
	// One connection: the views live in the one in-memory database anyway,
	// and session settings then apply to every statement.
	db.SetMaxOpenConns(1)
	// Never download extensions behind the user's back (an installed one
	// still loads, e.g. inet after "INSTALL inet").
	if _, err := db.ExecContext(ctx, "SET autoinstall_known_extensions = false"); err != nil {
		db.Close()
		return nil, nil, err
	}
	for _, name := range names {
		if len(files[name]) == 0 {
			continue
		}
		q := fmt.Sprintf("CREATE VIEW %s AS SELECT * FROM read_parquet([%s], hive_partitioning = %t, union_by_name = true)",
			sqlIdent(name), strings.Join(files[name], ", "), all.Partitioned)
		if _, err := db.ExecContext(ctx, q); err != nil {
			db.Close()
			return nil, nil, fmt.Errorf("view %s: %w", name, err)
		}
	}
	return db, all, nil
}

// literal returns the real path p as a read_parquet argument that DuckDB
// matches to p alone: read_parquet takes patterns, so each *, ? and [ of
// the path (a folder named "exports [2]" matched "exports 2") is written as
// a class of one character, "[[]". In a pattern a backslash is DuckDB's
// escape, which a class cannot hold: a path with both is refused.
func literal(p string) (string, error) {
	if !strings.ContainsAny(p, "*?[") {
		return p, nil // not a pattern: DuckDB reads the path as it is
	}
	if strings.Contains(p, `\`) {
		return "", fmt.Errorf("the path %q holds a backslash and one of *?[, which DuckDB cannot read as a literal path: rename the folder", p)
	}
	b := make([]byte, 0, len(p)+8)
	for i := 0; i < len(p); i++ { // bytes: a path need not be UTF-8
		if c := p[i]; c == '*' || c == '?' || c == '[' {
			b = append(b, '[', c, ']')
		} else {
			b = append(b, c)
		}
	}
	return string(b), nil
}

// sqlString and sqlIdent quote a string literal and an identifier: paths
// and table names come from a manifest, which can come from anywhere.
func sqlString(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
func sqlIdent(s string) string  { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

// Result is the result of a query, in memory.
type Result struct {
	// Columns are the column names, Types their DuckDB types (VARCHAR,
	// TIMESTAMP_NS, ...; may be shorter if the driver did not say).
	Columns []string
	Types   []string
	// Rows holds the values as database/sql scanned them into any.
	Rows [][]any
}

// Query runs one SQL statement and collects its result.
func Query(ctx context.Context, db *sql.DB, q string) (*Result, error) {
	rows, err := db.QueryContext(ctx, q)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	res := &Result{}
	if res.Columns, err = rows.Columns(); err != nil {
		return nil, err
	}
	if cts, err := rows.ColumnTypes(); err == nil {
		for _, ct := range cts {
			res.Types = append(res.Types, ct.DatabaseTypeName())
		}
	}
	for rows.Next() {
		vals := make([]any, len(res.Columns))
		ptrs := make([]any, len(vals))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return nil, err
		}
		res.Rows = append(res.Rows, vals)
	}
	return res, rows.Err()
}

// FormatValue renders a value of DuckDB type typ (may be "") as the
// aligned table and CSV show it.
func FormatValue(v any, typ string) string {
	switch v := v.(type) {
	case nil:
		return "NULL"
	case time.Time:
		switch typ {
		case "DATE":
			return v.UTC().Format(time.DateOnly)
		case "TIME":
			return v.UTC().Format("15:04:05.999999")
		}
		return v.UTC().Format("2006-01-02 15:04:05.999999999")
	case []byte:
		if utf8.Valid(v) && isPrintable(v) {
			return string(v)
		}
		return `\x` + hex.EncodeToString(v)
	case string:
		return v
	}
	return fmt.Sprint(v)
}

func isPrintable(b []byte) bool {
	for _, c := range b {
		if c < 0x20 || c == 0x7f {
			return false
		}
	}
	return true
}

// Type returns the DuckDB type of column i, or "" if the driver did not
// say.
func (r *Result) Type(i int) string {
	if i < len(r.Types) {
		return r.Types[i]
	}
	return ""
}

// WriteTable prints the result as an aligned table with a header and a row
// count, for a terminal: control characters, bidi controls and bytes that
// are not UTF-8 in values and column names are shown escaped (\x1b,
// \u202e; see internal/safetext), so one row stays one line.
func (r *Result) WriteTable(w io.Writer) error {
	cells := make([][]string, len(r.Rows))
	width := make([]int, len(r.Columns))
	right := make([]bool, len(r.Columns))
	for i, c := range r.Columns {
		width[i] = utf8.RuneCountInString(safetext.Field(c))
		if i < len(r.Types) {
			right[i] = isNumeric(r.Types[i])
		}
	}
	for j, row := range r.Rows {
		cells[j] = make([]string, len(row))
		for i, v := range row {
			s := safetext.Field(FormatValue(v, r.Type(i)))
			cells[j][i] = s
			width[i] = max(width[i], utf8.RuneCountInString(s))
		}
	}
	var b strings.Builder
	line := func(vals []string, header bool) {
		for i, s := range vals {
			if i > 0 {
				b.WriteString("  ")
			}
			pad := strings.Repeat(" ", width[i]-utf8.RuneCountInString(s))
			if right[i] && !header {
				b.WriteString(pad + s)
			} else if i == len(vals)-1 {
				b.WriteString(s)
			} else {
				b.WriteString(s + pad)
			}
		}
		b.WriteByte('\n')
	}
	names := make([]string, len(r.Columns))
	for i, c := range r.Columns {
		names[i] = safetext.Field(c)
	}
	line(names, true)
	seps := make([]string, len(r.Columns))
	for i := range seps {
		seps[i] = strings.Repeat("-", width[i])
	}
	line(seps, true)
	for _, c := range cells {
		line(c, false)
	}
	n := len(r.Rows)
	if n == 1 {
		b.WriteString("(1 row)\n")
	} else {
		fmt.Fprintf(&b, "(%d rows)\n", n)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func isNumeric(t string) bool {
	switch t {
	case "TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER",
		"UBIGINT", "UHUGEINT", "FLOAT", "DOUBLE", "DECIMAL":
		return true
	}
	return strings.HasPrefix(t, "DECIMAL")
}

// WriteCSV prints the result as CSV with a header line. Values are exact,
// control characters included (quoted as RFC 4180 says where needed): CSV
// is data for a program, and escaping would change it. WriteTable is the
// output for a terminal.
func (r *Result) WriteCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(r.Columns); err != nil {
		return err
	}
	rec := make([]string, len(r.Columns))
	for _, row := range r.Rows {
		for i, v := range row {
			if v == nil {
				rec[i] = ""
			} else {
				rec[i] = FormatValue(v, r.Type(i))
			}
		}
		if err := cw.Write(rec); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

// WriteJSON prints the result as a JSON array of objects, one per line, with
// keys in column order; timestamps are RFC 3339 strings in UTC. Strings
// decode to their exact values; control characters are JSON escapes
// (\u001b), and so are C1 and bidi controls, which JSON allows raw.
func (r *Result) WriteJSON(w io.Writer) error {
	var b strings.Builder
	b.WriteString("[")
	for j, row := range r.Rows {
		if j > 0 {
			b.WriteString(",")
		}
		b.WriteString("\n{")
		for i, v := range row {
			if i > 0 {
				b.WriteString(",")
			}
			k, _ := json.Marshal(r.Columns[i])
			b.Write(k)
			b.WriteString(":")
			if t, ok := v.(time.Time); ok {
				if r.Type(i) == "DATE" {
					v = t.UTC().Format(time.DateOnly)
				} else {
					v = t.UTC().Format(time.RFC3339Nano)
				}
			}
			jv, err := json.Marshal(v)
			if err != nil {
				jv, _ = json.Marshal(fmt.Sprint(v))
			}
			b.Write(jv)
		}
		b.WriteString("}")
	}
	b.WriteString("\n]\n")
	// Valid JSON whose C1 and bidi controls are escaped too (safetext).
	_, err := w.Write(safetext.JSON([]byte(b.String())))
	return err
}
