package analyze

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/ebpfrec/ebpfrec/bpf/tracers/exec"
	"github.com/ebpfrec/ebpfrec/bpf/tracers/exit"
	"github.com/ebpfrec/ebpfrec/bpf/tracers/open"
	"github.com/ebpfrec/ebpfrec/bpf/tracers/syscalls"
	"github.com/ebpfrec/ebpfrec/bpf/tracers/tcp"
	"github.com/ebpfrec/ebpfrec/store"
)

// Format is the file format of an export.
type Format string

// Formats.
const (
	FormatParquet Format = "parquet"
	FormatArrow   Format = "arrow"
)

// ManifestFile is the name of the manifest in an export folder, written last.
const ManifestFile = "export.json"

// ManifestVersion is the version of the manifest this package writes.
const ManifestVersion = 1

// Errors of Export.
var (
	// ErrExists: the output folder already holds an export (Force replaces
	// it) or other files (never replaced).
	ErrExists = errors.New("output folder exists")
	// ErrDamaged: Strict refused a recording with damaged batches or events
	// that do not decode.
	ErrDamaged = errors.New("recording is damaged")
)

// Options configure Export.
type Options struct {
	// Format is FormatParquet (default) or FormatArrow (Arrow IPC files).
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
	// WriterPath chooses the Parquet writer (default ParquetGo, the faster:
	// see WriterPath).
	WriterPath WriterPath
	// Version is the tool version written into the files.
	Version string
}

// Progress is how far an export is.
type Progress struct {
	// Events and Batches read so far; TotalEvents from the recording's
	// summary (0 if unknown).
	Events, Batches, TotalEvents uint64
}

// Manifest describes a complete export; it is written last, as export.json.
type Manifest struct {
	Version     int       `json:"version"`
	Tool        string    `json:"tool"`
	Format      Format    `json:"format"`
	Partitioned bool      `json:"partitioned"`
	Recording   string    `json:"recording"`
	RecordingID string    `json:"recording_id"`
	Host        string    `json:"host"`
	Created     time.Time `json:"created"`
	// Tables lists every table with its files (relative, slash-separated).
	Tables         []TableFiles `json:"tables"`
	Batches        uint64       `json:"batches"`
	Events         uint64       `json:"events"`
	DamagedBatches uint64       `json:"damaged_batches"`
	DecodeErrors   uint64       `json:"decode_errors"`
	Warnings       []string     `json:"warnings,omitempty"`
}

// TableFiles is one table of an export.
type TableFiles struct {
	Name  string   `json:"name"`
	Rows  uint64   `json:"rows"`
	Files []string `json:"files"`
}

// Table returns the named table, if present.
func (m *Manifest) Table(name string) (TableFiles, bool) {
	for _, t := range m.Tables {
		if t.Name == name {
			return t, true
		}
	}
	return TableFiles{}, false
}

// ReadManifest reads the manifest of the export in dir.
func ReadManifest(dir string) (*Manifest, error) {
	b, err := os.ReadFile(filepath.Join(dir, ManifestFile))
	if err != nil {
		return nil, err
	}
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, ManifestFile), err)
	}
	if m.Version > ManifestVersion {
		return nil, fmt.Errorf("%s: manifest version %d is newer than this tool reads (%d)", dir, m.Version, ManifestVersion)
	}
	return &m, nil
}

// IsExport reports whether dir holds a complete export.
func IsExport(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, ManifestFile))
	return err == nil
}

// decoder says how a stream's events are decoded.
type decoder int

const (
	decRaw decoder = iota
	decExec
	decExit
	decOpen
	decTCP
	decSyscalls
)

// decoderOf returns the decoder of a recorded stream: a built-in tracer's
// event type, or raw. If the stream is a built-in tracer's but was
// recorded with another event type (layout) than the tracer now decodes,
// it is raw, and why says so.
func decoderOf(si store.StreamInfo) (dec decoder, why string) {
	if si.Object != nil {
		return decRaw, ""
	}
	var typ string
	switch si.Tracer {
	case exec.Name:
		dec, typ = decExec, exec.EventType
	case exit.Name:
		dec, typ = decExit, exit.EventType
	case open.Name:
		dec, typ = decOpen, open.EventType
	case tcp.Name:
		dec, typ = decTCP, tcp.EventType
	case syscalls.Name:
		dec, typ = decSyscalls, syscalls.EventType
	default:
		return decRaw, ""
	}
	if si.EventType != "" && si.EventType != typ {
		return decRaw, fmt.Sprintf("stream %s was recorded as event type %s; the %s tracer of this build decodes %s: its events go to the raw table", si.Name, si.EventType, si.Tracer, typ)
	}
	return dec, ""
}

type streamState struct {
	name string
	dec  decoder
	loss store.Loss // latest cumulative counters
}

// exporter is one run of Export.
type exporter struct {
	opts      Options
	partition bool
	tmp       string
	meta      store.Meta
	host      string
	off       int64 // MonoToWall
	err       error
	w         *writer
	waited    bool

	tables    []tabler
	exec      *table[ExecRow]
	exit      *table[ExitRow]
	open      *table[OpenRow]
	tcp       *table[TCPRow]
	syscalls  *table[SyscallRow]
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
	firstDecodeErr            string
	warnings                  []string
	moreWarnings              int

	execEv exec.Event
	execD  execDecoder
	exitEv exit.Event
	openEv open.Event
	tcpEv  tcp.Event
	sysEv  syscalls.Event
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

func (x *exporter) warn(format string, args ...any) {
	if len(x.warnings) < maxWarnings {
		x.warnings = append(x.warnings, fmt.Sprintf(format, args...))
	} else {
		x.moreWarnings++
	}
}

// cpuVals backs the cpu column's pointers (no allocation per row).
var cpuVals = func() (v [1024]int32) {
	for i := range v {
		v[i] = int32(i)
	}
	return v
}()

func cpuPtr(c int) *int32 {
	if c < 0 {
		return nil
	}
	if c < len(cpuVals) {
		return &cpuVals[c]
	}
	v := int32(c)
	return &v
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
	s := &streamState{name: strings.Clone(name), dec: decRaw}
	x.streams[s.name] = s
	x.warn("stream %q is not declared in the recording's metadata: exported to the raw table", name)
	return s
}

// Export exports the recording in dir into the folder out: one file per
// table (per partition with Partition), and export.json. It writes into a
// temporary folder next to out and renames it into place at the end, so an
// interrupted or failed export leaves nothing that looks complete. It
// refuses an out that already holds an export unless Force, and never
// replaces a folder that holds anything else.
func Export(ctx context.Context, dir, out string, opts Options) (*Manifest, error) {
	if opts.Format == "" {
		opts.Format = FormatParquet
	}
	if opts.Format != FormatParquet && opts.Format != FormatArrow {
		return nil, fmt.Errorf("export: unknown format %q (parquet or arrow)", opts.Format)
	}
	if err := checkOutput(dir, out, opts.Force); err != nil {
		return nil, err
	}
	var total uint64
	if sum, err := store.Info(dir); err == nil {
		total = sum.Events
	}
	x := &exporter{opts: opts, partition: opts.Partition, streams: map[string]*streamState{}}
	r, err := store.Open(dir, store.ReaderOptions{OnLoss: x.onLoss})
	if err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	defer r.Close()
	x.meta = r.Meta()
	x.off = x.meta.MonoToWall
	x.host = partValue(x.meta.Hostname)
	for _, si := range x.meta.Streams {
		dec, why := decoderOf(si)
		if why != "" {
			x.warn("%s", why)
		}
		x.streams[si.Name] = &streamState{name: si.Name, dec: dec}
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
	x.tmp, err = os.MkdirTemp(parent, "."+filepath.Base(out)+".tmp-")
	if err != nil {
		return nil, fmt.Errorf("export: cannot write into %s: %w", parent, err)
	}
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
			os.RemoveAll(x.tmp)
		}
	}()
	x.exec = newTable[ExecRow](x, TableExec)
	x.exit = newTable[ExitRow](x, TableExit)
	x.open = newTable[OpenRow](x, TableOpen)
	x.tcp = newTable[TCPRow](x, TableTCP)
	x.syscalls = newTable[SyscallRow](x, TableSyscalls)
	x.raw = newTable[RawRow](x, TableRaw)
	x.losses = newTable[LossRow](x, TableLosses)
	x.recording = newTable[RecordingRow](x, TableRecording)

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
				return nil, fmt.Errorf("export: %w: %v (exporting around damage is refused with --strict)", ErrDamaged, err)
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
			return nil, fmt.Errorf("export: %w: %s (refused with --strict)", ErrDamaged, x.firstDecodeErr)
		}
		if x.batches%256 == 0 {
			progress()
		}
	}
	progress()
	x.addRecording(r, dir)
	m, err := x.finish(dir)
	if err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	if err := install(x.tmp, out, opts.Force); err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
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

// checkOutput refuses an output folder that holds an export (without
// force) or anything else, or that is the recording itself.
func checkOutput(dir, out string, force bool) error {
	ad, err1 := filepath.Abs(dir)
	ao, err2 := filepath.Abs(out)
	if err1 == nil && err2 == nil {
		if ad == ao || strings.HasPrefix(ao, ad+string(filepath.Separator)) {
			return fmt.Errorf("export: %w: %s is inside the recording %s", ErrExists, out, dir)
		}
	}
	st, err := os.Stat(out)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("export: %w", err)
	}
	if !st.IsDir() {
		return fmt.Errorf("export: %w: %s is a file", ErrExists, out)
	}
	if IsExport(out) {
		if force {
			return nil
		}
		return fmt.Errorf("export: %w: %s already holds an export (--force replaces it)", ErrExists, out)
	}
	ents, err := os.ReadDir(out)
	if err != nil {
		return fmt.Errorf("export: %w", err)
	}
	if len(ents) > 0 {
		return fmt.Errorf("export: %w: %s is not empty and holds no export; not replacing it", ErrExists, out)
	}
	return nil
}

// install renames the finished temporary folder to out, replacing an
// existing export (force) or empty folder.
func install(tmp, out string, force bool) error {
	if ents, err := os.ReadDir(out); err == nil && len(ents) == 0 {
		os.Remove(out) // os.Rename does not replace a directory
	}
	if err := os.Rename(tmp, out); err == nil {
		syncDir(filepath.Dir(out))
		return nil
	}
	// out exists and is not empty: it must be an export, replaced with force.
	if !IsExport(out) {
		return fmt.Errorf("%w: %s (it appeared during the export)", ErrExists, out)
	}
	if !force {
		return fmt.Errorf("%w: %s already holds an export (--force replaces it)", ErrExists, out)
	}
	old := tmp + ".old"
	if err := os.Rename(out, old); err != nil {
		return fmt.Errorf("replace %s: %w", out, err)
	}
	if err := os.Rename(tmp, out); err != nil {
		os.Rename(old, out)
		return fmt.Errorf("replace %s: %w", out, err)
	}
	syncDir(filepath.Dir(out))
	return os.RemoveAll(old)
}

func syncDir(dir string) {
	if f, err := os.Open(dir); err == nil {
		f.Sync()
		f.Close()
	}
}

func (x *exporter) onLoss(lp store.LossPoint) {
	s := x.stream(lp.Stream)
	x.counters(s, lp.Time.UnixNano(), lp.Seq, lp.Loss)
}

// counters emits a losses row for the increase of s's cumulative counters
// over the highest values seen. Batches and loss points carry snapshots
// taken by different goroutines of the recorder, so one may be older than
// the one before it in the log: a lower value is stale, not a reset.
func (x *exporter) counters(s *streamState, t int64, seq uint64, l store.Loss) {
	d := rise(&s.loss, l)
	if d.Total() == 0 {
		return
	}
	r := x.losses.add(t)
	*r = LossRow{Time: t, Stream: s.name, Seq: seq, Source: LossCounters,
		KernelLost: d.KernelLost, RingbufDropped: d.RingbufDropped, UserDropped: d.UserDropped}
}

// rise raises the high-water marks hw to l and returns by how much.
func rise(hw *store.Loss, l store.Loss) store.Loss {
	up := func(h *uint64, v uint64) uint64 {
		if v > *h {
			d := v - *h
			*h = v
			return d
		}
		return 0
	}
	return store.Loss{
		KernelLost:     up(&hw.KernelLost, l.KernelLost),
		RingbufDropped: up(&hw.RingbufDropped, l.RingbufDropped),
		UserDropped:    up(&hw.UserDropped, l.UserDropped),
	}
}

func (x *exporter) batch(b *store.Batch) {
	s := x.stream(b.Stream)
	x.batches++
	x.events += uint64(len(b.Events))
	seq := b.Seq
	name := s.name
	off := x.off
	switch s.dec {
	case decExec:
		ev := &x.execEv
		for i := range b.Events {
			e := &b.Events[i]
			if err := x.execD.decode(e.Raw, ev); err != nil {
				x.undecodable(s, b, i, err)
				continue
			}
			t := int64(ev.KtimeNs) + off
			x.seenTime(t)
			*x.exec.add(t) = ExecRow{Time: t, KtimeNs: ev.KtimeNs, Stream: name, CPU: cpuPtr(e.CPU), Seq: seq,
				Pid: ev.Pid, Ppid: ev.Ppid, UID: ev.UID, OldPid: ev.OldPid, Comm: ev.Command,
				Filename: ev.Filename, FilenameTruncated: ev.FilenameTruncated, Args: ev.Args, ArgsTruncated: ev.ArgsTruncated}
		}
	case decExit:
		ev := &x.exitEv
		for i := range b.Events {
			e := &b.Events[i]
			if err := exit.Decode(e.Raw, ev); err != nil {
				x.undecodable(s, b, i, err)
				continue
			}
			t := int64(ev.KtimeNs) + off
			x.seenTime(t)
			*x.exit.add(t) = ExitRow{Time: t, KtimeNs: ev.KtimeNs, Stream: name, CPU: cpuPtr(e.CPU), Seq: seq,
				Pid: ev.Pid, Ppid: ev.Ppid, Tid: ev.Tid, Comm: ev.Command, ExitCode: ev.ExitCode,
				Signal: ev.Signal, CoreDumped: ev.CoreDumped, Status: ev.Status, LifetimeNs: ev.LifetimeNs}
		}
	case decOpen:
		ev := &x.openEv
		for i := range b.Events {
			e := &b.Events[i]
			if err := open.Decode(e.Raw, ev); err != nil {
				x.undecodable(s, b, i, err)
				continue
			}
			t := int64(ev.KtimeNs) + off
			x.seenTime(t)
			*x.open.add(t) = OpenRow{Time: t, KtimeNs: ev.KtimeNs, Stream: name, CPU: cpuPtr(e.CPU), Seq: seq,
				Pid: ev.Pid, Tid: ev.Tid, Comm: ev.Command, Syscall: ev.Syscall, Path: ev.Path, Dfd: ev.Dfd,
				Flags: ev.Flags, Mode: ev.Mode, Ret: ev.Ret, LatencyNs: ev.LatencyNs}
		}
	case decTCP:
		ev := &x.tcpEv
		for i := range b.Events {
			e := &b.Events[i]
			if err := tcp.Decode(e.Raw, ev); err != nil {
				x.undecodable(s, b, i, err)
				continue
			}
			t := int64(ev.KtimeNs) + off
			x.seenTime(t)
			*x.tcp.add(t) = TCPRow{Time: t, KtimeNs: ev.KtimeNs, Stream: name, CPU: cpuPtr(e.CPU), Seq: seq,
				Pid: ev.Pid, Comm: ev.Command, Socket: ev.Socket, Family: ev.Family, Saddr: ev.Saddr,
				Sport: ev.Sport, Daddr: ev.Daddr, Dport: ev.Dport, OldState: ev.OldState, NewState: ev.NewState,
				Old: ev.Old, New: ev.New}
		}
	case decSyscalls:
		ev := &x.sysEv
		for i := range b.Events {
			e := &b.Events[i]
			if err := syscalls.Decode(e.Raw, ev); err != nil {
				x.undecodable(s, b, i, err)
				continue
			}
			t := int64(ev.KtimeNs) + off
			x.seenTime(t)
			*x.syscalls.add(t) = SyscallRow{Time: t, KtimeNs: ev.KtimeNs, Stream: name, CPU: cpuPtr(e.CPU), Seq: seq,
				Pid: ev.Pid, Nr: ev.Nr, Syscall: ev.Syscall, Ret: ev.Ret, LatencyNs: ev.LatencyNs}
		}
	default:
		for i := range b.Events {
			x.rawRow(s, b, i, nil)
		}
	}
	for i := range b.Events {
		e := &b.Events[i]
		x.rawBytes += uint64(len(e.Raw))
		if e.Lost > 0 {
			t := e.Timestamp.UnixNano()
			*x.losses.add(t) = LossRow{Time: t, Stream: name, CPU: cpuPtr(e.CPU), Seq: seq,
				Source: LossPerfSample, KernelLost: e.Lost}
		}
	}
	if n := len(b.Events); n > 0 {
		x.lastTime = b.Events[n-1].Timestamp.UnixNano()
	}
	if b.Loss != s.loss {
		x.counters(s, x.lastTime, seq, b.Loss)
	}
}

func (x *exporter) undecodable(s *streamState, b *store.Batch, i int, err error) {
	x.decodeErrs++
	msg := err.Error()
	where := fmt.Sprintf("stream %s, batch %d, event %d: %v", s.name, b.Seq, i, err)
	if x.firstDecodeErr == "" {
		x.firstDecodeErr = where
	}
	x.warn("%s: exported to the raw table", where)
	x.rawRow(s, b, i, &msg)
}

func (x *exporter) rawRow(s *streamState, b *store.Batch, i int, msg *string) {
	e := &b.Events[i]
	t := e.Timestamp.UnixNano()
	x.seenTime(t)
	*x.raw.add(t) = RawRow{Time: t, Stream: s.name, CPU: cpuPtr(e.CPU), Seq: b.Seq, Index: uint32(i),
		Length: uint32(len(e.Raw)), Bytes: bytes.Clone(e.Raw), Error: msg}
}

func (x *exporter) addRecording(r *store.Reader, dir string) {
	m := x.meta
	var tracerNames, streamNames []string
	for _, si := range m.Streams {
		streamNames = append(streamNames, si.Name)
		if si.Tracer != "" && !slices.Contains(tracerNames, si.Tracer) {
			tracerNames = append(tracerNames, si.Tracer)
		}
	}
	sort.Strings(tracerNames)
	row := RecordingRow{
		RecordingID: m.RecordingID, Host: m.Hostname, Kernel: m.KernelRelease, BootID: m.BootID,
		BTFID: m.BTFID, ToolVersion: m.ToolVersion, CommandLine: m.CommandLine,
		Started: m.Started.UnixNano(), MonoToWallNs: m.MonoToWall,
		Tracers: tracerNames, Streams: streamNames, Segments: uint32(len(r.Segments())),
		Batches: x.batches, Events: x.events, RawBytes: x.rawBytes,
		DamagedBatches: x.damaged, DecodeErrors: x.decodeErrs, ExportedAt: time.Now().UnixNano(),
	}
	if abs, err := filepath.Abs(dir); err == nil {
		row.Source = abs
	}
	t := m.Started.UnixNano()
	if x.anyT {
		lo, hi := x.minT, x.maxT
		row.FirstEvent, row.LastEvent = &lo, &hi
		t = lo
	}
	*x.recording.add(t) = row
}

func (x *exporter) finish(dir string) (*Manifest, error) {
	if x.execD.old > 0 {
		x.warnings = append(x.warnings, fmt.Sprintf("%d exec events have the %d-byte layout of an older exec tracer (no arguments recorded): exported with empty args", x.execD.old, execV1Size))
	}
	if x.moreWarnings > 0 {
		x.warnings = append(x.warnings, fmt.Sprintf("... and %d more warnings", x.moreWarnings))
	}
	if x.damaged > 0 {
		x.warnings = append([]string{fmt.Sprintf("%d damaged part(s) of the recording were skipped; the export holds the intact data around them", x.damaged)}, x.warnings...)
	}
	// Every table gets a file, even empty, so that every view exists.
	key := ""
	if x.partition {
		t := x.meta.Started.UnixNano()
		if x.anyT {
			t = x.minT
		}
		key = x.partKey(floorDiv(t, nsPerDay))
	}
	m := &Manifest{
		Version: ManifestVersion, Tool: "ebpfrec " + x.opts.Version, Format: x.opts.Format,
		Partitioned: x.partition, RecordingID: x.meta.RecordingID, Host: x.meta.Hostname,
		Created: time.Now().UTC(), Batches: x.batches, Events: x.events,
		DamagedBatches: x.damaged, DecodeErrors: x.decodeErrs, Warnings: x.warnings,
	}
	if abs, err := filepath.Abs(dir); err == nil {
		m.Recording = abs
	}
	for _, t := range x.tables {
		t.ensure(key)
		m.Tables = append(m.Tables, TableFiles{Name: t.tableName(), Rows: t.rowCount(), Files: t.finish()})
	}
	x.waited = true
	if err := x.w.wait(); err != nil {
		return nil, err
	}
	if x.err != nil {
		return nil, x.err
	}
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, err
	}
	out, err := createOut(filepath.Join(x.tmp, ManifestFile))
	if err != nil {
		return nil, err
	}
	out.bw.Write(append(b, '\n'))
	if err := out.finish(); err != nil {
		return nil, err
	}
	syncDir(x.tmp)
	return m, nil
}
