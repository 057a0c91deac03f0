package analyze

import (
	"context"
	"database/sql"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"
	"unicode/utf8"

	// DuckDB in process (cgo; ships its library).
	_ "github.com/duckdb/duckdb-go/v2"
)

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

// OpenDB opens an in-memory DuckDB with one view per table (exec, exit,
// open, tcp, syscalls, raw, losses, recording) over the export in dir, or
// over every export in dir's subfolders (see FindExports), reading their
// Parquet files in place; views of partitioned exports have host and date
// columns too. The manifest returned lists the files of all of them. The
// caller closes the DB.
func OpenDB(ctx context.Context, dir string) (*sql.DB, *Manifest, error) {
	dirs, err := FindExports(dir)
	if err != nil {
		return nil, nil, err
	}
	if len(dirs) == 0 {
		return nil, nil, fmt.Errorf("%s is not an export (no %s in it or its subfolders)", dir, ManifestFile)
	}
	var all *Manifest
	files := map[string][]string{}
	for _, d := range dirs {
		m, err := ReadManifest(d)
		if err != nil {
			return nil, nil, err
		}
		if m.Format != FormatParquet {
			return nil, nil, fmt.Errorf("%s is an %s export: queries read Parquet exports (export with --format parquet)", d, m.Format)
		}
		if all == nil {
			all = &Manifest{Version: ManifestVersion, Format: FormatParquet, Partitioned: m.Partitioned}
			if len(dirs) == 1 {
				all = m
			}
		} else if m.Partitioned != all.Partitioned {
			return nil, nil, fmt.Errorf("%s mixes partitioned and flat exports (%s): query them separately", dir, d)
		}
		for _, t := range m.Tables {
			for _, f := range t.Files {
				files[t.Name] = append(files[t.Name], sqlString(filepath.Join(d, filepath.FromSlash(f))))
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
	for _, name := range Tables {
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

func sqlString(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
func sqlIdent(s string) string  { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

// Result is the result of a query, in memory.
type Result struct {
	Columns []string
	Types   []string
	Rows    [][]any
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

func (r *Result) typ(i int) string {
	if i < len(r.Types) {
		return r.Types[i]
	}
	return ""
}

// WriteTable prints the result as an aligned table with a header and a row
// count.
func (r *Result) WriteTable(w io.Writer) error {
	cells := make([][]string, len(r.Rows))
	width := make([]int, len(r.Columns))
	right := make([]bool, len(r.Columns))
	for i, c := range r.Columns {
		width[i] = utf8.RuneCountInString(c)
		if i < len(r.Types) {
			right[i] = isNumeric(r.Types[i])
		}
	}
	for j, row := range r.Rows {
		cells[j] = make([]string, len(row))
		for i, v := range row {
			s := strings.NewReplacer("\n", `\n`, "\t", `\t`).Replace(FormatValue(v, r.typ(i)))
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
	line(r.Columns, true)
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

// WriteCSV prints the result as CSV with a header line.
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
				rec[i] = FormatValue(v, r.typ(i))
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
// keys in column order; timestamps are RFC 3339 strings in UTC.
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
				if r.typ(i) == "DATE" {
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
	_, err := io.WriteString(w, b.String())
	return err
}
