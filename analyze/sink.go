package analyze

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	pq "github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/compress/zstd"
)

// Writer paths for Parquet.
//
// Measured by BenchmarkWriterPath (analyze/bench_test.go) on this machine
// (2 cores, shared with other work), exec table of 500,000 events, zstd,
// same row groups and encodings, both paths interleaved in the same run
// (best of 4, three runs):
//
//	parquet-go GenericWriter[ExecRow]        2.1-3.1 M rows/s    8.8 B/event
//	arrow-go builders -> pqarrow.FileWriter  0.75-0.85 M rows/s  5.6 B/event
//
// parquet-go is about three times as fast since it encodes pages on two
// goroutines (parquetGoSink; twice as fast before), and pqarrow's files are
// a third smaller, but both are far below the raw 560 B/event, so ParquetGo
// is the default; the Arrow path is kept for --format arrow (IPC files) and
// for the measurement.
type WriterPath int

const (
	// ParquetGo writes row structs with parquet-go's GenericWriter.
	ParquetGo WriterPath = iota
	// ArrowParquet builds Arrow records and writes them with arrow-go's
	// pqarrow.
	ArrowParquet
)

func (p WriterPath) String() string {
	if p == ArrowParquet {
		return "arrow-pqarrow"
	}
	return "parquet-go"
}

// Row group and buffer sizes.
const (
	// rowGroupRows is the number of rows per Parquet row group (and per
	// Arrow record batch): large enough for good compression and few
	// footer entries, small enough that DuckDB parallelizes over row groups
	// and memory stays bounded (a few tens of MB per table).
	rowGroupRows = 128 << 10
	// writeRows is how many rows are buffered before parquet-go's Write.
	writeRows = 4096
	// pageRows is how many rows the parquet-go path writes between two
	// flushes of the pages (see parquetGoSink).
	pageRows = 16 << 10
)

// sink writes the rows of one table into one file.
type sink[R any] interface {
	write(rows []R) error
	// close finishes the file and syncs it.
	close() error
	// abort closes the file without finishing it.
	abort()
}

type fileOut struct {
	f  *os.File
	bw *bufio.Writer
}

func createOut(path string) (*fileOut, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, err
	}
	return &fileOut{f: f, bw: bufio.NewWriterSize(f, 1<<20)}, nil
}

func (o *fileOut) finish() error {
	err := o.bw.Flush()
	if err == nil {
		err = o.f.Sync()
	}
	if cerr := o.f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("%s: %w", o.f.Name(), err)
	}
	return nil
}

// parquetGoSink is the parquet-go path. GenericWriter.Write fills the
// column buffers; the sink then has the buffered pages of every column
// encoded, compressed and summarized (min/max) every pageRows rows and at
// each row group's end, on two goroutines (ColumnWriters are independent of
// each other until the row group is written out, serially, by Flush),
// rather than leaving it to Write, which does it column after column on the
// one goroutine that calls it. Encoding the pages is about 40% of the
// writing; sharing it with the otherwise idle time of the second core made
// the export of the exec table 10% faster (1.72 to 1.90 M rows/s, medians of
// 5 interleaved runs; same CPU time per row) for 1.4% more bytes (smaller
// pages: 8.64 to 8.77 B/event).
type parquetGoSink[R any] struct {
	out   *fileOut
	w     *parquet.GenericWriter[R]
	order []int // leaf columns, the costlier to flush first
	page  int   // rows written since the last flush of the pages
	group int   // rows in the current row group
}

// zstdCodec: SpeedFastest writes the exec table faster than SpeedDefault
// for 0.4% more bytes (8.64 vs 8.61 B/event).
var zstdCodec = &zstd.Codec{Level: zstd.SpeedFastest}

func newParquetGoSink[R any](path, version string, meta map[string]string) (sink[R], error) {
	out, err := createOut(path)
	if err != nil {
		return nil, err
	}
	opts := []parquet.WriterOption{
		parquet.Compression(zstdCodec),
		parquet.MaxRowsPerRowGroup(rowGroupRows),
		parquet.CreatedBy("ebpfrec", version, ""),
		parquet.PageBufferSize(1 << 20),
		// Min/max per page stay in the column index and per row group in the
		// column chunk statistics (what DuckDB prunes with); repeating them
		// in every data page header cost a fifth of the writing time.
		parquet.DataPageStatistics(false),
		// No min/max for argv elements and raw bytes: never pruned on, and
		// the argv bounds were a third of the remaining statistics cost.
		parquet.SkipPageBounds("args", "list", "element"),
		parquet.SkipPageBounds("bytes"),
	}
	for k, v := range meta {
		opts = append(opts, parquet.KeyValueMetadata(k, v))
	}
	w := parquet.NewGenericWriter[R](out.bw, opts...)
	return &parquetGoSink[R]{out: out, w: w, order: flushOrder(w.Schema())}, nil
}

// flushOrder returns the leaf columns of schema, repeated ones first, then
// byte arrays, then the others: the longest flushes are started first so
// that the two goroutines end at about the same time.
func flushOrder(schema *parquet.Schema) []int {
	cost := func(path []string) int {
		l, _ := schema.Lookup(path...)
		switch {
		case l.MaxRepetitionLevel > 0:
			return 2
		case l.Node.Type().Kind() == parquet.ByteArray:
			return 1
		}
		return 0
	}
	cols := schema.Columns()
	order := make([]int, len(cols))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return cost(cols[order[a]]) > cost(cols[order[b]]) })
	return order
}

func (s *parquetGoSink[R]) write(rows []R) error {
	for len(rows) > 0 {
		n := min(len(rows), pageRows-s.page, rowGroupRows-s.group)
		if _, err := s.w.Write(rows[:n]); err != nil {
			return err
		}
		rows = rows[n:]
		s.page += n
		s.group += n
		if s.page == pageRows || s.group == rowGroupRows {
			if err := s.flushPages(); err != nil {
				return err
			}
		}
		if s.group == rowGroupRows {
			if err := s.w.Flush(); err != nil {
				return err
			}
			s.group = 0
		}
	}
	return nil
}

// flushPages has the buffered page of every column encoded and compressed,
// on this goroutine and a helper, each taking the next column not taken.
func (s *parquetGoSink[R]) flushPages() error {
	s.page = 0
	cols := s.w.ColumnWriters()
	var next atomic.Int32
	var errs [2]error
	flush := func(k int) {
		for {
			i := int(next.Add(1)) - 1
			if i >= len(s.order) {
				return
			}
			if err := cols[s.order[i]].Flush(); err != nil && errs[k] == nil {
				errs[k] = err
			}
		}
	}
	var wg sync.WaitGroup
	wg.Go(func() { flush(1) })
	flush(0)
	wg.Wait()
	return errors.Join(errs[0], errs[1])
}

func (s *parquetGoSink[R]) close() error {
	err := s.flushPages()
	if err == nil {
		err = s.w.Close()
	}
	if err != nil {
		s.abort()
		return err
	}
	return s.out.finish()
}

func (s *parquetGoSink[R]) abort() { s.out.f.Close() }

// arrowSink builds Arrow records from rows and writes them as Parquet
// (pqarrow) or as an Arrow IPC file.
type arrowSink[R any] struct {
	out *fileOut
	l   *layout
	rb  *array.RecordBuilder
	pw  *pqarrow.FileWriter
	iw  *ipc.FileWriter
}

func newArrowSink[R any](path string, ipcFile bool, version string, meta map[string]string) (sink[R], error) {
	out, err := createOut(path)
	if err != nil {
		return nil, err
	}
	l := layoutOf[R]()
	s := &arrowSink[R]{out: out, l: l}
	keys, vals := make([]string, 0, len(meta)), make([]string, 0, len(meta))
	for k, v := range meta {
		keys, vals = append(keys, k), append(vals, v)
	}
	md := arrow.NewMetadata(keys, vals)
	if ipcFile {
		schema := arrow.NewSchema(l.arrowSchema("UTC").Fields(), &md)
		s.rb = array.NewRecordBuilder(memory.DefaultAllocator, schema)
		s.iw, err = ipc.NewFileWriter(out.bw, ipc.WithSchema(schema), ipc.WithAllocator(memory.DefaultAllocator))
	} else {
		schema := arrow.NewSchema(l.arrowSchema("").Fields(), &md)
		s.rb = array.NewRecordBuilder(memory.DefaultAllocator, schema)
		props := []pq.WriterProperty{
			pq.WithVersion(pq.V2_LATEST),
			pq.WithCompression(compress.Codecs.Zstd),
			pq.WithMaxRowGroupLength(rowGroupRows),
			pq.WithDictionaryDefault(false),
			pq.WithCreatedBy("ebpfrec " + version),
		}
		for _, f := range l.cols {
			switch {
			case f.dict:
				props = append(props, pq.WithDictionaryFor(f.name, true))
			case f.delta:
				props = append(props, pq.WithEncodingFor(f.name, pq.Encodings.DeltaBinaryPacked))
			}
		}
		s.pw, err = pqarrow.NewFileWriter(schema, out.bw, pq.NewWriterProperties(props...), pqarrow.NewArrowWriterProperties(pqarrow.WithStoreSchema()))
	}
	if err != nil {
		out.f.Close()
		return nil, err
	}
	return s, nil
}

func (s *arrowSink[R]) write(rows []R) error {
	if len(rows) == 0 {
		return nil
	}
	s.l.appendRows(s.rb, unsafe.Pointer(&rows[0]), len(rows))
	rec := s.rb.NewRecordBatch()
	defer rec.Release()
	if s.iw != nil {
		return s.iw.Write(rec)
	}
	return s.pw.Write(rec)
}

func (s *arrowSink[R]) close() error {
	var err error
	if s.iw != nil {
		err = s.iw.Close()
	} else {
		err = s.pw.Close()
	}
	s.rb.Release()
	if err != nil {
		s.abort()
		return err
	}
	return s.out.finish()
}

func (s *arrowSink[R]) abort() { s.out.f.Close() }
