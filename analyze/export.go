package analyze

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ebpfrec/ebpfrec/analyze/internal/tablesink"
	"github.com/ebpfrec/ebpfrec/analyze/manifest"
	"github.com/ebpfrec/ebpfrec/bpf/btflayout"
	"github.com/ebpfrec/ebpfrec/bpf/tracers/proc"
	"github.com/ebpfrec/ebpfrec/internal/proctable"
	"github.com/ebpfrec/ebpfrec/internal/tmpdir"
	"github.com/ebpfrec/ebpfrec/replay"
	"github.com/ebpfrec/ebpfrec/store"
)

// Format is the file format of an export (see package manifest, which
// reads exports without linking this package's writers).
type Format = manifest.Format

// Formats.
const (
	FormatParquet = manifest.FormatParquet
	FormatArrow   = manifest.FormatArrow
)

// Manifest describes a complete export; Export writes it last, as
// manifest.File (export.json), and manifest.Read reads it back, checked.
type Manifest = manifest.Manifest

// TableFiles is one table of an export.
type TableFiles = manifest.TableFiles

// Errors of Export.
var (
	// ErrExists: the output folder already holds an export (Force replaces
	// it) or other files (never replaced).
	ErrExists = errors.New("output folder exists")
	// ErrNoOutput: Export was given no output folder ("").
	ErrNoOutput = errors.New("no output folder")
	// ErrDamaged: Strict refused a recording with damaged batches or events
	// that do not decode.
	ErrDamaged = errors.New("recording is damaged")
	// ErrFormatNotLinked: the format's writer is not linked into this
	// program. Parquet always is; Arrow is in analyze/arrowexport, which
	// ebpfrec-query links and the lean recorder ebpfrec does not (ebpfrec
	// export --format arrow runs ebpfrec-query). The error says which
	// program writes the format.
	ErrFormatNotLinked = errors.New("export format not linked into this program")
)

// formatHome says, per format that a package of its own writes, which
// program has it and how a Go program links it.
var formatHome = map[Format]string{
	FormatArrow: "Arrow is written by the companion program ebpfrec-query (which `ebpfrec export --format arrow` runs); " +
		"a Go program links it by importing github.com/ebpfrec/ebpfrec/analyze/arrowexport",
}

// Options configure Export.
type Options struct {
	// Format is FormatParquet (default) or FormatArrow (Arrow IPC files).
	// Arrow needs analyze/arrowexport linked (ErrFormatNotLinked).
	Format Format
	// Partition writes Hive-style folders host=HOST/date=YYYY-MM-DD/.
	Partition bool
	// Force replaces an existing export in the output folder.
	Force bool
	// Strict refuses a recording with damaged batches or undecodable events
	// instead of exporting around them with warnings.
	Strict bool
	// Progress, if set, is called now and then with the progress.
	Progress func(Progress)
	// Version is the tool version written into the files.
	Version string
	// Order bounds the window in which each table's rows are put in time
	// order (zero: replay's defaults, 500 ms and 65536 rows per table).
	// A row later than the window is written where it arrives, and the
	// export warns how many were.
	Order replay.OrderOptions

	// writerPath chooses the Parquet writer: the tests set arrowParquet
	// (see writerPath).
	writerPath writerPath
	// noProcesses leaves the process table empty, as for a recording
	// without a proc stream: the baseline of BenchmarkExportProcessJoin.
	noProcesses bool
	// recordedOrder writes rows as they are read, without the time-order
	// window (the benchmark's baseline: the export before time order).
	recordedOrder bool
}

// Progress is how far an export is.
type Progress struct {
	// Events and Batches read so far; TotalEvents those of the closed
	// segments, from their summaries (a segment not closed is not counted
	// ahead; 0 if none is closed).
	Events, Batches, TotalEvents uint64
}

// decoder says how a stream's events are decoded.
type decoder int

const (
	decRaw     decoder = iota
	decBuiltin         // by a built-in tracer's Go decoder, into its table (builtins)
	decLayout          // a stream decoded by the layout it stored: a table of its own
)

// streamDecoding is how export and summary decode a recorded stream.
type streamDecoding struct {
	dec     decoder
	builtin builtin           // decBuiltin: its tracer's entry
	layout  *btflayout.Layout // decLayout
	// why says why a stream that might have decoded does not, and lists
	// what its layout keeps as bytes.
	why []string
}

// decoderOf returns how export and summary decode a recorded stream, as
// replay.DecoderOf decides for replay, export and summary alike: into the
// typed table of the built-in tracer whose Go decoder decodes it
// (builtins), into the stream's own table of the layout it stored
// (decLayout), or into the raw table.
func decoderOf(si store.StreamInfo) streamDecoding {
	sd := replay.DecoderOf(si)
	if sd.Builtin != nil {
		if b := builtinOf(sd.Tracer); b != nil {
			return streamDecoding{dec: decBuiltin, builtin: b}
		}
		if len(si.Layout) == 0 {
			return streamDecoding{dec: decRaw}
		}
		// A tracer without a table of its own: by its layout, if stored.
		sd = &replay.StreamDecoder{Info: si}
		if l, err := btflayout.Unmarshal(si.Layout); err == nil {
			sd.Layout = l
		} else {
			sd.Err = err
		}
	}
	var why []string
	if sd.Layout != nil {
		for _, w := range sd.Layout.Warnings {
			why = append(why, fmt.Sprintf("stream %s (struct %s): %s", si.Name, sd.Layout.Name, w))
		}
		return streamDecoding{dec: decLayout, layout: sd.Layout, why: why}
	}
	if sd.Err != nil {
		why = append(why, fmt.Sprintf("%v: its events go to the raw table", sd.Err))
	}
	return streamDecoding{dec: decRaw, why: why}
}

type streamState struct {
	name       string
	dec        decoder
	builtin    builtin    // decBuiltin: its tracer's entry
	add        eventAdder // decBuiltin: adds an event to the tracer's table
	user       *userTable // decLayout: the stream's table
	loss       store.Loss // latest cumulative counters
	perfSample uint64     // running total of the perf_sample rows
}

// exporter is one run of Export.
type exporter struct {
	opts      Options
	partition bool
	tmp       string      // the temporary folder, tmpd's path
	tmpd      *tmpdir.Dir // held until the export is in place or removed
	meta      store.Meta
	host      string
	err       error
	w         *writer
	waited    bool

	tables    []tabler
	processes *table[ProcessRow]
	raw       *table[RawRow]
	losses    *table[LossRow]
	recording *table[RecordingRow]

	streams  map[string]*streamState
	lastTime int64
	minT     int64
	maxT     int64
	anyT     bool

	batches, events, rawBytes uint64
	damaged, decodeErrs       uint64
	notUTF8                   uint64 // text values made valid UTF-8 (see text)
	firstDecodeErr            string
	warnings                  []string
	moreWarnings              int

	// endWarnings are the warnings of the tracers' decoders, added when
	// the export ends.
	endWarnings []func() string

	// procs is the recording's process table (empty without a proc stream).
	procs *proc.Table
}

func (x *exporter) fail(err error) {
	if x.err == nil {
		x.err = err
	}
}

func (x *exporter) ext() string {
	if x.opts.Format == FormatArrow {
		return "arrow"
	}
	return "parquet"
}

func (x *exporter) partKey(day int64) string {
	d := time.Unix(day*86400, 0).UTC().Format(time.DateOnly)
	return "host=" + x.host + "/date=" + d
}

const maxWarnings = 20

// LiveWarning is the warning of a summary or export of a recording that a
// recorder is still writing.
const LiveWarning = "the recording is still being written: read up to its recorder's last commit (run again for more)"

func (x *exporter) warn(format string, args ...any) {
	if len(x.warnings) < maxWarnings {
		x.warnings = append(x.warnings, fmt.Sprintf(format, args...))
	} else {
		x.moreWarnings++
	}
}

func (x *exporter) seenTime(t int64) {
	if !x.anyT {
		x.minT, x.maxT, x.anyT = t, t, true
		return
	}
	if t < x.minT {
		x.minT = t
	}
	if t > x.maxT {
		x.maxT = t
	}
}

func (x *exporter) stream(name string) *streamState {
	if s := x.streams[name]; s != nil {
		return s
	}
	s := &streamState{name: x.text(strings.Clone(name)), dec: decRaw}
	x.streams[strings.Clone(name)] = s // by the recorded name, which s.name may not be
	x.warn("stream %q is not declared in the recording's metadata: exported to the raw table", name)
	return s
}

// Export exports the recording in dir into the folder out: one file per
// table (per partition with Partition), and export.json. It writes into a
// temporary folder next to out and renames it into place at the end, so an
// interrupted or failed export leaves nothing that looks complete; the
// temporary folder of an earlier export to out that was killed is removed
// (the folder of one still running is locked, and left alone). It
// refuses an out that already holds an export unless Force, and never
// replaces a folder that holds anything else.
func Export(ctx context.Context, dir, out string, opts Options) (*Manifest, error) {
	if opts.Format == "" {
		opts.Format = FormatParquet
	}
	if opts.Format != FormatParquet && opts.Format != FormatArrow {
		return nil, fmt.Errorf("export: unknown format %q (parquet or arrow)", opts.Format)
	}
	if opts.Format != FormatParquet && tablesink.Lookup(opts.Format) == nil {
		return nil, fmt.Errorf("export: format %s: %w: %s", opts.Format, ErrFormatNotLinked, formatHome[opts.Format])
	}
	// The recording first: a folder that holds none is said so, not
	// called a recording the output would be inside of.
	x := &exporter{opts: opts, partition: opts.Partition, streams: map[string]*streamState{}}
	r, err := store.Open(dir, store.ReaderOptions{OnLoss: x.onLoss})
	if err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	defer r.Close()
	if err := checkOutput(dir, out, opts.Force); err != nil {
		return nil, err
	}
	// The progress total: the closed segments' summaries, from the one
	// inspection Open made (the others' events are not counted ahead).
	var total uint64
	for _, si := range r.Segments() {
		if si.Summary != nil {
			total += si.Summary.Events
		}
	}
	if r.Live() {
		x.warn("%s", LiveWarning)
	}
	x.meta = r.Meta()
	x.host = partValue(x.meta.Hostname)
	layouts := map[string]*btflayout.Layout{}
	for _, si := range x.meta.Streams {
		d := decoderOf(si)
		for _, w := range d.why {
			x.warn("%s", w)
		}
		if d.dec == decLayout && opts.Format != FormatParquet {
			x.warn("stream %s: decoded by its layout, it exports to Parquet only: its events go to the raw table", si.Name)
			d.dec = decRaw
		}
		if d.dec == decLayout {
			layouts[si.Name] = d.layout
		}
		x.streams[si.Name] = &streamState{name: x.text(si.Name), dec: d.dec, builtin: d.builtin}
	}
	for _, s := range r.Segments() {
		if s.Skipped != "" {
			x.warn("segment %d skipped: %s", s.Index, s.Skipped)
		}
	}

	parent := filepath.Dir(filepath.Clean(out))
	if err := os.MkdirAll(parent, 0o700); err != nil {
		return nil, fmt.Errorf("export: cannot create %s: %w", parent, err)
	}
	// An export killed before it finished (SIGKILL, a crash) left its
	// temporary folder; those of exports still running are locked.
	prefix := "." + filepath.Base(out) + ".tmp-"
	_, _ = tmpdir.RemoveStale(parent, prefix) // best effort: this export goes on anyway
	x.tmpd, err = tmpdir.New(parent, prefix)
	if err != nil {
		return nil, fmt.Errorf("export: cannot write into %s: %w", parent, err)
	}
	x.tmp = x.tmpd.Path
	x.w = newWriter()
	ok := false
	defer func() {
		if !ok {
			if !x.waited {
				x.w.wait()
			}
			for _, t := range x.tables {
				t.abort()
			}
			x.tmpd.Remove()
		}
	}()
	// The tracers' tables first, in the order of Tables.
	adders := map[builtin]eventAdder{}
	for _, b := range builtins {
		adders[b] = b.export(x)
	}
	for _, s := range x.streams {
		if s.builtin != nil {
			s.add = adders[s.builtin]
		}
	}
	x.processes = newTable[ProcessRow](x, TableProcesses)
	x.raw = newTable[RawRow](x, TableRaw)
	x.losses = newTable[LossRow](x, TableLosses)
	x.recording = newTable[RecordingRow](x, TableRecording)
	// A table per stream decoded by its layout, named after the stream.
	taken := map[string]bool{}
	for _, t := range x.tables {
		taken[t.tableName()] = true
	}
	for _, si := range x.meta.Streams {
		if l := layouts[si.Name]; l != nil {
			x.streams[si.Name].user = newUserTable(x, userTableName(si.Name, taken), l)
		}
	}

	// The process table first: every event's row resolves its process.
	procs, bad, err := proctable.Load(dir)
	if opts.noProcesses {
		procs, bad, err = proc.NewTable(), 0, nil
	}
	if err != nil {
		x.warn("process table incomplete: %v", err)
	}
	if bad > 0 {
		x.warn("process table: %d events of the proc stream do not decode", bad)
	}
	x.procs = procs
	x.textProcesses()

	progress := func() {
		if opts.Progress != nil {
			opts.Progress(Progress{Events: x.events, Batches: x.batches, TotalEvents: total})
		}
	}
	progress()
	for {
		b, err := r.Next()
		if err == io.EOF {
			break
		}
		if cerr := ctx.Err(); cerr != nil {
			return nil, fmt.Errorf("export: %w", cerr)
		}
		var ce *store.CorruptError
		if errors.As(err, &ce) {
			x.damaged++
			if opts.Strict {
				return nil, fmt.Errorf("export: %w: %v (exporting around damage is refused with Options.Strict, --strict)", ErrDamaged, err)
			}
			x.warn("damaged data skipped: %v", err)
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("export: %w", err)
		}
		x.batch(b)
		if x.err == nil {
			x.err = x.w.error()
		}
		if x.err != nil {
			return nil, fmt.Errorf("export: %w", x.err)
		}
		if opts.Strict && x.decodeErrs > 0 {
			return nil, fmt.Errorf("export: %w: %s (refused with Options.Strict, --strict)", ErrDamaged, x.firstDecodeErr)
		}
		if x.batches%256 == 0 {
			progress()
		}
	}
	progress()
	x.addProcesses()
	x.addRecording(r, dir)
	m, err := x.finish(dir)
	if err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	if err := install(x.tmpd, out, opts.Force); err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	x.tmpd.Release() // renamed into place: out now
	ok = true
	return m, nil
}

// partValue makes a string safe as a Hive partition value and folder name.
func partValue(s string) string {
	if s == "" {
		return "unknown"
	}
	return strings.ReplaceAll(url.PathEscape(s), "=", "%3D")
}
