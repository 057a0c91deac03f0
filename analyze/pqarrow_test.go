package analyze

import (
	"io"

	"github.com/apache/arrow-go/v18/arrow"
	pq "github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/ebpfrec/ebpfrec/analyze/arrowexport" // and --format arrow
	"github.com/ebpfrec/ebpfrec/analyze/internal/tablesink"
)

// The pqarrow writer: a second Parquet writer of the same tables, which
// the tests compare with parquet-go's files and BenchmarkWriterPath
// measures against it. It is here, not in the package: see writerPath.
// It builds its Arrow records with analyze/arrowexport, which the import
// also links for the tests of FormatArrow.
func init() {
	pqarrowFactory = arrowexport.Factory("", func(schema *arrow.Schema, w io.Writer, l *tablesink.Layout, version string) (arrowexport.RecordWriter, error) {
		props := []pq.WriterProperty{
			pq.WithVersion(pq.V2_LATEST),
			pq.WithCompression(compress.Codecs.Zstd),
			pq.WithMaxRowGroupLength(rowGroupRows),
			pq.WithDictionaryDefault(false),
			pq.WithCreatedBy("ebpfrec " + version),
		}
		for _, f := range l.Columns {
			switch {
			case f.Dict:
				props = append(props, pq.WithDictionaryFor(f.Name, true))
			case f.Delta:
				props = append(props, pq.WithEncodingFor(f.Name, pq.Encodings.DeltaBinaryPacked))
			}
		}
		return pqarrow.NewFileWriter(schema, w, pq.NewWriterProperties(props...), pqarrow.NewArrowWriterProperties(pqarrow.WithStoreSchema()))
	})
}
