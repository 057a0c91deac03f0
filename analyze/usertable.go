package analyze

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/parquet-go/parquet-go"

	"github.com/ebpfrec/ebpfrec/bpf/btflayout"
	"github.com/ebpfrec/ebpfrec/store"
)

// userTable is the table of a stream decoded by the layout it stored (a
// user's own stream): its schema is known only from the recording, so it
// is built at run time from the layout's fields. Columns: time (when user
// space read the event: a user's struct has no known event time), cpu
// (of the perf buffer; null for a ring buffer), seq, index, then one per
// field (enums as their name and NAME_value,
// text with NAME_truncated), in the schema's order (by name). Rows are
// written as they are read, into one file (not split by day).
type userTable struct {
	x      *exporter
	name   string
	l      *btflayout.Layout
	cols   []userCol
	fixed  [4]string // the names of fixedCols in this table
	schema *parquet.Schema
	out    *fileOut
	w      *parquet.GenericWriter[any]
	file   string
	rows   uint64
	row    map[string]any
	one    [1]any
	vals   []btflayout.Value
}

// userCol names the columns of a layout field.
type userCol struct {
	name, extra string // extra: NAME_value of an enum, NAME_truncated of a text
}

// fixedCols are the columns every user table has (each takes a leading
// underscore where a field has its name).
var fixedCols = []string{"time", "cpu", "seq", "index"}

// userTableName makes a stream's name a table name (lowercase letters,
// digits and _) that no other table has.
func userTableName(stream string, taken map[string]bool) string {
	b := []byte(strings.ToLower(stream))
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			b[i] = '_'
		}
	}
	name := string(b)
	if name == "" || name[0] >= '0' && name[0] <= '9' {
		name = "stream_" + name
	}
	for base, i := name, 2; taken[name]; i++ {
		name = base + "_" + strconv.Itoa(i)
	}
	taken[name] = true
	return name
}

func newUserTable(x *exporter, name string, l *btflayout.Layout) *userTable {
	t := &userTable{x: x, name: name, l: l, row: map[string]any{}}
	g := parquet.Group{}
	used := map[string]bool{}
	unique := func(n string) string {
		for base, i := n, 2; used[n]; i++ {
			n = base + "_" + strconv.Itoa(i)
		}
		used[n] = true
		return n
	}
	// The fields keep their names; a fixed column of the same name (a
	// struct with its own cpu) takes a leading underscore.
	for i := range l.Fields {
		used[l.Fields[i].Name] = true
	}
	for i := range l.Fields {
		f := &l.Fields[i]
		c := userCol{name: f.Name}
		g[c.name] = userNode(f)
		switch f.Kind {
		case btflayout.Enum:
			c.extra = unique(f.Name + "_value")
			g[c.extra] = intNode(f, f.Signed)
		case btflayout.Text:
			c.extra = unique(f.Name + "_truncated")
			g[c.extra] = parquet.Leaf(parquet.BooleanType)
		}
		t.cols = append(t.cols, c)
	}
	for i, c := range fixedCols {
		n := c
		for used[n] {
			n = "_" + n
		}
		used[n] = true
		t.fixed[i] = n
	}
	g[t.fixed[0]] = parquet.TimestampAdjusted(parquet.Nanosecond, false)
	g[t.fixed[1]] = parquet.Optional(parquet.Int(32))
	g[t.fixed[2]] = parquet.Uint(64)
	g[t.fixed[3]] = parquet.Uint(32)
	t.schema = parquet.NewSchema(name, g)
	x.tables = append(x.tables, t)
	return t
}

// userNode is the Parquet type of a field's values.
func userNode(f *btflayout.Field) parquet.Node {
	switch f.Kind {
	case btflayout.Int:
		return intNode(f, true)
	case btflayout.Uint:
		return intNode(f, false)
	case btflayout.Bool:
		return parquet.Leaf(parquet.BooleanType)
	case btflayout.Enum, btflayout.Text:
		return parquet.String()
	case btflayout.List:
		return parquet.List(userNode(f.Elem))
	}
	return parquet.Leaf(parquet.ByteArrayType)
}

// intBits is the width of an integer column: the field's, or for a
// bitfield the narrowest of 8, 16, 32, 64 that holds it.
func intBits(f *btflayout.Field) int {
	n := int(f.Size) * 8
	if f.Bits != 0 {
		n = int(f.Bits)
	}
	for _, w := range []int{8, 16, 32} {
		if n <= w {
			return w
		}
	}
	return 64
}

func intNode(f *btflayout.Field, signed bool) parquet.Node {
	if signed {
		return parquet.Int(intBits(f))
	}
	return parquet.Uint(intBits(f))
}

// intValue is v as the Go type parquet-go writes into f's column.
func intValue(f *btflayout.Field, v *btflayout.Value, signed bool) any {
	bits := intBits(f)
	switch {
	case signed && bits <= 32:
		return int32(v.Int())
	case signed:
		return v.Int()
	case bits <= 32:
		return uint32(v.Bits)
	}
	return v.Bits
}

// value is v as the Go value of f's column.
func (t *userTable) value(f *btflayout.Field, v *btflayout.Value) any {
	switch f.Kind {
	case btflayout.Int:
		return intValue(f, v, true)
	case btflayout.Uint:
		return intValue(f, v, false)
	case btflayout.Bool:
		return v.Bits != 0
	case btflayout.Enum:
		if v.Text != "" {
			return v.Text
		}
		return string(btflayout.AppendText(nil, f, v))
	case btflayout.Text:
		return t.x.text(v.Text)
	case btflayout.List:
		l := make([]any, len(v.List))
		for i := range v.List {
			l[i] = t.value(f.Elem, &v.List[i])
		}
		return l
	}
	return append([]byte(nil), v.Raw...)
}

// add writes the row of event i of b; an event that does not decode goes
// to the raw table.
func (t *userTable) add(s *streamState, b *store.Batch, i int) {
	e := &b.Events[i]
	var err error
	if t.vals, err = t.l.Decode(e.Raw, t.vals); err != nil {
		t.x.undecodable(s, b, i, err)
		return
	}
	ts := e.Timestamp.UnixNano()
	t.x.seenTime(ts)
	if t.w == nil && !t.open(ts) {
		return
	}
	r := t.row
	r[t.fixed[0]], r[t.fixed[2]], r[t.fixed[3]] = ts, b.Seq, uint32(i)
	r[t.fixed[1]] = nil
	if e.CPU >= 0 {
		r[t.fixed[1]] = int32(e.CPU)
	}
	for j := range t.l.Fields {
		f, v, c := &t.l.Fields[j], &t.vals[j], &t.cols[j]
		r[c.name] = t.value(f, v)
		switch f.Kind {
		case btflayout.Enum:
			r[c.extra] = intValue(f, v, f.Signed)
		case btflayout.Text:
			r[c.extra] = v.Truncated
		}
	}
	t.one[0] = r
	if _, err := t.w.Write(t.one[:]); err != nil {
		t.x.fail(fmt.Errorf("table %s: %w", t.name, err))
		return
	}
	t.rows++
}

// open creates the table's file, in the partition of time ts.
func (t *userTable) open(ts int64) bool {
	key := ""
	if t.x.partition {
		key = t.x.partKey(floorDiv(ts, nsPerDay))
	}
	return t.create(key)
}

func (t *userTable) create(key string) bool {
	if t.x.opts.Format != FormatParquet {
		t.x.fail(fmt.Errorf("table %s: a stream decoded by its layout exports to Parquet only", t.name))
		return false
	}
	t.file = filepath.ToSlash(filepath.Join(key, t.name+".parquet"))
	path := filepath.Join(t.x.tmp, filepath.FromSlash(t.file))
	if key != "" {
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			t.x.fail(fmt.Errorf("table %s: %w", t.name, err))
			return false
		}
	}
	out, err := createOut(path)
	if err != nil {
		t.x.fail(fmt.Errorf("table %s: %w", t.name, err))
		return false
	}
	t.out = out
	t.w = parquet.NewGenericWriter[any](out.bw, t.schema, parquet.CreatedBy("ebpfrec", t.x.opts.Version, ""),
		parquet.KeyValueMetadata("ebpfrec.struct", t.l.Name))
	return true
}

func (t *userTable) tableName() string { return t.name }
func (t *userTable) rowCount() uint64  { return t.rows }
func (t *userTable) drain()            {}

func (t *userTable) ensure(key string) {
	if t.w == nil {
		t.create(key)
	}
}

func (t *userTable) finish() []string {
	if t.w == nil {
		return nil
	}
	err := t.w.Close()
	if err == nil {
		err = t.out.finish()
	} else {
		t.out.f.Close()
	}
	t.w = nil
	if err != nil {
		t.x.fail(fmt.Errorf("table %s: %w", t.name, err))
	}
	return []string{t.file}
}

func (t *userTable) abort() {
	if t.w != nil {
		t.out.f.Close()
		t.w = nil
	}
}
