package analyze

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
)

const nsPerDay = 86400 * 1e9

// table buffers the rows of one table and writes them through one sink per
// partition.
type table[R any] struct {
	x      *exporter
	free   chan []R // row buffers back from the writer goroutine
	made   int
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
	// finish has the writer write what is buffered and close every file;
	// it returns the files, relative to the export root.
	finish() []string
	abort()
}

func newTable[R any](x *exporter, name string) *table[R] {
	t := &table[R]{x: x, name: name, parts: map[string]*part[R]{}, free: make(chan []R, buffersPerTable)}
	x.tables = append(x.tables, t)
	return t
}

func (t *table[R]) tableName() string { return t.name }
func (t *table[R]) rowCount() uint64  { return t.rows }

// buffersPerTable is how many row buffers of a table may be in flight
// between the decoding goroutine and the writer goroutine.
const buffersPerTable = 4

// add returns the row to fill (all of it: it is not zeroed) for an event
// at time ts (ns since the epoch, UTC), buffered in ts's partition.
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
	t.rows++
	return &p.rows[n]
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
	p.rows = make([]R, 0, t.bufRows())
	return p
}

func (t *table[R]) bufRows() int {
	if t.x.opts.Format == FormatArrow || t.x.opts.WriterPath == ArrowParquet {
		return rowGroupRows
	}
	return writeRows
}

// buffer returns an empty row buffer for a part whose rows were just
// submitted: a new one while fewer than buffersPerTable exist, else one back
// from the writer (which waits for it: the writer paces the decoder; a
// buffer is in flight, so one comes back).
func (t *table[R]) buffer() []R {
	select {
	case b := <-t.free:
		return b
	default:
	}
	if t.made < buffersPerTable {
		t.made++
		return make([]R, 0, t.bufRows())
	}
	return <-t.free
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

// flush hands the part's buffered rows to the writer goroutine.
func (t *table[R]) flush(p *part[R]) {
	if len(p.rows) == 0 {
		return
	}
	rows, s := p.rows, p.s
	t.x.w.submit(func() error {
		var err error
		if s != nil {
			if err = s.write(rows); err != nil {
				err = fmt.Errorf("table %s: %w", t.name, err)
			}
		}
		clear(rows) // drop references to strings and bytes
		select {
		case t.free <- rows[:0]:
		default: // a part's own first buffer, beyond the pool
		}
		return err
	})
	p.rows = t.buffer()
}

func (t *table[R]) ensure(key string) {
	if len(t.parts) == 0 {
		t.part(key)
	}
}

// finish flushes every part and has the writer close its file; it returns
// the files, which are complete once the writer is done without error.
func (t *table[R]) finish() []string {
	var files []string
	for _, key := range t.order {
		p := t.parts[key]
		t.flush(p)
		if p.s == nil {
			continue
		}
		s := p.s
		p.s = nil
		t.x.w.submit(func() error {
			if err := s.close(); err != nil {
				return fmt.Errorf("table %s: %w", t.name, err)
			}
			return nil
		})
		files = append(files, p.file)
	}
	return files
}

// abort closes the files left open (after the writer stopped).
func (t *table[R]) abort() {
	for _, p := range t.parts {
		if p.s != nil {
			p.s.abort()
			p.s = nil
		}
	}
}

// writer runs the file writing of an export in its own goroutine, in the
// order submitted, so that decoding and encoding use both cores.
type writer struct {
	work chan func() error
	done chan struct{}
	mu   sync.Mutex
	err  error
}

func newWriter() *writer {
	w := &writer{work: make(chan func() error, 64), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		for f := range w.work {
			if err := f(); err != nil {
				w.mu.Lock()
				if w.err == nil {
					w.err = err
				}
				w.mu.Unlock()
			}
		}
	}()
	return w
}

func (w *writer) submit(f func() error) { w.work <- f }

// error returns the first error of the writer so far.
func (w *writer) error() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// wait ends the writer after the work submitted and returns its first error.
func (w *writer) wait() error {
	close(w.work)
	<-w.done
	return w.error()
}
