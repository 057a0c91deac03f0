package arrowexport

import (
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/ebpfrec/ebpfrec/analyze/internal/tablesink"
)

// schemaOf returns the Arrow schema of the layout; tz is the time zone of
// timestamps (see Factory).
func schemaOf(l *tablesink.Layout, tz string) *arrow.Schema {
	ts := &arrow.TimestampType{Unit: arrow.Nanosecond, TimeZone: tz}
	fields := make([]arrow.Field, len(l.Columns))
	for i, c := range l.Columns {
		var t arrow.DataType
		nullable := false
		switch c.Kind {
		case tablesink.Bool:
			t = arrow.FixedWidthTypes.Boolean
		case tablesink.Uint8:
			t = arrow.PrimitiveTypes.Uint8
		case tablesink.Uint16:
			t = arrow.PrimitiveTypes.Uint16
		case tablesink.Uint32:
			t = arrow.PrimitiveTypes.Uint32
		case tablesink.Uint64:
			t = arrow.PrimitiveTypes.Uint64
		case tablesink.Int32:
			t = arrow.PrimitiveTypes.Int32
		case tablesink.Int64:
			t = arrow.PrimitiveTypes.Int64
		case tablesink.Timestamp:
			t = ts
		case tablesink.String:
			t = arrow.BinaryTypes.String
		case tablesink.Bytes:
			t = arrow.BinaryTypes.Binary
		case tablesink.OptInt32:
			t, nullable = arrow.PrimitiveTypes.Int32, true
		case tablesink.OptUint32:
			t, nullable = arrow.PrimitiveTypes.Uint32, true
		case tablesink.OptUint64:
			t, nullable = arrow.PrimitiveTypes.Uint64, true
		case tablesink.OptString:
			t, nullable = arrow.BinaryTypes.String, true
		case tablesink.OptTimestamp:
			t, nullable = ts, true
		case tablesink.StringList:
			t = arrow.ListOf(arrow.BinaryTypes.String)
		}
		fields[i] = arrow.Field{Name: c.Name, Type: t, Nullable: nullable}
	}
	return arrow.NewSchema(fields, nil)
}

// appendRows appends n rows starting at base (a row of layout l) to the
// record builder, column by column.
func appendRows(l *tablesink.Layout, rb *array.RecordBuilder, base unsafe.Pointer, n int) {
	for i, c := range l.Columns {
		fb := rb.Field(i)
		fb.Reserve(n)
		p := unsafe.Add(base, c.Offset)
		switch c.Kind {
		case tablesink.Bool:
			b := fb.(*array.BooleanBuilder)
			for j := range n {
				b.UnsafeAppend(*(*bool)(unsafe.Add(p, uintptr(j)*l.Size)))
			}
		case tablesink.Uint8:
			b := fb.(*array.Uint8Builder)
			for j := range n {
				b.UnsafeAppend(*(*uint8)(unsafe.Add(p, uintptr(j)*l.Size)))
			}
		case tablesink.Uint16:
			b := fb.(*array.Uint16Builder)
			for j := range n {
				b.UnsafeAppend(*(*uint16)(unsafe.Add(p, uintptr(j)*l.Size)))
			}
		case tablesink.Uint32:
			b := fb.(*array.Uint32Builder)
			for j := range n {
				b.UnsafeAppend(*(*uint32)(unsafe.Add(p, uintptr(j)*l.Size)))
			}
		case tablesink.Uint64:
			b := fb.(*array.Uint64Builder)
			for j := range n {
				b.UnsafeAppend(*(*uint64)(unsafe.Add(p, uintptr(j)*l.Size)))
			}
		case tablesink.Int32:
			b := fb.(*array.Int32Builder)
			for j := range n {
				b.UnsafeAppend(*(*int32)(unsafe.Add(p, uintptr(j)*l.Size)))
			}
		case tablesink.Int64:
			b := fb.(*array.Int64Builder)
			for j := range n {
				b.UnsafeAppend(*(*int64)(unsafe.Add(p, uintptr(j)*l.Size)))
			}
		case tablesink.Timestamp:
			b := fb.(*array.TimestampBuilder)
			for j := range n {
				b.UnsafeAppend(arrow.Timestamp(*(*int64)(unsafe.Add(p, uintptr(j)*l.Size))))
			}
		case tablesink.String:
			b := fb.(*array.StringBuilder)
			for j := range n {
				b.Append(*(*string)(unsafe.Add(p, uintptr(j)*l.Size)))
			}
		case tablesink.Bytes:
			b := fb.(*array.BinaryBuilder)
			for j := range n {
				b.Append(*(*[]byte)(unsafe.Add(p, uintptr(j)*l.Size)))
			}
		case tablesink.OptInt32:
			b := fb.(*array.Int32Builder)
			for j := range n {
				if v := *(**int32)(unsafe.Add(p, uintptr(j)*l.Size)); v != nil {
					b.UnsafeAppend(*v)
				} else {
					b.UnsafeAppendBoolToBitmap(false)
				}
			}
		case tablesink.OptUint32:
			b := fb.(*array.Uint32Builder)
			for j := range n {
				if v := *(**uint32)(unsafe.Add(p, uintptr(j)*l.Size)); v != nil {
					b.UnsafeAppend(*v)
				} else {
					b.UnsafeAppendBoolToBitmap(false)
				}
			}
		case tablesink.OptUint64:
			b := fb.(*array.Uint64Builder)
			for j := range n {
				if v := *(**uint64)(unsafe.Add(p, uintptr(j)*l.Size)); v != nil {
					b.UnsafeAppend(*v)
				} else {
					b.UnsafeAppendBoolToBitmap(false)
				}
			}
		case tablesink.OptString:
			b := fb.(*array.StringBuilder)
			for j := range n {
				if v := *(**string)(unsafe.Add(p, uintptr(j)*l.Size)); v != nil {
					b.Append(*v)
				} else {
					b.AppendNull()
				}
			}
		case tablesink.OptTimestamp:
			b := fb.(*array.TimestampBuilder)
			for j := range n {
				if v := *(**int64)(unsafe.Add(p, uintptr(j)*l.Size)); v != nil {
					b.UnsafeAppend(arrow.Timestamp(*v))
				} else {
					b.UnsafeAppendBoolToBitmap(false)
				}
			}
		case tablesink.StringList:
			b := fb.(*array.ListBuilder)
			vb := b.ValueBuilder().(*array.StringBuilder)
			for j := range n {
				b.Append(true)
				for _, s := range *(*[]string)(unsafe.Add(p, uintptr(j)*l.Size)) {
					vb.Append(s)
				}
			}
		}
	}
}
