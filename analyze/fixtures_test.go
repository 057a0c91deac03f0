package analyze

import (
	"database/sql"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/ebpfrec/ebpfrec/analyze/query"
)

// Tests on the real recordings in fixtures/ (see fixtures/README.md for
// what each must contain).

func fixture(t *testing.T, name string) string {
	t.Helper()
	dir := filepath.Join("..", "fixtures", name)
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("fixture %s: %v", name, err)
	}
	return dir
}

func TestFixturesDescribe(t *testing.T) {
	for _, name := range []string{"demo", "demo-proc", "loss", "userobj", "userspace"} {
		t.Run(name, func(t *testing.T) {
			out, m := export(t, fixture(t, name), Options{})
			if m.DamagedBatches != 0 {
				t.Errorf("damaged batches: %d", m.DamagedBatches)
			}
			db := openDB(t, out)
			for _, table := range Tables {
				got, _ := describe(t, db, table)
				if !reflect.DeepEqual(got, wantTypes[table]) {
					t.Errorf("%s: DESCRIBE\n got %v\nwant %v", table, got, wantTypes[table])
				}
				one[int](t, db, "SELECT count(*) FROM "+table)
			}
		})
	}
}

func strs(t *testing.T, res *query.Result) []string {
	t.Helper()
	var out []string
	for _, r := range res.Rows {
		s := ""
		for i, v := range r {
			if i > 0 {
				s += " "
			}
			s += query.FormatValue(v, res.Type(i))
		}
		out = append(out, s)
	}
	return out
}

func rowsOf(t *testing.T, db *sql.DB, q string) []string {
	t.Helper()
	res, err := query.Query(t.Context(), db, q)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return strs(t, res)
}

func TestFixtureDemo(t *testing.T) {
	out, m := export(t, fixture(t, "demo"), Options{})
	if m.DecodeErrors != 0 {
		t.Errorf("decode errors: %d (%q)", m.DecodeErrors, m.Warnings)
	}
	db := openDB(t, out)
	if n := one[int](t, db, "SELECT count(*) FROM exec"); n != 8 {
		t.Errorf("execs: %d, want 8", n)
	}
	got := rowsOf(t, db, "SELECT filename FROM exec WHERE filename LIKE '/tmp/ebpfrec-demo/%' ORDER BY time")
	want := []string{"/tmp/ebpfrec-demo/ebpfrec-demo-0", "/tmp/ebpfrec-demo/ebpfrec-demo-1", "/tmp/ebpfrec-demo/ebpfrec-demo-2",
		"/tmp/ebpfrec-demo/ebpfrec-demo-3", "/tmp/ebpfrec-demo/ebpfrec-demo-4"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("demo execs in order: %v", got)
	}
	got = rowsOf(t, db, "SELECT path, count(*), min(ret) >= 0 FROM open WHERE path LIKE '/tmp/ebpfrec-demo/%' GROUP BY path ORDER BY path")
	want = []string{
		"/tmp/ebpfrec-demo/ebpfrec-demo-0 1 true", "/tmp/ebpfrec-demo/ebpfrec-demo-1 1 true", "/tmp/ebpfrec-demo/ebpfrec-demo-2 1 true",
		"/tmp/ebpfrec-demo/ebpfrec-demo-3 1 true", "/tmp/ebpfrec-demo/ebpfrec-demo-4 1 true",
		"/tmp/ebpfrec-demo/file-0 2 true", "/tmp/ebpfrec-demo/file-1 2 true", "/tmp/ebpfrec-demo/file-2 2 true", "/tmp/ebpfrec-demo/file-3 2 true",
		"/tmp/ebpfrec-demo/missing 1 false",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("demo files opened:\n got %q\nwant %q", got, want)
	}
	if got := rowsOf(t, db, "SELECT ret FROM open WHERE path = '/tmp/ebpfrec-demo/missing'"); !reflect.DeepEqual(got, []string{"-2"}) {
		t.Errorf("missing file: %v", got)
	}
	if n := one[int](t, db, "SELECT count(DISTINCT socket) FROM tcp WHERE daddr = '127.0.0.1' AND new_state = 'SYN_SENT'"); n != 3 {
		t.Errorf("TCP connections to 127.0.0.1: %d, want 3", n)
	}
	if n := one[int](t, db, "SELECT count(*) FROM exit WHERE exit_code = 3 AND signal = 0"); n != 1 {
		t.Errorf("exits with code 3: %d", n)
	}
	if n := one[int](t, db, "SELECT count(*) FROM exit WHERE signal = 9"); n != 1 {
		t.Errorf("killed by 9: %d", n)
	}
	if n := one[int](t, db, "SELECT count(*) FROM syscalls WHERE syscall = 'getpid'"); n < 1000 {
		t.Errorf("getpid calls: %d", n)
	}
	if n := one[int](t, db, "SELECT count(*) FROM losses"); n != 0 {
		t.Errorf("loss rows: %d", n)
	}
	if n := one[int](t, db, "SELECT count(*) FROM raw"); n != 0 {
		t.Errorf("raw rows: %d", n)
	}
	// Times are wall times of the recording day, within the recording.
	if ok := one[bool](t, db, "SELECT bool_and(time BETWEEN r.first_event AND r.last_event AND year(time) >= 2024) FROM exec, recording r"); !ok {
		t.Error("exec times outside the recording")
	}
}

func TestFixtureLoss(t *testing.T) {
	out, m := export(t, fixture(t, "loss"), Options{})
	db := openDB(t, out)
	recorded := one[uint64](t, db, "SELECT count(*) FROM syscalls")
	dropped := one[uint64](t, db, "SELECT sum(kernel_lost_ringbuf) FROM losses WHERE stream = 'syscalls'")
	if recorded == 0 || recorded > 10000 || dropped < 199000 || recorded+dropped < 200000 {
		t.Errorf("recorded %d, dropped %d", recorded, dropped)
	}
	if recorded != m.Events {
		t.Errorf("manifest events %d", m.Events)
	}
	s, err := Summarize(t.Context(), fixture(t, "loss"), SummaryOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Loss) != 1 || s.Loss[0].KernelLostRingbuf != dropped || len(s.Warnings) == 0 {
		t.Errorf("summary loss %+v, warnings %q", s.Loss, s.Warnings)
	}
	var series uint64
	for _, b := range s.Loss[0].Series {
		series += b.Lost
	}
	if series != dropped {
		t.Errorf("loss series sums to %d, want %d", series, dropped)
	}
}

func TestFixtureUserObject(t *testing.T) {
	out, m := export(t, fixture(t, "userobj"), Options{})
	if len(m.Warnings) != 0 {
		t.Errorf("warnings: %q", m.Warnings)
	}
	db := openDB(t, out)
	res, err := query.Query(t.Context(), db, "SELECT stream, bytes FROM raw ORDER BY seq, index")
	if err != nil {
		t.Fatal(err)
	}
	seqs := map[string][]uint64{}
	for _, r := range res.Rows {
		stream, b := r[0].(string), r[1].([]byte)
		if len(b) < 64 {
			t.Fatalf("%s: event of %d bytes", stream, len(b))
		}
		seq := binary.LittleEndian.Uint64(b)
		for i := range 40 {
			if b[24+i] != byte(seq+uint64(i)) {
				t.Fatalf("%s seq %d: tag[%d] = %d", stream, seq, i, b[24+i])
			}
		}
		seqs[stream] = append(seqs[stream], seq)
	}
	for stream, n := range map[string]int{"events_rb": 500, "events_perf": 300} {
		got := seqs[stream]
		sort.Slice(got, func(i, j int) bool { return got[i] < got[j] })
		if len(got) != n || got[0] != 0 || got[n-1] != uint64(n-1) {
			t.Errorf("%s: %d events", stream, len(got))
		}
	}
	for _, table := range []string{TableExec, TableExit, TableOpen, TableTCP, TableSyscalls} {
		if n := one[int](t, db, "SELECT count(*) FROM "+table); n != 0 {
			t.Errorf("%s: %d rows", table, n)
		}
	}
}

// The losses table carries each term both as the increment since the
// previous row of its stream and source and as the running total (what
// replay's LOSS lines print): in the order of the rows, every *_total is the
// sum of the increments so far, so the sum of a term is its last total. On
// the real recording with ring buffer losses, and on the mixed synthetic one
// (ring buffer counters, and perf samples lost per CPU).
func TestLossesTableTotals(t *testing.T) {
	mixedRec, _ := mixed(t)
	for name, rec := range map[string]string{"loss": fixture(t, "loss"), "mixed": mixedRec} {
		out, _ := export(t, rec, Options{})
		db := openDB(t, out)
		if n := one[int](t, db, "SELECT count(*) FROM losses"); n == 0 {
			t.Fatalf("%s: no loss rows", name)
		}
		// The file's row order is the order the exporter wrote them in.
		file := filepath.Join(out, "losses.parquet")
		for _, term := range []string{"kernel_lost_perfbuf", "kernel_lost_ringbuf", "ebpfrec_dropped", "kernel_missed"} {
			q := fmt.Sprintf(`SELECT count(*) FROM (
				SELECT %[1]s_total AS total, sum(%[1]s) OVER (PARTITION BY stream, source ORDER BY file_row_number ROWS UNBOUNDED PRECEDING) AS running
				FROM read_parquet('%[2]s', file_row_number = true)) WHERE total != running`, term, file)
			if n := one[int](t, db, q); n != 0 {
				t.Errorf("%s: %d rows whose %s_total is not the sum of %s so far", name, n, term, term)
			}
			q = fmt.Sprintf(`SELECT count(*) FROM (
				SELECT stream, source, sum(%[1]s) AS deltas, arg_max(%[1]s_total, file_row_number) AS last
				FROM read_parquet('%[2]s', file_row_number = true) GROUP BY stream, source) WHERE deltas != last`, term, file)
			if n := one[int](t, db, q); n != 0 {
				t.Errorf("%s: %d streams whose sum of %s is not the last %s_total", name, n, term, term)
			}
		}
		var ring, ringTotal uint64
		if err := db.QueryRow(`SELECT sum(kernel_lost_ringbuf), max(kernel_lost_ringbuf_total) FROM losses WHERE source = 'counters'`).Scan(&ring, &ringTotal); err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: kernel_lost_ringbuf: sum %d, last total %d", name, ring, ringTotal)
		if ring == 0 || ring != ringTotal {
			t.Errorf("%s: kernel_lost_ringbuf sums to %d, last total %d", name, ring, ringTotal)
		}
	}
}

// TestFixtureDemoProc checks the columns that resolve each event to its
// process on a recording made with the proc stream and the events' CPU
// (fixtures/demo-proc): the demo workload in a cgroup named like a Docker
// container's, its TCP listener in a child process.
func TestFixtureDemoProc(t *testing.T) {
	out, m := export(t, fixture(t, "demo-proc"), Options{})
	if m.DecodeErrors != 0 || m.DamagedBatches != 0 {
		t.Fatalf("decode errors %d, damaged batches %d (%q)", m.DecodeErrors, m.DamagedBatches, m.Warnings)
	}
	db := openDB(t, out)
	const container = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	events := []string{TableExec, TableExit, TableOpen, TableTCP, TableSyscalls}
	for _, table := range events {
		// Every built-in event carries its CPU and resolves to a process
		// the table knows: its comm, parent and cgroup.
		if n := one[int](t, db, "SELECT count(*) FROM "+table); n == 0 {
			t.Errorf("%s: no rows", table)
		}
		if n := one[int](t, db, "SELECT count(*) FROM "+table+" WHERE cpu IS NULL"); n != 0 {
			t.Errorf("%s: %d rows without cpu", table, n)
		}
		// (Unknown is "" and 0, or NULL in tcp: both count.)
		q := "SELECT count(*) FROM " + table + " WHERE pid IS NULL OR coalesce(comm, '') = '' OR coalesce(ppid, 0) = 0 OR coalesce(cgroup_id, 0) = 0 OR coalesce(exe, '') = ''"
		if n := one[int](t, db, q); n != 0 {
			t.Errorf("%s: %d rows not resolved to their process", table, n)
		}
		// Everything after the workload's exec ran in the container's
		// cgroup: resolved to it, with the container id from its path.
		q = "SELECT count(*) FROM " + table + " WHERE comm <> 'sh' AND (container_id IS DISTINCT FROM '" + container + "' OR cgroup_id <> (SELECT cgroup_id FROM processes WHERE container_id = '" + container + "' LIMIT 1))"
		if n := one[int](t, db, q); n != 0 {
			t.Errorf("%s: %d rows of the workload outside its container", table, n)
		}
		// Export writes each table in time order.
		q = "SELECT count(*) FROM (SELECT ktime_ns < lag(ktime_ns) OVER () AS back FROM " + table + ") WHERE back"
		if n := one[int](t, db, q); n != 0 {
			t.Errorf("%s: %d rows go back in time", table, n)
		}
	}
	// The process table: sh (a snapshot: the recorder started it), then the
	// workload, its five programs, its server and its two re-execs.
	got := rowsOf(t, db, "SELECT comm, origin FROM processes ORDER BY begin_ktime_ns, pid")
	if len(got) < 9 || got[0] != "sh snapshot" {
		t.Errorf("processes: %q", got)
	}
	if n := one[int](t, db, "SELECT count(*) FROM processes WHERE comm LIKE 'ebpfrec-demo-%' AND container_id = '"+container+"' AND exited"); n != 5 {
		t.Errorf("processes of the demo programs in the container: %d, want 5", n)
	}
	// The server's side of each connection (its listener's and the accepted
	// sockets' events, in the client's softirq) is the server's: the child
	// that runs `workload serve`.
	server := one[uint32](t, db, "SELECT pid FROM exec WHERE list_contains(args, 'serve')")
	client := one[uint32](t, db, "SELECT pid FROM exec WHERE list_contains(args, 'child-server')")
	got = rowsOf(t, db, fmt.Sprintf("SELECT pid = %d, old_state, new_state, count(*) FROM tcp WHERE sport = (SELECT sport FROM tcp WHERE new_state = 'LISTEN') GROUP BY ALL ORDER BY ALL", server))
	want := []string{
		"true CLOSE LISTEN 1", "true CLOSE_WAIT LAST_ACK 3", "true ESTABLISHED CLOSE_WAIT 3",
		"true LAST_ACK CLOSE 3", "true LISTEN CLOSE 1", "true LISTEN SYN_RECV 3", "true SYN_RECV ESTABLISHED 3",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("server side (pid %d):\n got %q\nwant %q", server, got, want)
	}
	if n := one[int](t, db, fmt.Sprintf("SELECT count(*) FROM tcp WHERE dport = (SELECT sport FROM tcp WHERE new_state = 'LISTEN') AND pid <> %d", client)); n != 0 {
		t.Errorf("client side: %d events not the client's (pid %d)", n, client)
	}
	// Opens straight after an exec carry their path: the first open of
	// each demo program (the dynamic loader's), each of its opens.
	got = rowsOf(t, db, "SELECT comm, count(*), count(*) FILTER (WHERE path IS NULL OR path = '') FROM open WHERE comm LIKE 'ebpfrec-demo-%' GROUP BY comm ORDER BY comm")
	if len(got) != 5 {
		t.Errorf("opens of the demo programs: %q", got)
	}
	for _, r := range got {
		if !strings.HasSuffix(r, " 0") || strings.HasSuffix(r, " 0 0") {
			t.Errorf("opens of a demo program (comm, opens, without path): %s", r)
		}
	}
	// The workload's files, as in demo.
	got = rowsOf(t, db, "SELECT path, count(*), min(ret) >= 0 FROM open WHERE path LIKE '/tmp/ebpfrec-demo/%' GROUP BY path ORDER BY path")
	want = []string{
		"/tmp/ebpfrec-demo/ebpfrec-demo-0 1 true", "/tmp/ebpfrec-demo/ebpfrec-demo-1 1 true", "/tmp/ebpfrec-demo/ebpfrec-demo-2 1 true",
		"/tmp/ebpfrec-demo/ebpfrec-demo-3 1 true", "/tmp/ebpfrec-demo/ebpfrec-demo-4 1 true",
		"/tmp/ebpfrec-demo/file-0 2 true", "/tmp/ebpfrec-demo/file-1 2 true", "/tmp/ebpfrec-demo/file-2 2 true", "/tmp/ebpfrec-demo/file-3 2 true",
		"/tmp/ebpfrec-demo/missing 1 false",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("demo files opened:\n got %q\nwant %q", got, want)
	}
}

// TestFixtureUserspace exports fixtures/userspace (the user-space tracers,
// made by this build) and reads the gofunc, dns and bash tables back:
// the calls, lookups and lines the workload made, in order, each resolved
// to its process.
func TestFixtureUserspace(t *testing.T) {
	out, m := export(t, fixture(t, "userspace"), Options{})
	if m.DecodeErrors != 0 || m.DamagedBatches != 0 {
		t.Fatalf("decode errors %d, damaged batches %d (%q)", m.DecodeErrors, m.DamagedBatches, m.Warnings)
	}
	db := openDB(t, out)
	got := rowsOf(t, db, "SELECT func, count(*), bool_and(entry_seen), bool_and(latency_ns > 0), count(DISTINCT goid) FROM gofunc WHERE kind = 'exit' GROUP BY func ORDER BY func")
	if want := []string{"main.handleHello 4 true true 4", "main.handleSum 2 true true 2"}; !reflect.DeepEqual(got, want) {
		t.Errorf("gofunc exits:\n got %q\nwant %q", got, want)
	}
	if n := one[int](t, db, "SELECT count(*) FROM gofunc WHERE kind = 'entry'"); n != 6 {
		t.Errorf("gofunc entries: %d, want 6", n)
	}
	if n := one[int](t, db, "SELECT count(*) FROM gofunc WHERE comm <> 'server' OR coalesce(exe, '') NOT LIKE '%/server'"); n != 0 {
		t.Errorf("gofunc: %d rows not resolved to the server", n)
	}
	got = rowsOf(t, db, "SELECT host, result, array_to_string(addrs, ','), comm FROM dns ORDER BY ktime_ns")
	local := "127.0.0.1 ok 127.0.0.1 bash"
	want := []string{local, local, local, local, local, local,
		"alpha.ebpfrec.test ok 10.1.2.3 getent", "beta.ebpfrec.test ok fd00::5 getent", "gamma.ebpfrec.test EAI_NONAME  getent"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("dns lookups:\n got %q\nwant %q", got, want)
	}
	got = rowsOf(t, db, "SELECT line, eof, line_truncated, comm FROM bash ORDER BY ktime_ns")
	want = []string{"echo hello-1 false false bash", `x=2; echo "x is $x" false false bash`, "exit false false bash"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("bash lines:\n got %q\nwant %q", got, want)
	}
	if n := one[int](t, db, "SELECT count(DISTINCT pid) FROM bash"); n != 1 {
		t.Errorf("bash lines of %d processes, want 1", n)
	}
	if n := one[int](t, db, "SELECT count(*) FROM losses"); n != 0 {
		t.Errorf("loss rows: %d", n)
	}
}
