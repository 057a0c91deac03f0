package analyze

import (
	"fmt"
	"reflect"
	"strings"
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
)

// colKind is the Go type of a row field.
type colKind int

const (
	kBool colKind = iota
	kUint8
	kUint16
	kUint32
	kUint64
	kInt32
	kInt64
	kTimestamp // int64 ns
	kString
	kBytes
	kOptInt32     // *int32
	kOptString    // *string
	kOptTimestamp // *int64 ns
	kStringList   // []string
)

// column is one field of a row type.
type column struct {
	name  string
	off   uintptr
	kind  colKind
	dict  bool // dictionary-encoded
	delta bool // delta-encoded
}

// layout is the columns of a row type, from its parquet tags, for the Arrow
// paths (the parquet-go path reads the same tags itself).
type layout struct {
	size uintptr
	cols []column
}

func layoutOf[R any]() *layout {
	t := reflect.TypeFor[R]()
	l := &layout{size: t.Size()}
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("parquet")
		name, opts, _ := strings.Cut(tag, ",")
		ts := strings.Contains(opts, "timestamp")
		c := column{name: name, off: f.Offset}
		for _, o := range strings.Split(opts, ",") {
			c.dict = c.dict || o == "dict"
			c.delta = c.delta || o == "delta"
		}
		switch ft := f.Type; {
		case ft.Kind() == reflect.Bool:
			c.kind = kBool
		case ft.Kind() == reflect.Uint8:
			c.kind = kUint8
		case ft.Kind() == reflect.Uint16:
			c.kind = kUint16
		case ft.Kind() == reflect.Uint32:
			c.kind = kUint32
		case ft.Kind() == reflect.Uint64:
			c.kind = kUint64
		case ft.Kind() == reflect.Int32:
			c.kind = kInt32
		case ft.Kind() == reflect.Int64 && ts:
			c.kind = kTimestamp
		case ft.Kind() == reflect.Int64:
			c.kind = kInt64
		case ft.Kind() == reflect.String:
			c.kind = kString
		case ft == reflect.TypeFor[[]byte]():
			c.kind = kBytes
		case ft == reflect.TypeFor[*int32]():
			c.kind = kOptInt32
		case ft == reflect.TypeFor[*string]():
			c.kind = kOptString
		case ft == reflect.TypeFor[*int64]() && ts:
			c.kind = kOptTimestamp
		case ft == reflect.TypeFor[[]string]():
			c.kind = kStringList
		default:
			panic(fmt.Sprintf("analyze: %s.%s: unsupported field type %s", t.Name(), f.Name, ft))
		}
		l.cols = append(l.cols, c)
	}
	return l
}

// arrowSchema returns the Arrow schema of the layout; tz is the time zone of
// timestamps ("UTC", or "" for the Parquet path so that it writes
// isAdjustedToUTC=false like the parquet-go path).
func (l *layout) arrowSchema(tz string) *arrow.Schema {
	ts := &arrow.TimestampType{Unit: arrow.Nanosecond, TimeZone: tz}
	fields := make([]arrow.Field, len(l.cols))
	for i, c := range l.cols {
		var t arrow.DataType
		nullable := false
		switch c.kind {
		case kBool:
			t = arrow.FixedWidthTypes.Boolean
		case kUint8:
			t = arrow.PrimitiveTypes.Uint8
		case kUint16:
			t = arrow.PrimitiveTypes.Uint16
		case kUint32:
			t = arrow.PrimitiveTypes.Uint32
		case kUint64:
			t = arrow.PrimitiveTypes.Uint64
		case kInt32:
			t = arrow.PrimitiveTypes.Int32
		case kInt64:
			t = arrow.PrimitiveTypes.Int64
		case kTimestamp:
			t = ts
		case kString:
			t = arrow.BinaryTypes.String
		case kBytes:
			t = arrow.BinaryTypes.Binary
		case kOptInt32:
			t, nullable = arrow.PrimitiveTypes.Int32, true
		case kOptString:
			t, nullable = arrow.BinaryTypes.String, true
		case kOptTimestamp:
			t, nullable = ts, true
		case kStringList:
			t = arrow.ListOf(arrow.BinaryTypes.String)
		}
		fields[i] = arrow.Field{Name: c.name, Type: t, Nullable: nullable}
	}
	return arrow.NewSchema(fields, nil)
}

// appendRows appends n rows starting at base (a *R of this layout) to the
// record builder, column by column.
func (l *layout) appendRows(rb *array.RecordBuilder, base unsafe.Pointer, n int) {
	for i, c := range l.cols {
		fb := rb.Field(i)
		fb.Reserve(n)
		p := unsafe.Add(base, c.off)
		switch c.kind {
		case kBool:
			b := fb.(*array.BooleanBuilder)
			for j := range n {
				b.UnsafeAppend(*(*bool)(unsafe.Add(p, uintptr(j)*l.size)))
			}
		case kUint8:
			b := fb.(*array.Uint8Builder)
			for j := range n {
				b.UnsafeAppend(*(*uint8)(unsafe.Add(p, uintptr(j)*l.size)))
			}
		case kUint16:
			b := fb.(*array.Uint16Builder)
			for j := range n {
				b.UnsafeAppend(*(*uint16)(unsafe.Add(p, uintptr(j)*l.size)))
			}
		case kUint32:
			b := fb.(*array.Uint32Builder)
			for j := range n {
				b.UnsafeAppend(*(*uint32)(unsafe.Add(p, uintptr(j)*l.size)))
			}
		case kUint64:
			b := fb.(*array.Uint64Builder)
			for j := range n {
				b.UnsafeAppend(*(*uint64)(unsafe.Add(p, uintptr(j)*l.size)))
			}
		case kInt32:
			b := fb.(*array.Int32Builder)
			for j := range n {
				b.UnsafeAppend(*(*int32)(unsafe.Add(p, uintptr(j)*l.size)))
			}
		case kInt64:
			b := fb.(*array.Int64Builder)
			for j := range n {
				b.UnsafeAppend(*(*int64)(unsafe.Add(p, uintptr(j)*l.size)))
			}
		case kTimestamp:
			b := fb.(*array.TimestampBuilder)
			for j := range n {
				b.UnsafeAppend(arrow.Timestamp(*(*int64)(unsafe.Add(p, uintptr(j)*l.size))))
			}
		case kString:
			b := fb.(*array.StringBuilder)
			for j := range n {
				b.Append(*(*string)(unsafe.Add(p, uintptr(j)*l.size)))
			}
		case kBytes:
			b := fb.(*array.BinaryBuilder)
			for j := range n {
				b.Append(*(*[]byte)(unsafe.Add(p, uintptr(j)*l.size)))
			}
		case kOptInt32:
			b := fb.(*array.Int32Builder)
			for j := range n {
				if v := *(**int32)(unsafe.Add(p, uintptr(j)*l.size)); v != nil {
					b.UnsafeAppend(*v)
				} else {
					b.UnsafeAppendBoolToBitmap(false)
				}
			}
		case kOptString:
			b := fb.(*array.StringBuilder)
			for j := range n {
				if v := *(**string)(unsafe.Add(p, uintptr(j)*l.size)); v != nil {
					b.Append(*v)
				} else {
					b.AppendNull()
				}
			}
		case kOptTimestamp:
			b := fb.(*array.TimestampBuilder)
			for j := range n {
				if v := *(**int64)(unsafe.Add(p, uintptr(j)*l.size)); v != nil {
					b.UnsafeAppend(arrow.Timestamp(*v))
				} else {
					b.UnsafeAppendBoolToBitmap(false)
				}
			}
		case kStringList:
			b := fb.(*array.ListBuilder)
			vb := b.ValueBuilder().(*array.StringBuilder)
			for j := range n {
				b.Append(true)
				for _, s := range *(*[]string)(unsafe.Add(p, uintptr(j)*l.size)) {
					vb.Append(s)
				}
			}
		}
	}
}
