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
	TableRaw       = "raw"
	TableLosses    = "losses"
	TableRecording = "recording"
)

// Tables lists every table in export order.
var Tables = []string{TableExec, TableExit, TableOpen, TableTCP, TableSyscalls, TableRaw, TableLosses, TableRecording}

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
}

// ExitRow is a row of the exit table (exit.Event).
type ExitRow struct {
	Time       int64  `parquet:"time,timestamp(nanosecond:local),delta"`
	KtimeNs    uint64 `parquet:"ktime_ns,delta"`
	Stream     string `parquet:"stream,dict"`
	CPU        *int32 `parquet:"cpu,optional"`
	Seq        uint64 `parquet:"seq,delta"`
	Pid        uint32 `parquet:"pid"`
	Ppid       uint32 `parquet:"ppid"`
	Tid        uint32 `parquet:"tid"`
	Comm       string `parquet:"comm,dict"`
	ExitCode   uint8  `parquet:"exit_code"`
	Signal     uint8  `parquet:"signal"`
	CoreDumped bool   `parquet:"core_dumped"`
	Status     uint32 `parquet:"status"`
	LifetimeNs uint64 `parquet:"lifetime_ns"`
}

// OpenRow is a row of the open table (open.Event).
type OpenRow struct {
	Time      int64  `parquet:"time,timestamp(nanosecond:local),delta"`
	KtimeNs   uint64 `parquet:"ktime_ns,delta"`
	Stream    string `parquet:"stream,dict"`
	CPU       *int32 `parquet:"cpu,optional"`
	Seq       uint64 `parquet:"seq,delta"`
	Pid       uint32 `parquet:"pid"`
	Tid       uint32 `parquet:"tid"`
	Comm      string `parquet:"comm,dict"`
	Syscall   string `parquet:"syscall,dict"`
	Path      string `parquet:"path,dict"`
	Dfd       int32  `parquet:"dfd"`
	Flags     uint64 `parquet:"flags"`
	Mode      uint32 `parquet:"mode"`
	Ret       int32  `parquet:"ret"`
	LatencyNs uint64 `parquet:"latency_ns"`
}

// TCPRow is a row of the tcp table (tcp.Event). Saddr and Daddr cast to
// INET in DuckDB.
type TCPRow struct {
	Time     int64  `parquet:"time,timestamp(nanosecond:local),delta"`
	KtimeNs  uint64 `parquet:"ktime_ns,delta"`
	Stream   string `parquet:"stream,dict"`
	CPU      *int32 `parquet:"cpu,optional"`
	Seq      uint64 `parquet:"seq,delta"`
	Pid      uint32 `parquet:"pid"`
	Comm     string `parquet:"comm,dict"`
	Socket   uint64 `parquet:"socket"`
	Family   string `parquet:"family,dict"`
	Saddr    string `parquet:"saddr,dict"`
	Sport    uint16 `parquet:"sport"`
	Daddr    string `parquet:"daddr,dict"`
	Dport    uint16 `parquet:"dport"`
	OldState string `parquet:"old_state,dict"`
	NewState string `parquet:"new_state,dict"`
	Old      uint8  `parquet:"old_state_code"`
	New      uint8  `parquet:"new_state_code"`
}

// SyscallRow is a row of the syscalls table (syscalls.Event).
type SyscallRow struct {
	Time      int64  `parquet:"time,timestamp(nanosecond:local),delta"`
	KtimeNs   uint64 `parquet:"ktime_ns,delta"`
	Stream    string `parquet:"stream,dict"`
	CPU       *int32 `parquet:"cpu,optional"`
	Seq       uint64 `parquet:"seq,delta"`
	Pid       uint32 `parquet:"pid"`
	Nr        uint32 `parquet:"nr"`
	Syscall   string `parquet:"syscall,dict"`
	Ret       int64  `parquet:"ret"`
	LatencyNs uint64 `parquet:"latency_ns"`
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

// LossRow is a row of the losses table. Counts are increments since the
// previous row of the same stream and source, so sum() gives totals. The
// two sources overlap: a perf buffer's kernel_lost counter (counters rows)
// includes the samples lost that perf_sample rows detail per CPU, so sum
// kernel_lost over one source, not both.
type LossRow struct {
	Time           int64  `parquet:"time,timestamp(nanosecond:local)"`
	Stream         string `parquet:"stream,dict"`
	CPU            *int32 `parquet:"cpu,optional"`
	Seq            uint64 `parquet:"seq"`
	Source         string `parquet:"source,dict"`
	KernelLost     uint64 `parquet:"kernel_lost"`
	RingbufDropped uint64 `parquet:"ringbuf_dropped"`
	UserDropped    uint64 `parquet:"user_dropped"`
}

// RecordingRow is the one row of the recording table.
type RecordingRow struct {
	RecordingID    string   `parquet:"recording_id"`
	Host           string   `parquet:"host"`
	Kernel         string   `parquet:"kernel"`
	BootID         string   `parquet:"boot_id"`
	BTFID          string   `parquet:"btf_id"`
	ToolVersion    string   `parquet:"tool_version"`
	CommandLine    []string `parquet:"command_line,list"`
	Started        int64    `parquet:"started,timestamp(nanosecond:local)"`
	FirstEvent     *int64   `parquet:"first_event,optional,timestamp(nanosecond:local)"`
	LastEvent      *int64   `parquet:"last_event,optional,timestamp(nanosecond:local)"`
	MonoToWallNs   int64    `parquet:"mono_to_wall_ns"`
	Tracers        []string `parquet:"tracers,list"`
	Streams        []string `parquet:"streams,list"`
	Segments       uint32   `parquet:"segments"`
	Batches        uint64   `parquet:"batches"`
	Events         uint64   `parquet:"events"`
	RawBytes       uint64   `parquet:"raw_bytes"`
	DamagedBatches uint64   `parquet:"damaged_batches"`
	DecodeErrors   uint64   `parquet:"decode_errors"`
	ExportedAt     int64    `parquet:"exported_at,timestamp(nanosecond:local)"`
	Source         string   `parquet:"source"`
}
