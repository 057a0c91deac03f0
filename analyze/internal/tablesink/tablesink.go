// Package tablesink is what an export format other than Parquet needs from
// package analyze, and the registry through which such a format links
// itself in: the columns of a table's row type (from its parquet tags), the
// Writer that writes rows into one file, and a Factory per format. Package
// analyze writes Parquet itself and asks the registry for the others, so
// that it links no other format's library: the lean recorder (ebpfrec)
// writes Parquet only, and the Arrow writer (analyze/arrowexport, which
// links arrow-go) is linked by the programs that import it. The registry
// is this leaf package, not analyze, so that analyze's own tests can link
// a format without an import cycle.
package tablesink

import (
	"fmt"
	"io"
	"reflect"
	"strings"
	"sync"
	"unsafe"

	"github.com/ebpfrec/ebpfrec/analyze/manifest"
)

// Kind is the Go type of a row field.
type Kind int

// Kinds of row fields.
const (
	Bool         Kind = iota
	Uint8             // uint8
	Uint16            // uint16
	Uint32            // uint32
	Uint64            // uint64
	Int32             // int32
	Int64             // int64
	Timestamp         // int64, ns since the epoch (tag option "timestamp")
	String            // string
	Bytes             // []byte
	OptInt32          // *int32, nil is null
	OptUint32         // *uint32, nil is null
	OptUint64         // *uint64, nil is null
	OptString         // *string, nil is null
	OptTimestamp      // *int64 ns, nil is null
	StringList        // []string
)

// Column is one field of a row type.
type Column struct {
	Name   string  // the column's name (the parquet tag's)
	Offset uintptr // of the field in the row struct
	Kind   Kind
	Dict   bool // dictionary-encoded (tag option "dict")
	Delta  bool // delta-encoded (tag option "delta")
}

// Layout is the columns of a row type, in field order.
type Layout struct {
	Size    uintptr // of a row: rows lie Size bytes apart
	Columns []Column
}

// LayoutOf returns the layout of the row struct R from its parquet tags. A
// field of a type no Kind names is a programming error of the row types
// (all of them package analyze's own), so it panics.
func LayoutOf[R any]() *Layout {
	t := reflect.TypeFor[R]()
	l := &Layout{Size: t.Size()}
	for i := range t.NumField() {
		f := t.Field(i)
		name, opts, _ := strings.Cut(f.Tag.Get("parquet"), ",")
		ts := strings.Contains(opts, "timestamp")
		c := Column{Name: name, Offset: f.Offset}
		for _, o := range strings.Split(opts, ",") {
			c.Dict = c.Dict || o == "dict"
			c.Delta = c.Delta || o == "delta"
		}
		switch ft := f.Type; {
		case ft.Kind() == reflect.Bool:
			c.Kind = Bool
		case ft.Kind() == reflect.Uint8:
			c.Kind = Uint8
		case ft.Kind() == reflect.Uint16:
			c.Kind = Uint16
		case ft.Kind() == reflect.Uint32:
			c.Kind = Uint32
		case ft.Kind() == reflect.Uint64:
			c.Kind = Uint64
		case ft.Kind() == reflect.Int32:
			c.Kind = Int32
		case ft.Kind() == reflect.Int64 && ts:
			c.Kind = Timestamp
		case ft.Kind() == reflect.Int64:
			c.Kind = Int64
		case ft.Kind() == reflect.String:
			c.Kind = String
		case ft == reflect.TypeFor[[]byte]():
			c.Kind = Bytes
		case ft == reflect.TypeFor[*int32]():
			c.Kind = OptInt32
		case ft == reflect.TypeFor[*uint32]():
			c.Kind = OptUint32
		case ft == reflect.TypeFor[*uint64]():
			c.Kind = OptUint64
		case ft == reflect.TypeFor[*string]():
			c.Kind = OptString
		case ft == reflect.TypeFor[*int64]() && ts:
			c.Kind = OptTimestamp
		case ft == reflect.TypeFor[[]string]():
			c.Kind = StringList
		default:
			panic(fmt.Sprintf("analyze: %s.%s: unsupported field type %s", t.Name(), f.Name, ft))
		}
		l.Columns = append(l.Columns, c)
	}
	return l
}

// Writer writes the rows of one table in a format. Package analyze owns
// the file (it creates it private, buffers, syncs and closes it): a Writer
// only encodes into the io.Writer its Factory was given.
type Writer interface {
	// Write writes n rows of the Writer's layout, the first at base, the
	// others Layout.Size bytes apart; it does not keep them.
	Write(base unsafe.Pointer, n int) error
	// Close writes what ends the file (its footer) and frees the Writer.
	Close() error
}

// Factory makes the Writer of one table into w, with the columns of l;
// version is the tool's, meta the key-value metadata the file carries.
type Factory func(w io.Writer, l *Layout, version string, meta map[string]string) (Writer, error)

var (
	mu        sync.Mutex
	factories = map[manifest.Format]Factory{}
)

// Register makes f the writer of format; a program links a format by
// importing the package that registers it (in its init).
func Register(format manifest.Format, f Factory) {
	mu.Lock()
	defer mu.Unlock()
	factories[format] = f
}

// Lookup returns the writer of format, or nil if this program has none.
func Lookup(format manifest.Format) Factory {
	mu.Lock()
	defer mu.Unlock()
	return factories[format]
}
