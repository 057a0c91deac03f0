// Package analyze turns recordings into tables: it decodes the recorded
// events of the built-in tracers and writes one table per event type, plus
// the raw events of streams it cannot decode, the loss counters and the
// recording's metadata, as Parquet (or Arrow IPC) files that DuckDB, Spark,
// Trino or pandas read directly, and summarizes a recording (Summarize).
// It links no cgo: DuckDB, which answers SQL over an export in process, is
// in package analyze/query, and the manifest of an export (which both
// read) in package analyze/manifest. Nor does it link arrow-go: the Arrow
// writer is package analyze/arrowexport, which a program imports to write
// Arrow (Export refuses FormatArrow with ErrFormatNotLinked otherwise), so
// that the recorder, which writes Parquet, stays small.
//
// # Tables
//
// Every event table starts with the same columns:
//
//	time      TIMESTAMP_NS  event time, UTC: the kernel's bpf_ktime_get_ns
//	                        plus the recording's MonoToWall offset
//	ktime_ns  UBIGINT       the kernel time as recorded (CLOCK_MONOTONIC)
//	stream    VARCHAR       the recorded stream
//	cpu       INTEGER       the CPU of a perf buffer sample; NULL for ring buffers
//	seq       UBIGINT       the sequence number of the batch in the recording
//
// followed by the event's own fields at their width and signedness (see
// ExecRow, ExitRow, OpenRow, TCPRow, SyscallRow, GofuncRow, DNSRow,
// BashRow). Strings are UTF-8;
// repetitive ones (comm, filename, path, syscall, states) are
// dictionary-encoded. TCP addresses are canonical strings ("10.0.0.1",
// "2001:db8::1") that DuckDB casts to INET (with its inet extension, which
// query.OpenDB never downloads: INSTALL inet once where the network allows).
//
// Every event table ends with the process the event came from, as it was at
// the event's time, resolved from the recording's proc stream (the
// processes table): comm, ppid, cgroup_id, container_id and exe, except
// the columns the event carries itself (exec and exit keep their own comm
// and ppid; open and tcp their own comm). "" and 0 where the recording
// does not say (older recordings, record --no-proc); in the tcp table
// NULL, as for an owner the tracer could not know.
//
// The processes table (ProcessRow) has one row per process life: a pid
// from its fork, exec or the snapshot at the start of the recording, to
// its next exec or exit, with its command line, cgroup and container.
// The proc stream's events are in it, not in a table of their own.
//
// Timestamps are Parquet TIMESTAMP(NANOS) with isAdjustedToUTC=false, which
// DuckDB reads as TIMESTAMP_NS: nanosecond precision, values in UTC. (With
// isAdjustedToUTC=true DuckDB reads TIMESTAMP WITH TIME ZONE and truncates to
// microseconds, losing the kernel's nanoseconds.)
//
// The other tables are processes (ProcessRow), raw (RawRow), losses (LossRow) and recording
// (RecordingRow). An export folder also holds export.json (Manifest), written
// last: a folder without it is not a complete export. With
// Options.Partition the files are in Hive-style folders
// host=HOST/date=YYYY-MM-DD/ (by each row's UTC date), and query.OpenDB's views add
// host and date columns; exports of many recordings, each in its own folder
// under one root, are read together with
//
//	read_parquet('ROOT/*/host=*/date=*/exec.parquet', hive_partitioning = true)
package analyze
