package analyze

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/ebpfrec/ebpfrec/bpf/btflayout"
	"github.com/ebpfrec/ebpfrec/bpf/tracers/proc"
	"github.com/ebpfrec/ebpfrec/internal/lossterms"
	"github.com/ebpfrec/ebpfrec/internal/proctable"
	"github.com/ebpfrec/ebpfrec/store"
)

// SummaryOptions configure Summarize.
type SummaryOptions struct {
	// Top is how many entries the top lists keep (default 10).
	Top int
	// Buckets is how many time buckets the loss series has (default 10).
	Buckets int
}

// Summary is what a person wants to know first about a recording.
type Summary struct {
	Recording   string    `json:"recording"`
	RecordingID string    `json:"recording_id"`
	Host        string    `json:"host"`
	Kernel      string    `json:"kernel"`
	From        time.Time `json:"from"`
	To          time.Time `json:"to"`
	Batches     uint64    `json:"batches"`
	Events      uint64    `json:"events"`
	// Deleted, if not nil, is the history a flight recorder's retention
	// deleted before the first segment: the counts above are of what
	// remains.
	Deleted *store.Deleted `json:"deleted,omitempty"`
	// Streams counts events per stream (with its tracer; "" if unknown).
	Streams      []StreamCount  `json:"streams"`
	TopProcesses []ProcessCount `json:"top_processes"`
	Execs        uint64         `json:"execs"`
	Exits        uint64         `json:"exits"`
	// Killed counts exits by a signal.
	Killed   uint64      `json:"killed"`
	TopExecs []NameCount `json:"top_execs"`
	TopFiles []FileCount `json:"top_files"`
	TCPPeers []PeerCount `json:"tcp_peers"`
	// Loss is per stream with any loss.
	Loss []StreamLoss `json:"loss"`
	// KernelMissedUncounted lists the streams whose kernel_missed (runs of
	// their programs the kernel skipped) was not counted: the kernel does
	// not count them for some of their programs, or the recording predates
	// the count. Their kernel_missed is unknown, not 0.
	KernelMissedUncounted []string `json:"kernel_missed_uncounted,omitempty"`
	DamagedBatches        uint64   `json:"damaged_batches"`
	DecodeErrors          uint64   `json:"decode_errors"`
	Warnings              []string `json:"warnings,omitempty"`
}

// StreamCount is the number of events of one stream.
type StreamCount struct {
	Stream string `json:"stream"`
	Tracer string `json:"tracer"`
	// Struct names the C struct by whose stored layout the stream's events
	// decode (no Go decoder decodes them).
	Struct string `json:"struct,omitempty"`
	Events uint64 `json:"events"`
}

// ProcessCount is the number of events of one process.
type ProcessCount struct {
	Pid    uint32 `json:"pid"`
	Comm   string `json:"comm"`
	Events uint64 `json:"events"`
}

// NameCount counts a name.
type NameCount struct {
	Name  string `json:"name"`
	Count uint64 `json:"count"`
}

// FileCount counts the opens of one path.
type FileCount struct {
	Path   string `json:"path"`
	Opens  uint64 `json:"opens"`
	Failed uint64 `json:"failed"`
	// Errors lists the errors of failed opens, e.g. "ENOENT".
	Errors []string `json:"errors,omitempty"`
}

// PeerCount counts the TCP activity with one remote address and port.
type PeerCount struct {
	Peer    string   `json:"peer"`
	Sockets uint64   `json:"sockets"`
	Events  uint64   `json:"events"`
	Comms   []string `json:"comms"`
}

// StreamLoss is the loss of one stream, in the terms of every output of
// ebpfrec (see LossRow): totals and a time series.
type StreamLoss struct {
	Stream            string `json:"stream"`
	KernelLostPerfbuf uint64 `json:"kernel_lost_perfbuf"`
	KernelLostRingbuf uint64 `json:"kernel_lost_ringbuf"`
	EbpfrecDropped    uint64 `json:"ebpfrec_dropped"`
	KernelMissed      uint64 `json:"kernel_missed"`
	// KernelMissedCounted says the kernel counted KernelMissed (see
	// Summary.KernelMissedUncounted).
	KernelMissedCounted bool         `json:"kernel_missed_counted"`
	Series              []LossBucket `json:"series"`
}

// Total is the sum of the stream's losses.
func (l StreamLoss) Total() uint64 {
	return store.Loss{KernelLost: l.KernelLostPerfbuf, RingbufDropped: l.KernelLostRingbuf, UserDropped: l.EbpfrecDropped, KernelMissed: l.KernelMissed}.Total()
}

// LossBucket is the loss of a stream in [Start, Start+width).
type LossBucket struct {
	Start time.Time `json:"start"`
	Lost  uint64    `json:"lost"`
}

// terms lists the stream's losses by name.
func (l StreamLoss) terms() string {
	t := fmt.Sprintf("%s %d, %s %d, %s %d", lossterms.KernelLostPerfbuf, l.KernelLostPerfbuf,
		lossterms.KernelLostRingbuf, l.KernelLostRingbuf, lossterms.EbpfrecDropped, l.EbpfrecDropped)
	if l.KernelMissedCounted {
		t += fmt.Sprintf(", %s %d", lossterms.KernelMissed, l.KernelMissed)
	}
	return t
}

type lossInc struct {
	t    int64
	n    uint64
	perf bool
}

type lossAcc struct {
	cum     store.Loss // highest cumulative counters seen
	perfSum uint64
	incs    []lossInc
}

type fileAcc struct {
	opens, failed uint64
	errs          map[string]bool
}

type peerAcc struct {
	sockets map[uint64]bool
	events  uint64
	comms   map[string]bool
}

// summarizer is what Summarize counts as it reads; the built-in tracers'
// counts (builtins) add to it.
type summarizer struct {
	s    *Summary
	meta store.Meta
	// procs counts the events of each process; lastKt is the ktime of
	// its last event, to name it.
	procs  map[uint32]*ProcessCount
	lastKt map[uint32]uint64
	execs  map[string]uint64
	files  map[string]*fileAcc
	peers  map[string]*peerAcc
	// The earliest and latest event times.
	minT, maxT int64
	anyT       bool
}

// seen takes in an event's time (ns since the epoch).
func (sm *summarizer) seen(t int64) {
	if !sm.anyT || t < sm.minT {
		sm.minT = t
	}
	if !sm.anyT || t > sm.maxT {
		sm.maxT = t
	}
	sm.anyT = true
}

// countProc counts an event of process pid at ktime kt (its comm, if the
// event carries it).
func (sm *summarizer) countProc(pid uint32, comm string, kt uint64) {
	p := sm.procs[pid]
	if p == nil {
		p = &ProcessCount{Pid: pid}
		sm.procs[pid] = p
	}
	p.Events++
	if comm != "" {
		p.Comm = comm
	}
	sm.lastKt[pid] = max(sm.lastKt[pid], kt)
}

// Summarize reads the recording in dir once and summarizes it. Damaged
// batches are skipped and counted, with a warning.
func Summarize(ctx context.Context, dir string, opts SummaryOptions) (*Summary, error) {
	if opts.Top <= 0 {
		opts.Top = 10
	}
	if opts.Buckets <= 0 {
		opts.Buckets = 10
	}
	s := &Summary{Recording: dir}
	losses := map[string]*lossAcc{}
	lossOf := func(stream string) *lossAcc {
		a := losses[stream]
		if a == nil {
			a = &lossAcc{}
			losses[stream] = a
		}
		return a
	}
	counters := func(stream string, t int64, l store.Loss) {
		a := lossOf(stream)
		d := a.cum.Rise(l).Total()
		if d > 0 {
			a.incs = append(a.incs, lossInc{t: t, n: d})
		}
	}
	r, err := store.Open(dir, store.ReaderOptions{OnLoss: func(lp store.LossPoint) {
		counters(lp.Stream, lp.Time.UnixNano(), lp.Loss)
	}})
	if err != nil {
		return nil, err
	}
	defer r.Close()
	if r.Live() {
		s.Warnings = append(s.Warnings, LiveWarning)
	}
	meta := r.Meta()
	s.RecordingID, s.Host, s.Kernel = meta.RecordingID, meta.Hostname, meta.KernelRelease
	var table *proc.Table
	if len(proctable.Streams(meta)) > 0 {
		var bad int
		if table, bad, err = proctable.Load(dir); err != nil {
			s.Warnings = append(s.Warnings, "process table incomplete: "+err.Error())
		} else if bad > 0 {
			s.Warnings = append(s.Warnings, fmt.Sprintf("process table: %d events of the proc stream do not decode", bad))
		}
	}
	sm := &summarizer{s: s, meta: meta, procs: map[uint32]*ProcessCount{}, lastKt: map[uint32]uint64{},
		execs: map[string]uint64{}, files: map[string]*fileAcc{}, peers: map[string]*peerAcc{}}
	decs := map[string]streamDecoding{}
	counts := map[builtin]eventCounter{}
	var vals []btflayout.Value
	streamEvents := map[string]uint64{}
	for _, si := range meta.Streams {
		d := decoderOf(si)
		s.Warnings = append(s.Warnings, d.why...)
		if d.dec == decBuiltin && counts[d.builtin] == nil {
			counts[d.builtin] = d.builtin.summary(sm)
		}
		if si.KernelLossUncounted {
			s.Warnings = append(s.Warnings, fmt.Sprintf("stream %s: its events lost in the kernel are not counted (a ring buffer whose program keeps no drop counter): %s is unknown, not 0", si.Name, lossterms.KernelLostRingbuf))
		}
		if !si.KernelMissedCounted {
			s.KernelMissedUncounted = append(s.KernelMissedUncounted, si.Name)
		}
		decs[si.Name] = d
		streamEvents[si.Name] = 0
	}
	var lastRead int64
	for {
		b, err := r.Next()
		if err == io.EOF {
			break
		}
		if cerr := ctx.Err(); cerr != nil {
			return nil, cerr
		}
		var ce *store.CorruptError
		if errors.As(err, &ce) {
			s.DamagedBatches++
			if len(s.Warnings) < maxWarnings {
				s.Warnings = append(s.Warnings, "damaged data skipped: "+err.Error())
			}
			continue
		}
		if err != nil {
			return nil, err
		}
		s.Batches++
		s.Events += uint64(len(b.Events))
		streamEvents[b.Stream] += uint64(len(b.Events))
		d := decs[b.Stream]
		count := counts[d.builtin]
		for i := range b.Events {
			e := &b.Events[i]
			var derr error
			switch d.dec {
			case decBuiltin:
				derr = count(e)
			case decLayout:
				vals, derr = d.layout.Decode(e.Raw, vals)
				sm.seen(e.Timestamp.UnixNano())
			default:
				sm.seen(e.Timestamp.UnixNano())
			}
			if derr != nil {
				s.DecodeErrors++
				if len(s.Warnings) < maxWarnings {
					s.Warnings = append(s.Warnings, fmt.Sprintf("stream %s, batch %d, event %d: %v", b.Stream, b.Seq, i, derr))
				}
			}
			if e.Lost > 0 {
				a := lossOf(b.Stream)
				a.perfSum += e.Lost
				a.incs = append(a.incs, lossInc{t: e.Timestamp.UnixNano(), n: e.Lost, perf: true})
			}
		}
		if n := len(b.Events); n > 0 {
			lastRead = b.Events[n-1].Timestamp.UnixNano()
		}
		if a := losses[b.Stream]; (a != nil && b.Loss != a.cum) || (a == nil && b.Loss.Total() > 0) {
			counters(b.Stream, lastRead, b.Loss)
		}
	}
	if sm.anyT {
		s.From, s.To = time.Unix(0, sm.minT).UTC(), time.Unix(0, sm.maxT).UTC()
	}
	// Processes whose events carry no comm (syscalls) are named by the
	// process table, as they were at their last event.
	if table != nil {
		for pid, p := range sm.procs {
			if pr := table.Resolve(pid, sm.lastKt[pid]); pr != nil && p.Comm == "" {
				p.Comm = pr.Comm
			}
		}
	}
	for _, si := range meta.Streams {
		sc := StreamCount{Stream: si.Name, Tracer: si.Tracer, Events: streamEvents[si.Name]}
		if l := decs[si.Name].layout; l != nil {
			sc.Struct = l.Name
		}
		s.Streams = append(s.Streams, sc)
		delete(streamEvents, si.Name)
	}
	for name, n := range streamEvents {
		s.Streams = append(s.Streams, StreamCount{Stream: name, Events: n})
	}
	for _, p := range sm.procs {
		s.TopProcesses = append(s.TopProcesses, *p)
	}
	sort.Slice(s.TopProcesses, func(i, j int) bool {
		a, b := s.TopProcesses[i], s.TopProcesses[j]
		return a.Events > b.Events || a.Events == b.Events && a.Pid < b.Pid
	})
	s.TopProcesses = s.TopProcesses[:min(len(s.TopProcesses), opts.Top)]
	s.TopExecs = topCounts(sm.execs, opts.Top)
	for path, f := range sm.files {
		s.TopFiles = append(s.TopFiles, FileCount{Path: path, Opens: f.opens, Failed: f.failed, Errors: sortedKeys(f.errs)})
	}
	sort.Slice(s.TopFiles, func(i, j int) bool {
		a, b := s.TopFiles[i], s.TopFiles[j]
		return a.Opens > b.Opens || a.Opens == b.Opens && a.Path < b.Path
	})
	s.TopFiles = s.TopFiles[:min(len(s.TopFiles), opts.Top)]
	for peer, p := range sm.peers {
		s.TCPPeers = append(s.TCPPeers, PeerCount{Peer: peer, Sockets: uint64(len(p.sockets)), Events: p.events, Comms: sortedKeys(p.comms)})
	}
	sort.Slice(s.TCPPeers, func(i, j int) bool {
		a, b := s.TCPPeers[i], s.TCPPeers[j]
		return a.Sockets > b.Sockets || a.Sockets == b.Sockets && (a.Events > b.Events || a.Events == b.Events && a.Peer < b.Peer)
	})
	s.TCPPeers = s.TCPPeers[:min(len(s.TCPPeers), opts.Top)]
	s.Loss = lossSeries(losses, s.From, s.To, opts.Buckets)
	for i := range s.Loss {
		si, _ := meta.Stream(s.Loss[i].Stream)
		s.Loss[i].KernelMissedCounted = si.KernelMissedCounted
	}
	for _, l := range s.Loss {
		s.Warnings = append(s.Warnings, fmt.Sprintf("stream %s: %d events not recorded (%s): the recording is incomplete", l.Stream, l.Total(), l.terms()))
	}
	s.Deleted = r.Deleted()
	if s.DamagedBatches > 0 {
		s.Warnings = append(s.Warnings, fmt.Sprintf("%d damaged part(s) of the recording were skipped", s.DamagedBatches))
	}
	return s, nil
}

// lossSeries turns loss increments into totals and time buckets. Perf
// samples lost per event and the kernel-lost counter count the same loss:
// the larger is taken, and the series uses perf samples only when the
// counters carry no kernel loss.
func lossSeries(losses map[string]*lossAcc, from, to time.Time, buckets int) []StreamLoss {
	var out []StreamLoss
	for stream, a := range losses {
		l := StreamLoss{Stream: stream, KernelLostPerfbuf: max(a.cum.KernelLost, a.perfSum), KernelLostRingbuf: a.cum.RingbufDropped, EbpfrecDropped: a.cum.UserDropped,
			KernelMissed: a.cum.KernelMissed}
		if l.Total() == 0 {
			continue
		}
		usePerf := a.cum.KernelLost == 0
		width := to.Sub(from) / time.Duration(buckets)
		if width <= 0 {
			width, buckets = time.Second, 1
		}
		series := make([]LossBucket, buckets)
		for i := range series {
			series[i].Start = from.Add(time.Duration(i) * width)
		}
		for _, in := range a.incs {
			if in.perf && !usePerf {
				continue
			}
			i := int(time.Unix(0, in.t).Sub(from) / width)
			series[max(0, min(i, buckets-1))].Lost += in.n
		}
		l.Series = series
		out = append(out, l)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Stream < out[j].Stream })
	return out
}

func topCounts(m map[string]uint64, n int) []NameCount {
	var out []NameCount
	for k, v := range m {
		out = append(out, NameCount{k, v})
	}
	sort.Slice(out, func(i, j int) bool {
		return out[i].Count > out[j].Count || out[i].Count == out[j].Count && out[i].Name < out[j].Name
	})
	return out[:min(len(out), n)]
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// WriteText prints the summary for a person, on a terminal: names from the
// recording are escaped (see internal/safetext).
func (s *Summary) WriteText(w io.Writer) error {
	s = s.forTerminal() // names from the traced host, escaped
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 8, 2, ' ', 0)
	fmt.Fprintf(&b, "recording %s (host %s, kernel %s)\n", s.Recording, orDash(s.Host), orDash(s.Kernel))
	if s.From.IsZero() {
		fmt.Fprintf(&b, "time:      no events\n")
	} else {
		fmt.Fprintf(&b, "time:      %s .. %s (%s)\n", s.From.Format(time.RFC3339Nano), s.To.Format(time.RFC3339Nano), s.To.Sub(s.From).Round(time.Millisecond))
	}
	fmt.Fprintf(&b, "events:    %d in %d batches\n", s.Events, s.Batches)
	if d := s.Deleted; d != nil {
		fmt.Fprintf(&b, "history:   starts after what retention deleted: %d events in %d batches (%d segment(s)), up to %s\n",
			d.Events, d.Batches, d.Segments, d.To.Format(time.RFC3339Nano))
	}
	b.WriteString("\nevents per stream\n")
	for _, st := range s.Streams {
		tr := st.Tracer
		switch {
		case st.Struct != "":
			tr = "struct " + st.Struct
		case tr == "":
			tr = "(no decoder)"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%d\n", st.Stream, tr, st.Events)
	}
	tw.Flush()
	if len(s.TopProcesses) > 0 {
		b.WriteString("\ntop processes by events\n")
		fmt.Fprintf(tw, "  PID\tCOMM\tEVENTS\n")
		for _, p := range s.TopProcesses {
			fmt.Fprintf(tw, "  %d\t%s\t%d\n", p.Pid, orDash(p.Comm), p.Events)
		}
		tw.Flush()
	}
	fmt.Fprintf(&b, "\nexecs: %d   exits: %d (%d killed by a signal)\n", s.Execs, s.Exits, s.Killed)
	if len(s.TopExecs) > 0 {
		for _, e := range s.TopExecs {
			fmt.Fprintf(tw, "  %s\t%d\n", e.Name, e.Count)
		}
		tw.Flush()
	}
	if len(s.TopFiles) > 0 {
		b.WriteString("\ntop files opened\n")
		fmt.Fprintf(tw, "  PATH\tOPENS\tFAILED\tERRORS\n")
		for _, f := range s.TopFiles {
			fmt.Fprintf(tw, "  %s\t%d\t%d\t%s\n", f.Path, f.Opens, f.Failed, strings.Join(f.Errors, ","))
		}
		tw.Flush()
	}
	if len(s.TCPPeers) > 0 {
		b.WriteString("\nTCP peers\n")
		fmt.Fprintf(tw, "  PEER\tSOCKETS\tEVENTS\tCOMMS\n")
		for _, p := range s.TCPPeers {
			fmt.Fprintf(tw, "  %s\t%d\t%d\t%s\n", p.Peer, p.Sockets, p.Events, strings.Join(p.Comms, ","))
		}
		tw.Flush()
	}
	b.WriteString("\nloss per stream (time since the first event)\n")
	if len(s.Loss) == 0 {
		b.WriteString("  none: every event emitted was recorded\n")
	}
	if len(s.KernelMissedUncounted) > 0 {
		fmt.Fprintf(&b, "  %s %s (runs the kernel skipped): %s\n", lossterms.KernelMissed, lossterms.NotCounted, strings.Join(s.KernelMissedUncounted, ", "))
	}
	for _, l := range s.Loss {
		fmt.Fprintf(&b, "  %s: %d not recorded (%s)\n", l.Stream, l.Total(), l.terms())
		width := time.Duration(0)
		if len(l.Series) > 1 {
			width = l.Series[1].Start.Sub(l.Series[0].Start)
		}
		for _, bk := range l.Series {
			if bk.Lost == 0 {
				continue
			}
			from := bk.Start.Sub(s.From)
			fmt.Fprintf(tw, "    +%s .. +%s\t%d\n", from, from+width, bk.Lost)
		}
		tw.Flush()
	}
	if s.DamagedBatches > 0 || s.DecodeErrors > 0 {
		fmt.Fprintf(&b, "\ndamaged batches skipped: %d, events that did not decode: %d\n", s.DamagedBatches, s.DecodeErrors)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
