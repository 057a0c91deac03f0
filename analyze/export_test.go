package analyze

import (
	"reflect"
	"testing"
)

// wantTypes are the DuckDB types every table must have.
var wantTypes = map[string]map[string]string{
	TableExec: {"time": "TIMESTAMP_NS", "ktime_ns": "UBIGINT", "stream": "VARCHAR", "cpu": "INTEGER", "seq": "UBIGINT",
		"pid": "UINTEGER", "ppid": "UINTEGER", "uid": "UINTEGER", "old_pid": "UINTEGER", "comm": "VARCHAR",
		"filename": "VARCHAR", "filename_truncated": "BOOLEAN"},
	TableExit: {"time": "TIMESTAMP_NS", "ktime_ns": "UBIGINT", "stream": "VARCHAR", "cpu": "INTEGER", "seq": "UBIGINT",
		"pid": "UINTEGER", "ppid": "UINTEGER", "tid": "UINTEGER", "comm": "VARCHAR", "exit_code": "UTINYINT",
		"signal": "UTINYINT", "core_dumped": "BOOLEAN", "status": "UINTEGER", "lifetime_ns": "UBIGINT"},
	TableOpen: {"time": "TIMESTAMP_NS", "ktime_ns": "UBIGINT", "stream": "VARCHAR", "cpu": "INTEGER", "seq": "UBIGINT",
		"pid": "UINTEGER", "tid": "UINTEGER", "comm": "VARCHAR", "syscall": "VARCHAR", "path": "VARCHAR",
		"dfd": "INTEGER", "flags": "UBIGINT", "mode": "UINTEGER", "ret": "INTEGER", "latency_ns": "UBIGINT"},
	TableTCP: {"time": "TIMESTAMP_NS", "ktime_ns": "UBIGINT", "stream": "VARCHAR", "cpu": "INTEGER", "seq": "UBIGINT",
		"pid": "UINTEGER", "comm": "VARCHAR", "socket": "UBIGINT", "family": "VARCHAR", "saddr": "VARCHAR",
		"sport": "USMALLINT", "daddr": "VARCHAR", "dport": "USMALLINT", "old_state": "VARCHAR", "new_state": "VARCHAR",
		"old_state_code": "UTINYINT", "new_state_code": "UTINYINT"},
	TableSyscalls: {"time": "TIMESTAMP_NS", "ktime_ns": "UBIGINT", "stream": "VARCHAR", "cpu": "INTEGER", "seq": "UBIGINT",
		"pid": "UINTEGER", "nr": "UINTEGER", "syscall": "VARCHAR", "ret": "BIGINT", "latency_ns": "UBIGINT"},
	TableRaw: {"time": "TIMESTAMP_NS", "stream": "VARCHAR", "cpu": "INTEGER", "seq": "UBIGINT", "index": "UINTEGER",
		"length": "UINTEGER", "bytes": "BLOB", "error": "VARCHAR"},
	TableLosses: {"time": "TIMESTAMP_NS", "stream": "VARCHAR", "cpu": "INTEGER", "seq": "UBIGINT", "source": "VARCHAR",
		"kernel_lost": "UBIGINT", "ringbuf_dropped": "UBIGINT", "user_dropped": "UBIGINT"},
	TableRecording: {"recording_id": "VARCHAR", "host": "VARCHAR", "kernel": "VARCHAR", "boot_id": "VARCHAR",
		"btf_id": "VARCHAR", "tool_version": "VARCHAR", "command_line": "VARCHAR[]", "started": "TIMESTAMP_NS",
		"first_event": "TIMESTAMP_NS", "last_event": "TIMESTAMP_NS", "mono_to_wall_ns": "BIGINT", "tracers": "VARCHAR[]",
		"streams": "VARCHAR[]", "segments": "UINTEGER", "batches": "UBIGINT", "events": "UBIGINT", "raw_bytes": "UBIGINT",
		"damaged_batches": "UBIGINT", "decode_errors": "UBIGINT", "exported_at": "TIMESTAMP_NS", "source": "VARCHAR"},
}

func TestDescribe(t *testing.T) {
	rec, _ := mixed(t)
	for _, path := range []WriterPath{ParquetGo, ArrowParquet} {
		t.Run(path.String(), func(t *testing.T) {
			out, _ := export(t, rec, Options{WriterPath: path})
			db := openDB(t, out)
			for _, table := range Tables {
				got, _ := describe(t, db, table)
				if !reflect.DeepEqual(got, wantTypes[table]) {
					t.Errorf("%s: DESCRIBE\n got %v\nwant %v", table, got, wantTypes[table])
				}
			}
		})
	}
}
