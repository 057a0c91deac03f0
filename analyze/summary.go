package analyze

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/ebpfrec/ebpfrec/bpf/tracers/exec"
	"github.com/ebpfrec/ebpfrec/bpf/tracers/exit"
	"github.com/ebpfrec/ebpfrec/bpf/tracers/open"
	"github.com/ebpfrec/ebpfrec/bpf/tracers/syscalls"
	"github.com/ebpfrec/ebpfrec/bpf/tracers/tcp"
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
	Loss           []StreamLoss `json:"loss"`
	DamagedBatches uint64       `json:"damaged_batches"`
	DecodeErrors   uint64       `json:"decode_errors"`
	Warnings       []string     `json:"warnings,omitempty"`
}

// StreamCount is the number of events of one stream.
type StreamCount struct {
	Stream string `json:"stream"`
	Tracer string `json:"tracer"`
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

// StreamLoss is the loss of one stream: totals and a time series.
type StreamLoss struct {
	Stream         string       `json:"stream"`
	KernelLost     uint64       `json:"kernel_lost"`
	RingbufDropped uint64       `json:"ringbuf_dropped"`
	UserDropped    uint64       `json:"user_dropped"`
	Series         []LossBucket `json:"series"`
}

// Total is the sum of the stream's losses.
func (l StreamLoss) Total() uint64 { return l.KernelLost + l.RingbufDropped + l.UserDropped }

// LossBucket is the loss of a stream in [Start, Start+width).
type LossBucket struct {
	Start time.Time `json:"start"`
	Lost  uint64    `json:"lost"`
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
		d := rise(&a.cum, l).Total()
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
	meta := r.Meta()
	s.RecordingID, s.Host, s.Kernel = meta.RecordingID, meta.Hostname, meta.KernelRelease
	decs := map[string]decoder{}
	streamEvents := map[string]uint64{}
	for _, si := range meta.Streams {
		dec, why := decoderOf(si)
		if why != "" {
			s.Warnings = append(s.Warnings, why)
		}
		decs[si.Name] = dec
		streamEvents[si.Name] = 0
	}
	procs := map[uint32]*ProcessCount{}
	proc := func(pid uint32, comm string) {
		p := procs[pid]
		if p == nil {
			p = &ProcessCount{Pid: pid}
			procs[pid] = p
		}
		p.Events++
		if comm != "" {
			p.Comm = comm
		}
	}
	execs := map[string]uint64{}
	files := map[string]*fileAcc{}
	peers := map[string]*peerAcc{}
	var minT, maxT int64
	anyT := false
	seen := func(t int64) {
		if !anyT || t < minT {
			minT = t
		}
		if !anyT || t > maxT {
			maxT = t
		}
		anyT = true
	}
	var (
		execEv exec.Event
		execD  execDecoder
		exitEv exit.Event
		openEv open.Event
		tcpEv  tcp.Event
		sysEv  syscalls.Event
	)
	off := meta.MonoToWall
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
		dec := decs[b.Stream]
		for i := range b.Events {
			e := &b.Events[i]
			var derr error
			switch dec {
			case decExec:
				if derr = execD.decode(e.Raw, &execEv); derr == nil {
					seen(int64(execEv.KtimeNs) + off)
					proc(execEv.Pid, execEv.Command)
					s.Execs++
					execs[execEv.Filename]++
				}
			case decExit:
				if derr = exit.Decode(e.Raw, &exitEv); derr == nil {
					seen(int64(exitEv.KtimeNs) + off)
					proc(exitEv.Pid, exitEv.Command)
					s.Exits++
					if exitEv.Signal != 0 {
						s.Killed++
					}
				}
			case decOpen:
				if derr = open.Decode(e.Raw, &openEv); derr == nil {
					seen(int64(openEv.KtimeNs) + off)
					proc(openEv.Pid, openEv.Command)
					f := files[openEv.Path]
					if f == nil {
						f = &fileAcc{errs: map[string]bool{}}
						files[openEv.Path] = f
					}
					f.opens++
					if openEv.Ret < 0 {
						f.failed++
						f.errs[errnoName(syscall.Errno(-openEv.Ret))] = true
					}
				}
			case decTCP:
				if derr = tcp.Decode(e.Raw, &tcpEv); derr == nil {
					seen(int64(tcpEv.KtimeNs) + off)
					proc(tcpEv.Pid, tcpEv.Command)
					dst := tcpEv.DstAddr()
					if dst.Addr().IsUnspecified() {
						break // a listening or unconnected socket: no peer
					}
					key := dst.String()
					p := peers[key]
					if p == nil {
						p = &peerAcc{sockets: map[uint64]bool{}, comms: map[string]bool{}}
						peers[key] = p
					}
					p.events++
					p.sockets[tcpEv.Socket] = true
					if tcpEv.Command != "" {
						p.comms[tcpEv.Command] = true
					}
				}
			case decSyscalls:
				if derr = syscalls.Decode(e.Raw, &sysEv); derr == nil {
					seen(int64(sysEv.KtimeNs) + off)
					proc(sysEv.Pid, "")
				}
			default:
				seen(e.Timestamp.UnixNano())
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
	if anyT {
		s.From, s.To = time.Unix(0, minT).UTC(), time.Unix(0, maxT).UTC()
	}
	for _, si := range meta.Streams {
		s.Streams = append(s.Streams, StreamCount{Stream: si.Name, Tracer: si.Tracer, Events: streamEvents[si.Name]})
		delete(streamEvents, si.Name)
	}
	for name, n := range streamEvents {
		s.Streams = append(s.Streams, StreamCount{Stream: name, Events: n})
	}
	for _, p := range procs {
		s.TopProcesses = append(s.TopProcesses, *p)
	}
	sort.Slice(s.TopProcesses, func(i, j int) bool {
		a, b := s.TopProcesses[i], s.TopProcesses[j]
		return a.Events > b.Events || a.Events == b.Events && a.Pid < b.Pid
	})
	s.TopProcesses = s.TopProcesses[:min(len(s.TopProcesses), opts.Top)]
	s.TopExecs = topCounts(execs, opts.Top)
	for path, f := range files {
		s.TopFiles = append(s.TopFiles, FileCount{Path: path, Opens: f.opens, Failed: f.failed, Errors: sortedKeys(f.errs)})
	}
	sort.Slice(s.TopFiles, func(i, j int) bool {
		a, b := s.TopFiles[i], s.TopFiles[j]
		return a.Opens > b.Opens || a.Opens == b.Opens && a.Path < b.Path
	})
	s.TopFiles = s.TopFiles[:min(len(s.TopFiles), opts.Top)]
	for peer, p := range peers {
		s.TCPPeers = append(s.TCPPeers, PeerCount{Peer: peer, Sockets: uint64(len(p.sockets)), Events: p.events, Comms: sortedKeys(p.comms)})
	}
	sort.Slice(s.TCPPeers, func(i, j int) bool {
		a, b := s.TCPPeers[i], s.TCPPeers[j]
		return a.Sockets > b.Sockets || a.Sockets == b.Sockets && (a.Events > b.Events || a.Events == b.Events && a.Peer < b.Peer)
	})
	s.TCPPeers = s.TCPPeers[:min(len(s.TCPPeers), opts.Top)]
	s.Loss = lossSeries(losses, s.From, s.To, opts.Buckets)
	for _, l := range s.Loss {
		s.Warnings = append(s.Warnings, fmt.Sprintf("stream %s lost %d events (kernel %d, ring buffer %d, user space %d): the recording is incomplete",
			l.Stream, l.Total(), l.KernelLost, l.RingbufDropped, l.UserDropped))
	}
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
		l := StreamLoss{Stream: stream, KernelLost: max(a.cum.KernelLost, a.perfSum), RingbufDropped: a.cum.RingbufDropped, UserDropped: a.cum.UserDropped}
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

// errnoName returns the symbolic name of an errno, e.g. "ENOENT".
func errnoName(e syscall.Errno) string {
	switch e {
	case syscall.ENOENT:
		return "ENOENT"
	case syscall.EACCES:
		return "EACCES"
	case syscall.EPERM:
		return "EPERM"
	case syscall.EEXIST:
		return "EEXIST"
	case syscall.EISDIR:
		return "EISDIR"
	case syscall.ENOTDIR:
		return "ENOTDIR"
	case syscall.EMFILE:
		return "EMFILE"
	case syscall.ELOOP:
		return "ELOOP"
	case syscall.EROFS:
		return "EROFS"
	case syscall.ENAMETOOLONG:
		return "ENAMETOOLONG"
	case syscall.ENXIO:
		return "ENXIO"
	case syscall.EAGAIN:
		return "EAGAIN"
	}
	return fmt.Sprintf("errno %d", int(e))
}

// WriteText prints the summary for a person.
func (s *Summary) WriteText(w io.Writer) error {
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 8, 2, ' ', 0)
	fmt.Fprintf(&b, "recording %s (host %s, kernel %s)\n", s.Recording, orDash(s.Host), orDash(s.Kernel))
	if s.From.IsZero() {
		fmt.Fprintf(&b, "time:      no events\n")
	} else {
		fmt.Fprintf(&b, "time:      %s .. %s (%s)\n", s.From.Format(time.RFC3339Nano), s.To.Format(time.RFC3339Nano), s.To.Sub(s.From).Round(time.Millisecond))
	}
	fmt.Fprintf(&b, "events:    %d in %d batches\n", s.Events, s.Batches)
	b.WriteString("\nevents per stream\n")
	for _, st := range s.Streams {
		tr := st.Tracer
		if tr == "" {
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
	for _, l := range s.Loss {
		fmt.Fprintf(&b, "  %s: %d lost (kernel %d, ring buffer %d, user space %d)\n", l.Stream, l.Total(), l.KernelLost, l.RingbufDropped, l.UserDropped)
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
