package analyze

import (
	"database/sql"
	"encoding/binary"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"testing"
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
	for _, name := range []string{"demo", "loss", "userobj"} {
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

func strs(t *testing.T, res *Result) []string {
	t.Helper()
	var out []string
	for _, r := range res.Rows {
		s := ""
		for i, v := range r {
			if i > 0 {
				s += " "
			}
			s += FormatValue(v, res.typ(i))
		}
		out = append(out, s)
	}
	return out
}

func query(t *testing.T, db *sql.DB, q string) []string {
	t.Helper()
	res, err := Query(t.Context(), db, q)
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
	got := query(t, db, "SELECT filename FROM exec WHERE filename LIKE '/tmp/ebpfrec-demo/%' ORDER BY time")
	want := []string{"/tmp/ebpfrec-demo/ebpfrec-demo-0", "/tmp/ebpfrec-demo/ebpfrec-demo-1", "/tmp/ebpfrec-demo/ebpfrec-demo-2",
		"/tmp/ebpfrec-demo/ebpfrec-demo-3", "/tmp/ebpfrec-demo/ebpfrec-demo-4"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("demo execs in order: %v", got)
	}
	got = query(t, db, "SELECT path, count(*), min(ret) >= 0 FROM open WHERE path LIKE '/tmp/ebpfrec-demo/%' GROUP BY path ORDER BY path")
	want = []string{
		"/tmp/ebpfrec-demo/ebpfrec-demo-0 1 true", "/tmp/ebpfrec-demo/ebpfrec-demo-1 1 true", "/tmp/ebpfrec-demo/ebpfrec-demo-2 1 true",
		"/tmp/ebpfrec-demo/ebpfrec-demo-3 1 true", "/tmp/ebpfrec-demo/ebpfrec-demo-4 1 true",
		"/tmp/ebpfrec-demo/file-0 2 true", "/tmp/ebpfrec-demo/file-1 2 true", "/tmp/ebpfrec-demo/file-2 2 true", "/tmp/ebpfrec-demo/file-3 2 true",
		"/tmp/ebpfrec-demo/missing 1 false",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("demo files opened:\n got %q\nwant %q", got, want)
	}
	if got := query(t, db, "SELECT ret FROM open WHERE path = '/tmp/ebpfrec-demo/missing'"); !reflect.DeepEqual(got, []string{"-2"}) {
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
	dropped := one[uint64](t, db, "SELECT sum(ringbuf_dropped) FROM losses WHERE stream = 'syscalls'")
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
	if len(s.Loss) != 1 || s.Loss[0].RingbufDropped != dropped || len(s.Warnings) == 0 {
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
	res, err := Query(t.Context(), db, "SELECT stream, bytes FROM raw ORDER BY seq, index")
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
