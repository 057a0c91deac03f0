package analyze

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/ebpfrec/ebpfrec/analyze/internal/tablesink"
	"github.com/ebpfrec/ebpfrec/replay"
)

const nsPerDay = 86400 * 1e9

// table buffers the rows of one table and writes them through one sink per
// partition, in time order: the recording holds events per stream and per
// CPU as the readers handed them over, so rows go through a time-order
// window (replay.Reorder, Options.Order) first. A row is filled in a slot
// of an arena, which the window holds by index (cheap to sort), and copied
// into its partition's buffer when the window passes it on.
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

	ro        *replay.Reorder[rowRef]
	slots     []R     // rows in the window (at most its MaxItems, and one filling)
	freeSlots []int32 // slots passed on
	pend      rowRef  // the row add returned last, pushed at the next add
	pending   bool
}

// rowRef is a row in the window: its slot and time.
type rowRef struct {
	slot int32
	t    int64
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
	// drain empties the table's time-order window into its buffers.
	drain()
	// ensure makes sure the table has a file in partition key, even empty.
	ensure(key string)
	// finish has the writer write what is buffered and close every file;
	// it returns the files, relative to the export root.
	finish() []string
	abort()
}

func newTable[R any](x *exporter, name string) *table[R] {
	t := &table[R]{x: x, name: name, parts: map[string]*part[R]{}, free: make(chan []R, buffersPerTable)}
	t.ro = replay.NewReorder(x.opts.Order, t.place)
	x.tables = append(x.tables, t)
	return t
}

func (t *table[R]) tableName() string { return t.name }
func (t *table[R]) rowCount() uint64  { return t.rows }

// buffersPerTable is how many row buffers of a table may be in flight
// between the decoding goroutine and the writer goroutine.
const buffersPerTable = 4

// add returns the row to fill (all of it: it is not zeroed) for an event
// at time ts (ns since the epoch, UTC); it enters the time-order window at
// the next add (or drain), once filled.
func (t *table[R]) add(ts int64) *R {
	if t.x.opts.recordedOrder {
		t.rows++
		return t.buffered(ts)
	}
	t.push()
	var slot int32
	if n := len(t.freeSlots); n > 0 {
		slot, t.freeSlots = t.freeSlots[n-1], t.freeSlots[:n-1]
	} else {
		var zero R
		t.slots = append(t.slots, zero)
		slot = int32(len(t.slots) - 1)
	}
	t.pend, t.pending = rowRef{slot: slot, t: ts}, true
	t.rows++
	return &t.slots[slot]
}

// push puts the row filled since the last add into the window.
func (t *table[R]) push() {
	if t.pending {
		t.pending = false
		_ = t.ro.Push(t.pend.t, t.pend) // place never fails
	}
}

// drain passes every row held in the window on to the partitions' buffers;
// rows that came too late for it are said in a warning.
func (t *table[R]) drain() {
	t.push()
	_ = t.ro.Flush()
	if st := t.ro.Stats(); st.Late > 0 {
		t.x.warnings = append(t.x.warnings, fmt.Sprintf("table %s: %d rows arrived after later rows were written (more than the %v time-order window late): written out of order, the latest %v behind",
			t.name, st.Late, t.ro.Options().Window, st.MaxLate))
	}
}

// place copies a row the window passes on into its partition's buffer,
// in order (or late: out of order, counted).
func (t *table[R]) place(ref rowRef, _ bool) error {
	*t.buffered(ref.t) = t.slots[ref.slot]
	var zero R
	t.slots[ref.slot] = zero // drop references to strings and bytes
	t.freeSlots = append(t.freeSlots, ref.slot)
	return nil
}

// buffered returns the next row of ts's partition's buffer.
func (t *table[R]) buffered(ts int64) *R {
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
	if t.x.opts.Format == FormatArrow || t.x.opts.writerPath == arrowParquet {
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
	case x.opts.writerPath == arrowParquet:
		if pqarrowFactory == nil {
			return nil, errors.New("the pqarrow writer is only in the tests")
		}
		return newFormatSink[R](pqarrowFactory, path, x.opts.Version, meta)
	case x.opts.Format != FormatParquet:
		// Export checked that the format is linked.
		return newFormatSink[R](tablesink.Lookup(x.opts.Format), path, x.opts.Version, meta)
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
