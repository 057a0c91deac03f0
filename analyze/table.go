package analyze

import (
	"fmt"
	"os"
	"path/filepath"
)

const nsPerDay = 86400 * 1e9

// table buffers the rows of one table and writes them through one sink per
// partition.
type table[R any] struct {
	x      *exporter
	name   string
	parts  map[string]*part[R]
	order  []string
	cur    *part[R]
	curDay int64
	rows   uint64
}

type part[R any] struct {
	file string // relative to the export root
	rows []R
	s    sink[R]
}

// tabler is what the exporter needs of a table whatever its row type.
type tabler interface {
	tableName() string
	rowCount() uint64
	// ensure makes sure the table has a file in partition key, even empty.
	ensure(key string)
	// finish writes what is buffered and closes every file; it returns the
	// files, relative to the export root.
	finish() ([]string, error)
	abort()
}

func newTable[R any](x *exporter, name string) *table[R] {
	t := &table[R]{x: x, name: name, parts: map[string]*part[R]{}}
	x.tables = append(x.tables, t)
	return t
}

func (t *table[R]) tableName() string { return t.name }
func (t *table[R]) rowCount() uint64  { return t.rows }

// add returns a zeroed row to fill for an event at time ts (ns since the
// epoch, UTC), buffered in ts's partition.
func (t *table[R]) add(ts int64) *R {
	p := t.cur
	if t.x.partition {
		day := floorDiv(ts, nsPerDay)
		if p == nil || day != t.curDay {
			p = t.part(t.x.partKey(day))
			t.cur, t.curDay = p, day
		}
	} else if p == nil {
		p = t.part("")
		t.cur = p
	}
	if len(p.rows) == cap(p.rows) {
		t.flush(p)
	}
	n := len(p.rows)
	p.rows = p.rows[:n+1]
	r := &p.rows[n]
	var zero R
	*r = zero
	t.rows++
	return r
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && a < 0 {
		q--
	}
	return q
}

func (t *table[R]) part(key string) *part[R] {
	if p := t.parts[key]; p != nil {
		return p
	}
	p := &part[R]{file: filepath.ToSlash(filepath.Join(key, t.name+"."+t.x.ext()))}
	t.parts[key] = p
	t.order = append(t.order, key)
	path := filepath.Join(t.x.tmp, filepath.FromSlash(p.file))
	var err error
	if key != "" {
		err = os.MkdirAll(filepath.Dir(path), 0o700)
	}
	if err == nil {
		p.s, err = newSink[R](t.x, path)
	}
	if err != nil {
		t.x.fail(fmt.Errorf("table %s: %w", t.name, err))
	}
	n := 0
	if p.s != nil {
		n = p.s.bufRows()
	}
	p.rows = make([]R, 0, max(n, 1))
	return p
}

func newSink[R any](x *exporter, path string) (sink[R], error) {
	meta := map[string]string{"ebpfrec.table": path[len(x.tmp)+1:], "ebpfrec.recording_id": x.meta.RecordingID}
	switch {
	case x.opts.Format == FormatArrow:
		return newArrowSink[R](path, true, x.opts.Version, meta)
	case x.opts.WriterPath == ArrowParquet:
		return newArrowSink[R](path, false, x.opts.Version, meta)
	default:
		return newParquetGoSink[R](path, x.opts.Version, meta)
	}
}

func (t *table[R]) flush(p *part[R]) {
	if p.s != nil && len(p.rows) > 0 && t.x.err == nil {
		if err := p.s.write(p.rows); err != nil {
			t.x.fail(fmt.Errorf("table %s: %w", t.name, err))
		}
	}
	clear(p.rows) // drop references to strings and bytes
	p.rows = p.rows[:0]
}

func (t *table[R]) ensure(key string) {
	if len(t.parts) == 0 {
		t.part(key)
	}
}

func (t *table[R]) finish() ([]string, error) {
	var files []string
	var err error
	for _, key := range t.order {
		p := t.parts[key]
		t.flush(p)
		if p.s == nil {
			continue
		}
		if t.x.err != nil {
			p.s.abort()
			continue
		}
		if cerr := p.s.close(); cerr != nil && err == nil {
			err = fmt.Errorf("table %s: %w", t.name, cerr)
		}
		p.s = nil
		files = append(files, p.file)
	}
	return files, err
}

func (t *table[R]) abort() {
	for _, p := range t.parts {
		if p.s != nil {
			p.s.abort()
			p.s = nil
		}
	}
}
