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

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/compress/zstd"

	"github.com/ebpfrec/ebpfrec/analyze/internal/tablesink"
)

// writerPath chooses how Parquet is written. Export writes with
// parquet-go, which encodes pages on two goroutines and was about three
// times as fast as arrow-go's pqarrow (figures in the README). The pqarrow
// writer lives in the tests (pqarrow_test.go sets pqarrowFactory): a
// second, independent writer of the same tables that the tests compare,
// and the benchmark's baseline; linked into the command it brought arrow's
// compute kernels and Flight's gRPC, 28 of the lean recorder's 66 MB. The
// Arrow builders (--format arrow, IPC files) are in analyze/arrowexport,
// which the programs that write Arrow link (ebpfrec-query, not ebpfrec).
type writerPath int

const (
	// parquetGo writes row structs with parquet-go's GenericWriter.
	parquetGo writerPath = iota
	// arrowParquet builds Arrow records and writes them with
	// pqarrowFactory (tests only).
	arrowParquet
)

func (p writerPath) String() string {
	if p == arrowParquet {
		return "arrow-pqarrow"
	}
	return "parquet-go"
}

// pqarrowFactory, when set (by the tests), writes a table as Parquet
// through arrow-go's pqarrow: the arrowParquet path.
var pqarrowFactory tablesink.Factory

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

// formatSink writes a table in a format registered with tablesink (Arrow,
// or the tests' pqarrow Parquet): the format encodes, the sink owns the
// file, as parquetGoSink does.
type formatSink[R any] struct {
	out *fileOut
	w   tablesink.Writer
}

func newFormatSink[R any](f tablesink.Factory, path, version string, meta map[string]string) (sink[R], error) {
	out, err := createOut(path)
	if err != nil {
		return nil, err
	}
	w, err := f(out.bw, tablesink.LayoutOf[R](), version, meta)
	if err != nil {
		out.f.Close()
		return nil, err
	}
	return &formatSink[R]{out: out, w: w}, nil
}

func (s *formatSink[R]) write(rows []R) error {
	if len(rows) == 0 {
		return nil
	}
	return s.w.Write(unsafe.Pointer(&rows[0]), len(rows))
}

func (s *formatSink[R]) close() error {
	if err := s.w.Close(); err != nil {
		s.abort()
		return err
	}
	return s.out.finish()
}

func (s *formatSink[R]) abort() { s.out.f.Close() }
