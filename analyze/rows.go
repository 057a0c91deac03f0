package analyze

// Row types: one per table. Their parquet tags are the Parquet (and Arrow)
// schema: "timestamp(nanosecond:local)" marks nanosecond UTC timestamps read
// by DuckDB as TIMESTAMP_NS, "dict" dictionary-encodes a repetitive string,
// "delta" delta-encodes a mostly increasing integer, "optional" makes a
// nullable column (a nil pointer is NULL).

// Table names.
const (
	TableExec      = "exec"
	TableExit      = "exit"
	TableOpen      = "open"
	TableTCP       = "tcp"
	TableSyscalls  = "syscalls"
	TableGofunc    = "gofunc"
	TableDNS       = "dns"
	TableBash      = "bash"
	TableProcesses = "processes"
	TableRaw       = "raw"
	TableLosses    = "losses"
	TableRecording = "recording"
)

// Tables lists every table in export order: the built-in tracers' (in the
// order of builtins), then processes, raw, losses and recording.
var Tables = tableNames()

// The process columns of every event table: the process as it was at the
// event's time, resolved from the recording's proc stream (bpf/tracers/proc,
// its Table). A table whose event carries comm or ppid keeps its own
// column and lacks the resolved one. Unknown (no proc stream, or a process
// the stream never described): "" and 0; in the tcp table, NULL, as for an
// owner the tracer could not know (pid 0). Plain columns keep the export
// of the busy tables fast: parquet-go writes optional ones at about 0.6 of
// the rate (BenchmarkExportProcessJoin). A known process outside any
// container has an empty container_id.
//
//	comm          the command name
//	ppid          the parent's pid
//	cgroup_id     the cgroup v2 id
//	container_id  the container id parsed from the cgroup path
//	exe           the executable

// ExecRow is a row of the exec table (exec.Event).
type ExecRow struct {
	Time              int64    `parquet:"time,timestamp(nanosecond:local),delta"`
	KtimeNs           uint64   `parquet:"ktime_ns,delta"`
	Stream            string   `parquet:"stream,dict"`
	CPU               *int32   `parquet:"cpu,optional"`
	Seq               uint64   `parquet:"seq,delta"`
	Pid               uint32   `parquet:"pid"`
	Ppid              uint32   `parquet:"ppid"`
	UID               uint32   `parquet:"uid"`
	OldPid            uint32   `parquet:"old_pid"`
	Comm              string   `parquet:"comm,dict"`
	Filename          string   `parquet:"filename,dict"`
	FilenameTruncated bool     `parquet:"filename_truncated"`
	Args              []string `parquet:"args,list"`
	ArgsTruncated     bool     `parquet:"args_truncated"`
	CgroupID          uint64   `parquet:"cgroup_id"`
	ContainerID       string   `parquet:"container_id,dict"`
	Exe               string   `parquet:"exe,dict"`
}

// ExitRow is a row of the exit table (exit.Event).
type ExitRow struct {
	Time        int64  `parquet:"time,timestamp(nanosecond:local),delta"`
	KtimeNs     uint64 `parquet:"ktime_ns,delta"`
	Stream      string `parquet:"stream,dict"`
	CPU         *int32 `parquet:"cpu,optional"`
	Seq         uint64 `parquet:"seq,delta"`
	Pid         uint32 `parquet:"pid"`
	Ppid        uint32 `parquet:"ppid"`
	Tid         uint32 `parquet:"tid"`
	Comm        string `parquet:"comm,dict"`
	ExitCode    uint8  `parquet:"exit_code"`
	Signal      uint8  `parquet:"signal"`
	CoreDumped  bool   `parquet:"core_dumped"`
	Status      uint32 `parquet:"status"`
	LifetimeNs  uint64 `parquet:"lifetime_ns"`
	CgroupID    uint64 `parquet:"cgroup_id"`
	ContainerID string `parquet:"container_id,dict"`
	Exe         string `parquet:"exe,dict"`
}

// OpenRow is a row of the open table (open.Event).
type OpenRow struct {
	Time    int64  `parquet:"time,timestamp(nanosecond:local),delta"`
	KtimeNs uint64 `parquet:"ktime_ns,delta"`
	Stream  string `parquet:"stream,dict"`
	CPU     *int32 `parquet:"cpu,optional"`
	Seq     uint64 `parquet:"seq,delta"`
	Pid     uint32 `parquet:"pid"`
	Tid     uint32 `parquet:"tid"`
	Comm    string `parquet:"comm,dict"`
	Syscall string `parquet:"syscall,dict"`
	Path    string `parquet:"path,dict"`
	Dfd     int32  `parquet:"dfd"`
	Flags   uint64 `parquet:"flags"`
	Mode    uint32 `parquet:"mode"`
	Ret     int32  `parquet:"ret"`
	// Errno names the error of a failed open (ret < 0), e.g. ENOENT;
	// NULL on success.
	Errno       *string `parquet:"errno,optional,dict"`
	LatencyNs   uint64  `parquet:"latency_ns"`
	Ppid        uint32  `parquet:"ppid"`
	CgroupID    uint64  `parquet:"cgroup_id"`
	ContainerID string  `parquet:"container_id,dict"`
	Exe         string  `parquet:"exe,dict"`
}

// TCPRow is a row of the tcp table (tcp.Event). Saddr and Daddr cast to
// INET in DuckDB. Pid and Comm are the socket's owner, NULL where the
// tracer could not know it (the event's pid 0).
type TCPRow struct {
	Time        int64   `parquet:"time,timestamp(nanosecond:local),delta"`
	KtimeNs     uint64  `parquet:"ktime_ns,delta"`
	Stream      string  `parquet:"stream,dict"`
	CPU         *int32  `parquet:"cpu,optional"`
	Seq         uint64  `parquet:"seq,delta"`
	Pid         *uint32 `parquet:"pid,optional"`
	Comm        *string `parquet:"comm,optional,dict"`
	Socket      uint64  `parquet:"socket"`
	Family      string  `parquet:"family,dict"`
	Saddr       string  `parquet:"saddr,dict"`
	Sport       uint16  `parquet:"sport"`
	Daddr       string  `parquet:"daddr,dict"`
	Dport       uint16  `parquet:"dport"`
	OldState    string  `parquet:"old_state,dict"`
	NewState    string  `parquet:"new_state,dict"`
	Old         uint8   `parquet:"old_state_code"`
	New         uint8   `parquet:"new_state_code"`
	Ppid        *uint32 `parquet:"ppid,optional"`
	CgroupID    *uint64 `parquet:"cgroup_id,optional"`
	ContainerID *string `parquet:"container_id,optional,dict"`
	Exe         *string `parquet:"exe,optional,dict"`
}

// SyscallRow is a row of the syscalls table (syscalls.Event).
type SyscallRow struct {
	Time    int64  `parquet:"time,timestamp(nanosecond:local),delta"`
	KtimeNs uint64 `parquet:"ktime_ns,delta"`
	Stream  string `parquet:"stream,dict"`
	CPU     *int32 `parquet:"cpu,optional"`
	Seq     uint64 `parquet:"seq,delta"`
	Pid     uint32 `parquet:"pid"`
	Nr      uint32 `parquet:"nr"`
	Syscall string `parquet:"syscall,dict"`
	Ret     int64  `parquet:"ret"`
	// Errno names the error of a failed syscall (ret in -4095..-1), e.g.
	// EAGAIN; NULL otherwise.
	Errno       *string `parquet:"errno,optional,dict"`
	LatencyNs   uint64  `parquet:"latency_ns"`
	Comm        string  `parquet:"comm,dict"`
	Ppid        uint32  `parquet:"ppid"`
	CgroupID    uint64  `parquet:"cgroup_id"`
	ContainerID string  `parquet:"container_id,dict"`
	Exe         string  `parquet:"exe,dict"`
}

// GofuncRow is a row of the gofunc table (gofunc.Event): an entry into or
// an exit from a traced Go function. Pair an exit with its entry on pid,
// goid and func_id (the latest entry before it).
type GofuncRow struct {
	Time    int64  `parquet:"time,timestamp(nanosecond:local),delta"`
	KtimeNs uint64 `parquet:"ktime_ns,delta"`
	Stream  string `parquet:"stream,dict"`
	CPU     *int32 `parquet:"cpu,optional"`
	Seq     uint64 `parquet:"seq,delta"`
	Pid     uint32 `parquet:"pid"`
	Tid     uint32 `parquet:"tid"`
	Goid    uint64 `parquet:"goid"`
	Kind    string `parquet:"kind,dict"`
	Func    string `parquet:"func,dict"`
	FuncID  uint32 `parquet:"func_id"`
	// LatencyNs is the call's duration at an exit whose entry was seen
	// (EntrySeen), 0 otherwise.
	LatencyNs uint64 `parquet:"latency_ns"`
	// EntrySeen is false at an exit whose entry was not seen (the call
	// began before the probes were attached); true at an entry.
	EntrySeen   bool   `parquet:"entry_seen"`
	Comm        string `parquet:"comm,dict"`
	Ppid        uint32 `parquet:"ppid"`
	CgroupID    uint64 `parquet:"cgroup_id"`
	ContainerID string `parquet:"container_id,dict"`
	Exe         string `parquet:"exe,dict"`
}

// DNSRow is a row of the dns table (dns.Event): one getaddrinfo call.
type DNSRow struct {
	Time    int64  `parquet:"time,timestamp(nanosecond:local),delta"`
	KtimeNs uint64 `parquet:"ktime_ns,delta"`
	Stream  string `parquet:"stream,dict"`
	CPU     *int32 `parquet:"cpu,optional"`
	Seq     uint64 `parquet:"seq,delta"`
	Pid     uint32 `parquet:"pid"`
	Tid     uint32 `parquet:"tid"`
	Host    string `parquet:"host,dict"`
	// Ret is getaddrinfo's result (0 or a negative EAI_ code); Result its
	// name ("ok", "EAI_NONAME", ...).
	Ret            int32    `parquet:"ret"`
	Result         string   `parquet:"result,dict"`
	Addrs          []string `parquet:"addrs,list"`
	AddrsTruncated bool     `parquet:"addrs_truncated"`
	LatencyNs      uint64   `parquet:"latency_ns"`
	Comm           string   `parquet:"comm,dict"`
	Ppid           uint32   `parquet:"ppid"`
	CgroupID       uint64   `parquet:"cgroup_id"`
	ContainerID    string   `parquet:"container_id,dict"`
	Exe            string   `parquet:"exe,dict"`
}

// BashRow is a row of the bash table (bash.Event): a command line read
// by an interactive bash, or its end of input.
type BashRow struct {
	Time          int64  `parquet:"time,timestamp(nanosecond:local),delta"`
	KtimeNs       uint64 `parquet:"ktime_ns,delta"`
	Stream        string `parquet:"stream,dict"`
	CPU           *int32 `parquet:"cpu,optional"`
	Seq           uint64 `parquet:"seq,delta"`
	Pid           uint32 `parquet:"pid"`
	Tid           uint32 `parquet:"tid"`
	UID           uint32 `parquet:"uid"`
	Line          string `parquet:"line"`
	LineTruncated bool   `parquet:"line_truncated"`
	EOF           bool   `parquet:"eof"`
	Comm          string `parquet:"comm,dict"`
	Ppid          uint32 `parquet:"ppid"`
	CgroupID      uint64 `parquet:"cgroup_id"`
	ContainerID   string `parquet:"container_id,dict"`
	Exe           string `parquet:"exe,dict"`
}

// ProcessRow is a row of the processes table: one life of a process (from
// its fork, exec or the snapshot at the recording's start, to its next exec
// or its exit), from the proc stream (bpf/tracers/proc's Table). Join an
// event table on pid and begin_ktime_ns <= ktime_ns < end_ktime_ns (0: did
// not end) to find who did what; the event tables' resolved columns do it
// already.
type ProcessRow struct {
	// Time is when the life began (wall clock).
	Time          int64    `parquet:"time,timestamp(nanosecond:local)"`
	Pid           uint32   `parquet:"pid"`
	Ppid          uint32   `parquet:"ppid"`
	UID           uint32   `parquet:"uid"`
	Comm          string   `parquet:"comm,dict"`
	Exe           string   `parquet:"exe,dict"`
	Args          []string `parquet:"args,list"`
	ArgsTruncated bool     `parquet:"args_truncated"`
	CgroupID      uint64   `parquet:"cgroup_id"`
	CgroupPath    string   `parquet:"cgroup_path,dict"`
	ContainerID   string   `parquet:"container_id,dict"`
	// StartKtimeNs is when the process started (not this life).
	StartKtimeNs uint64 `parquet:"start_ktime_ns"`
	BeginKtimeNs uint64 `parquet:"begin_ktime_ns"`
	EndKtimeNs   uint64 `parquet:"end_ktime_ns"`
	Exited       bool   `parquet:"exited"`
	ExitStatus   uint32 `parquet:"exit_status"`
	// Origin says what first described the life: fork, exec, rename (the
	// process renamed itself: a new life with its new comm), snapshot or
	// exit.
	Origin string `parquet:"origin,dict"`
}

// RawRow is a row of the raw table: an event of a stream without a known
// decoder, or one that its decoder refused (Error says why).
type RawRow struct {
	// Time is when user space read the event (the event's own time is
	// unknown without a decoder).
	Time   int64   `parquet:"time,timestamp(nanosecond:local),delta"`
	Stream string  `parquet:"stream,dict"`
	CPU    *int32  `parquet:"cpu,optional"`
	Seq    uint64  `parquet:"seq,delta"`
	Index  uint32  `parquet:"index"`
	Length uint32  `parquet:"length"`
	Bytes  []byte  `parquet:"bytes"`
	Error  *string `parquet:"error,optional"`
}

// Loss sources.
const (
	// LossCounters rows are increases of a stream's loss counters (loss
	// points and the counters carried by batches).
	LossCounters = "counters"
	// LossPerfSample rows are the samples a perf buffer lost on one CPU just
	// before an event (the event's Lost field).
	LossPerfSample = "perf_sample"
)

// LossRow is a row of the losses table, in the terms of every output of
// ebpfrec (internal/lossterms): kernel_lost_perfbuf (lost in the kernel, a
// perf buffer full), kernel_lost_ringbuf (lost in the kernel, the ring
// buffer full), ebpfrec_dropped (read, then dropped by ebpfrec) and
// kernel_missed (runs of the stream's programs the kernel skipped: 0 in a
// stream whose recording says the kernel does not count them, which the
// recording table's kernel_missed_uncounted lists). Each
// term is the increment since the previous row of the same stream and
// source, so sum() gives totals; its *_total column is the running total of
// the stream and source up to and including the row, as replay's LOSS lines
// print it: sum(kernel_lost_ringbuf) = the last kernel_lost_ringbuf_total.
// The two sources overlap: a perf buffer's kernel_lost_perfbuf counter
// (counters rows) includes the samples lost that perf_sample rows detail
// per CPU, so sum over one source, not both.
type LossRow struct {
	Time                   int64  `parquet:"time,timestamp(nanosecond:local)"`
	Stream                 string `parquet:"stream,dict"`
	CPU                    *int32 `parquet:"cpu,optional"`
	Seq                    uint64 `parquet:"seq"`
	Source                 string `parquet:"source,dict"`
	KernelLostPerfbuf      uint64 `parquet:"kernel_lost_perfbuf"`
	KernelLostRingbuf      uint64 `parquet:"kernel_lost_ringbuf"`
	EbpfrecDropped         uint64 `parquet:"ebpfrec_dropped"`
	KernelLostPerfbufTotal uint64 `parquet:"kernel_lost_perfbuf_total"`
	KernelLostRingbufTotal uint64 `parquet:"kernel_lost_ringbuf_total"`
	EbpfrecDroppedTotal    uint64 `parquet:"ebpfrec_dropped_total"`
	KernelMissed           uint64 `parquet:"kernel_missed"`
	KernelMissedTotal      uint64 `parquet:"kernel_missed_total"`
}

// RecordingRow is the one row of the recording table.
type RecordingRow struct {
	RecordingID  string   `parquet:"recording_id"`
	Host         string   `parquet:"host"`
	Kernel       string   `parquet:"kernel"`
	BootID       string   `parquet:"boot_id"`
	BTFID        string   `parquet:"btf_id"`
	ToolVersion  string   `parquet:"tool_version"`
	CommandLine  []string `parquet:"command_line,list"`
	Started      int64    `parquet:"started,timestamp(nanosecond:local)"`
	FirstEvent   *int64   `parquet:"first_event,optional,timestamp(nanosecond:local)"`
	LastEvent    *int64   `parquet:"last_event,optional,timestamp(nanosecond:local)"`
	MonoToWallNs int64    `parquet:"mono_to_wall_ns"`
	Tracers      []string `parquet:"tracers,list"`
	Streams      []string `parquet:"streams,list"`
	// KernelMissedUncounted lists the streams whose kernel_missed (the
	// losses table) the kernel did not count: 0 there means unknown.
	KernelMissedUncounted []string `parquet:"kernel_missed_uncounted,list"`
	Segments              uint32   `parquet:"segments"`
	Batches               uint64   `parquet:"batches"`
	Events                uint64   `parquet:"events"`
	RawBytes              uint64   `parquet:"raw_bytes"`
	DamagedBatches        uint64   `parquet:"damaged_batches"`
	DecodeErrors          uint64   `parquet:"decode_errors"`
	ExportedAt            int64    `parquet:"exported_at,timestamp(nanosecond:local)"`
	Source                string   `parquet:"source"`
}
