// Package arrowexport writes the tables of analyze.Export as Arrow IPC
// files (analyze.FormatArrow, `export --format arrow`). A program links it
// by importing it (for its side effect: it registers the format with
// analyze); without it analyze.Export refuses Arrow with
// analyze.ErrFormatNotLinked. It is a package of its own because arrow-go
// (and, through arrow-go's JSON, goccy/go-json) would take the lean
// recorder, ebpfrec, over its 40 MB: ebpfrec writes Parquet itself and
// runs the companion ebpfrec-query, which imports this package, for Arrow.
package arrowexport

import (
	"io"
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/ebpfrec/ebpfrec/analyze/internal/tablesink"
	"github.com/ebpfrec/ebpfrec/analyze/manifest"
)

func init() {
	// Timestamps in UTC: the recording's times are UTC nanoseconds.
	tablesink.Register(manifest.FormatArrow, Factory("UTC", newIPCWriter))
}

// RecordWriter writes Arrow record batches into a file.
type RecordWriter interface {
	Write(arrow.RecordBatch) error
	Close() error
}

// NewRecordWriter makes the RecordWriter of schema into w; l is the
// table's layout (its columns' encodings), version the tool's.
type NewRecordWriter func(schema *arrow.Schema, w io.Writer, l *tablesink.Layout, version string) (RecordWriter, error)

func newIPCWriter(schema *arrow.Schema, w io.Writer, _ *tablesink.Layout, _ string) (RecordWriter, error) {
	return ipc.NewFileWriter(w, ipc.WithSchema(schema), ipc.WithAllocator(memory.DefaultAllocator))
}

// Factory returns the writer of a table that builds Arrow records of its
// rows, one per Write, with timestamps in the time zone tz, and writes
// them with newWriter. The format registered is Factory("UTC", IPC file
// writer); analyze's tests also write Parquet through arrow-go's pqarrow
// with it (tz "", so that the files say isAdjustedToUTC=false as
// parquet-go's do), the independent second writer they compare with.
func Factory(tz string, newWriter NewRecordWriter) tablesink.Factory {
	return func(w io.Writer, l *tablesink.Layout, version string, meta map[string]string) (tablesink.Writer, error) {
		keys, vals := make([]string, 0, len(meta)), make([]string, 0, len(meta))
		for k, v := range meta {
			keys, vals = append(keys, k), append(vals, v)
		}
		md := arrow.NewMetadata(keys, vals)
		schema := arrow.NewSchema(schemaOf(l, tz).Fields(), &md)
		rw, err := newWriter(schema, w, l, version)
		if err != nil {
			return nil, err
		}
		return &writer{l: l, rb: array.NewRecordBuilder(memory.DefaultAllocator, schema), w: rw}, nil
	}
}

// writer builds Arrow records from rows and hands them to a RecordWriter.
type writer struct {
	l  *tablesink.Layout
	rb *array.RecordBuilder
	w  RecordWriter
}

func (s *writer) Write(base unsafe.Pointer, n int) error {
	if n == 0 {
		return nil
	}
	appendRows(s.l, s.rb, base, n)
	rec := s.rb.NewRecordBatch()
	defer rec.Release()
	return s.w.Write(rec)
}

func (s *writer) Close() error {
	err := s.w.Close()
	s.rb.Release()
	return err
}
