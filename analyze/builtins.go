package analyze

// The built-in tracers' tables and summary counts: one entry per tracer,
// the only place in this package that knows which tracer's events go where.

import (
	"github.com/ebpfrec/ebpfrec/bpf/tracers"
	"github.com/ebpfrec/ebpfrec/bpf/tracers/bash"
	"github.com/ebpfrec/ebpfrec/bpf/tracers/dns"
	"github.com/ebpfrec/ebpfrec/bpf/tracers/exec"
	"github.com/ebpfrec/ebpfrec/bpf/tracers/exit"
	"github.com/ebpfrec/ebpfrec/bpf/tracers/gofunc"
	"github.com/ebpfrec/ebpfrec/bpf/tracers/open"
	"github.com/ebpfrec/ebpfrec/bpf/tracers/proc"
	"github.com/ebpfrec/ebpfrec/bpf/tracers/syscalls"
	"github.com/ebpfrec/ebpfrec/bpf/tracers/tcp"
	"github.com/ebpfrec/ebpfrec/store"
)

// builtins is every built-in tracer's handling in export and summary, in
// the order of their tables in an export (Tables). A stream goes to the
// entry of the tracer whose Go decoder decodes it (replay.DecoderOf, then
// builtinOf); a tracer without one exports by its stored layout, if any.
// TestEveryTracerHasATable checks that every registered tracer has one.
var builtins = []builtin{
	&eventTable[exec.Event, *exec.Event, ExecRow]{
		tracer: exec.Name, table: TableExec,
		decoder: func() eventDecoder[*exec.Event] { return new(execDecoder) },
		row: func(x *exporter, r *ExecRow, ev *exec.Event, k rowKey) {
			*r = ExecRow{Time: k.t, KtimeNs: ev.KtimeNs, Stream: k.stream, CPU: k.cpu, Seq: k.seq,
				Pid: ev.Pid, Ppid: ev.Ppid, UID: ev.UID, OldPid: ev.OldPid, Comm: x.text(ev.Command),
				Filename: x.text(ev.Filename), FilenameTruncated: ev.FilenameTruncated, Args: x.texts(ev.Args), ArgsTruncated: ev.ArgsTruncated}
			p := x.process(ev.Pid, ev.KtimeNs)
			_, _, r.CgroupID, r.ContainerID, r.Exe = p.values()
		},
		count: func(sm *summarizer, ev *exec.Event) {
			sm.s.Execs++
			sm.execs[ev.Filename]++
		},
	},
	&eventTable[exit.Event, *exit.Event, ExitRow]{
		tracer: exit.Name, table: TableExit,
		decoder: stateless(exit.Decode),
		row: func(x *exporter, r *ExitRow, ev *exit.Event, k rowKey) {
			*r = ExitRow{Time: k.t, KtimeNs: ev.KtimeNs, Stream: k.stream, CPU: k.cpu, Seq: k.seq,
				Pid: ev.Pid, Ppid: ev.Ppid, Tid: ev.Tid, Comm: x.text(ev.Command), ExitCode: ev.ExitCode,
				Signal: ev.Signal, CoreDumped: ev.CoreDumped, Status: ev.Status, LifetimeNs: ev.LifetimeNs}
			p := x.process(ev.Pid, ev.KtimeNs)
			_, _, r.CgroupID, r.ContainerID, r.Exe = p.values()
		},
		count: func(sm *summarizer, ev *exit.Event) {
			sm.s.Exits++
			if ev.Signal != 0 {
				sm.s.Killed++
			}
		},
	},
	&eventTable[open.Event, *open.Event, OpenRow]{
		tracer: open.Name, table: TableOpen,
		decoder: stateless(open.Decode),
		row: func(x *exporter, r *OpenRow, ev *open.Event, k rowKey) {
			*r = OpenRow{Time: k.t, KtimeNs: ev.KtimeNs, Stream: k.stream, CPU: k.cpu, Seq: k.seq,
				Pid: ev.Pid, Tid: ev.Tid, Comm: x.text(ev.Command), Syscall: ev.Syscall, Path: x.text(ev.Path), Dfd: ev.Dfd,
				Flags: ev.Flags, Mode: ev.Mode, Ret: ev.Ret, Errno: tracers.ErrnoPtr(int64(ev.Ret)), LatencyNs: ev.LatencyNs}
			p := x.process(ev.Pid, ev.KtimeNs)
			_, r.Ppid, r.CgroupID, r.ContainerID, r.Exe = p.values()
		},
		count: func(sm *summarizer, ev *open.Event) {
			f := sm.files[ev.Path]
			if f == nil {
				f = &fileAcc{errs: map[string]bool{}}
				sm.files[ev.Path] = f
			}
			f.opens++
			if ev.Ret < 0 {
				f.failed++
				f.errs[tracers.ErrnoName(int64(ev.Ret))] = true
			}
		},
	},
	&eventTable[tcp.Event, *tcp.Event, TCPRow]{
		tracer: tcp.Name, table: TableTCP,
		decoder: stateless(tcp.Decode),
		row: func(x *exporter, r *TCPRow, ev *tcp.Event, k rowKey) {
			*r = TCPRow{Time: k.t, KtimeNs: ev.KtimeNs, Stream: k.stream, CPU: k.cpu, Seq: k.seq,
				Pid: ownerPID(ev.Pid), Comm: ownerComm(ev.Pid, x.text(ev.Command)), Socket: ev.Socket, Family: ev.Family, Saddr: ev.Saddr,
				Sport: ev.Sport, Daddr: ev.Daddr, Dport: ev.Dport, OldState: ev.OldState, NewState: ev.NewState,
				Old: ev.Old, New: ev.New}
			// An unknown owner (pid 0) resolves to no process: NULL.
			p := x.process(ev.Pid, ev.KtimeNs)
			r.Ppid, r.CgroupID, r.ContainerID, r.Exe = p.ppid, p.cgroupID, p.containerID, p.exe
		},
		count: func(sm *summarizer, ev *tcp.Event) {
			dst := ev.DstAddr()
			if dst.Addr().IsUnspecified() {
				return // a listening or unconnected socket: no peer
			}
			key := dst.String()
			p := sm.peers[key]
			if p == nil {
				p = &peerAcc{sockets: map[uint64]bool{}, comms: map[string]bool{}}
				sm.peers[key] = p
			}
			p.events++
			p.sockets[ev.Socket] = true
			if ev.Command != "" {
				p.comms[ev.Command] = true
			}
		},
	},
	&eventTable[syscalls.Event, *syscalls.Event, SyscallRow]{
		tracer: syscalls.Name, table: TableSyscalls,
		decoder: stateless(syscalls.Decode),
		row: func(x *exporter, r *SyscallRow, ev *syscalls.Event, k rowKey) {
			*r = SyscallRow{Time: k.t, KtimeNs: ev.KtimeNs, Stream: k.stream, CPU: k.cpu, Seq: k.seq,
				Pid: ev.Pid, Nr: ev.Nr, Syscall: ev.Syscall, Ret: ev.Ret, Errno: tracers.ErrnoPtr(ev.Ret), LatencyNs: ev.LatencyNs}
			p := x.process(ev.Pid, ev.KtimeNs)
			r.Comm, r.Ppid, r.CgroupID, r.ContainerID, r.Exe = p.values()
		},
	},
	&eventTable[gofunc.Event, *gofunc.Event, GofuncRow]{
		tracer: gofunc.Name, table: TableGofunc,
		decoder: stateless(gofunc.Decode),
		row: func(x *exporter, r *GofuncRow, ev *gofunc.Event, k rowKey) {
			*r = GofuncRow{Time: k.t, KtimeNs: ev.KtimeNs, Stream: k.stream, CPU: k.cpu, Seq: k.seq,
				Pid: ev.Pid, Tid: ev.Tid, Goid: ev.Goid, Kind: ev.Kind, Func: x.text(ev.Func), FuncID: ev.FuncID,
				LatencyNs: ev.LatencyNs, EntrySeen: ev.EntrySeen}
			p := x.process(ev.Pid, ev.KtimeNs)
			r.Comm, r.Ppid, r.CgroupID, r.ContainerID, r.Exe = p.values()
		},
	},
	&eventTable[dns.Event, *dns.Event, DNSRow]{
		tracer: dns.Name, table: TableDNS,
		decoder: stateless(dns.Decode),
		row: func(x *exporter, r *DNSRow, ev *dns.Event, k rowKey) {
			*r = DNSRow{Time: k.t, KtimeNs: ev.KtimeNs, Stream: k.stream, CPU: k.cpu, Seq: k.seq,
				Pid: ev.Pid, Tid: ev.Tid, Host: x.text(ev.Host), Ret: ev.Ret, Result: ev.Result,
				Addrs: append([]string(nil), ev.Addrs...), AddrsTruncated: ev.Truncated, LatencyNs: ev.LatencyNs}
			p := x.process(ev.Pid, ev.KtimeNs)
			r.Comm, r.Ppid, r.CgroupID, r.ContainerID, r.Exe = p.values()
		},
	},
	&eventTable[bash.Event, *bash.Event, BashRow]{
		tracer: bash.Name, table: TableBash,
		decoder: stateless(bash.Decode),
		row: func(x *exporter, r *BashRow, ev *bash.Event, k rowKey) {
			*r = BashRow{Time: k.t, KtimeNs: ev.KtimeNs, Stream: k.stream, CPU: k.cpu, Seq: k.seq,
				Pid: ev.Pid, Tid: ev.Tid, UID: ev.UID, Line: x.text(ev.Line), LineTruncated: ev.Truncated, EOF: ev.EOF}
			p := x.process(ev.Pid, ev.KtimeNs)
			r.Comm, r.Ppid, r.CgroupID, r.ContainerID, r.Exe = p.values()
		},
	},
	// The proc stream's events make the processes table (addProcesses,
	// from the process table proctable loads); each is decoded here, so
	// that one that does not decode is in the raw table. They describe
	// processes, not what processes did: not counted per process.
	&eventTable[proc.Event, *proc.Event, ProcessRow]{
		tracer: proc.Name, processTable: true,
		decoder: stateless(proc.Decode),
	},
}

// builtin is the handling of one built-in tracer's events by export and
// summary (an eventTable).
type builtin interface {
	// tracerName names the tracer (replay.StreamDecoder.Tracer).
	tracerName() string
	// tableName names the tracer's table: "" if its events have none.
	tableName() string
	// export makes the tracer's table of an export (if it has one) and
	// returns what adds an event of one of its streams to it.
	export(x *exporter) eventAdder
	// summary returns what counts an event of one of its streams into a
	// summary.
	summary(sm *summarizer) eventCounter
}

// eventAdder decodes event i of batch b of stream s into its table's row;
// an error if it does not decode.
type eventAdder func(s *streamState, b *store.Batch, i int) error

// eventCounter decodes an event and counts it into a summary; an error if
// it does not decode.
type eventCounter func(e *store.Event) error

// builtinOf returns the entry of a tracer, nil if it has none.
func builtinOf(tracer string) builtin {
	for _, b := range builtins {
		if b.tracerName() == tracer {
			return b
		}
	}
	return nil
}

// tableNames lists the tables of an export in order: the tracers', then
// the ones every export has.
func tableNames() []string {
	var out []string
	for _, b := range builtins {
		if n := b.tableName(); n != "" {
			out = append(out, n)
		}
	}
	return append(out, TableProcesses, TableRaw, TableLosses, TableRecording)
}

// eventDecoder decodes a raw event into ev.
type eventDecoder[P any] interface {
	decode(raw []byte, ev P) error
}

// decodeFunc is a tracer's Decode as an eventDecoder.
type decodeFunc[P any] func(raw []byte, ev P) error

func (f decodeFunc[P]) decode(raw []byte, ev P) error { return f(raw, ev) }

// stateless makes a tracer's Decode, which keeps nothing between events,
// the decoder of every run.
func stateless[P any](decode func(raw []byte, ev P) error) func() eventDecoder[P] {
	return func() eventDecoder[P] { return decodeFunc[P](decode) }
}

// exportWarner is a decoder with a warning to add at the end of an
// export ("" for none).
type exportWarner interface {
	exportWarning() string
}

// rowKey is the columns every event row starts with.
type rowKey struct {
	t      int64 // the event's wall time
	stream string
	cpu    *int32
	seq    uint64
}

// eventTable is the handling of a tracer whose events are E (P is *E), in
// rows R of its table.
type eventTable[E any, P interface {
	*E
	tracers.Event
}, R any] struct {
	tracer, table string
	// processTable: the events make the processes table, not rows of a
	// table of their own, and are not a process's activity.
	processTable bool
	// decoder returns the decoder of one export or summary (exec's
	// interns strings for the run).
	decoder func() eventDecoder[P]
	// row fills an event's row: its columns and its process's (x.process).
	row func(x *exporter, r *R, ev P, k rowKey)
	// count counts an event into a summary beyond its time and its
	// process's event count; nil for nothing more.
	count func(sm *summarizer, ev P)
}

func (k *eventTable[E, P, R]) tracerName() string { return k.tracer }
func (k *eventTable[E, P, R]) tableName() string  { return k.table }

func (k *eventTable[E, P, R]) export(x *exporter) eventAdder {
	var tbl *table[R]
	if k.table != "" {
		tbl = newTable[R](x, k.table)
	}
	dec := k.decoder()
	if w, ok := dec.(exportWarner); ok {
		x.endWarnings = append(x.endWarnings, w.exportWarning)
	}
	ev := P(new(E))
	return func(s *streamState, b *store.Batch, i int) error {
		e := &b.Events[i]
		if err := dec.decode(e.Raw, ev); err != nil {
			return err
		}
		t := x.meta.WallTime(ev.KernelTime(), e.Timestamp)
		x.seenTime(t)
		if tbl != nil {
			k.row(x, tbl.add(t), ev, rowKey{t: t, stream: s.name, cpu: cpuPtr(tracers.EventCPU(ev, e.CPU)), seq: b.Seq})
		}
		return nil
	}
}

func (k *eventTable[E, P, R]) summary(sm *summarizer) eventCounter {
	dec := k.decoder()
	ev := P(new(E))
	return func(e *store.Event) error {
		if err := dec.decode(e.Raw, ev); err != nil {
			return err
		}
		kt := ev.KernelTime()
		sm.seen(sm.meta.WallTime(kt, e.Timestamp))
		if !k.processTable {
			sm.countProc(ev.PID(), ev.Comm(), kt)
		}
		if k.count != nil {
			k.count(sm, ev)
		}
		return nil
	}
}
