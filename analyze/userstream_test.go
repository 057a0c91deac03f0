package analyze

import (
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf/btf"
	"golang.org/x/sys/unix"

	"github.com/ebpfrec/ebpfrec/bpf/btflayout"
	"github.com/ebpfrec/ebpfrec/internal/kerneltest"
	"github.com/ebpfrec/ebpfrec/record"
	"github.com/ebpfrec/ebpfrec/replay"
	"github.com/ebpfrec/ebpfrec/store"
)

// recordTestprog records n events of bpf/testdata/testprog's ring buffer,
// named as struct test_event (--ringbuf events_rb=test_event), each caused
// by a getppid of this process.
func recordTestprog(t *testing.T, n int) string {
	t.Helper()
	kerneltest.Require(t)
	arch := map[string]string{"amd64": "x86", "arm64": "arm64"}[runtime.GOARCH]
	if arch == "" {
		t.Skipf("no test object for %s", runtime.GOARCH)
	}
	obj := filepath.Join("..", "bpf", "testdata", "testprog_"+arch+"_bpfel.o")
	c, err := record.ObjectCollection(obj, record.ObjectOptions{
		Ringbufs: []string{"events_rb=test_event"},
		Set:      []string{fmt.Sprintf("target_tgid=%d", os.Getpid())},
		Attach:   []string{"tracepoint:syscalls/sys_enter_getppid=rb_getppid"},
	})
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "rec")
	started := make(chan struct{})
	rec, err := record.New(record.Options{Dir: dir, NoProc: true, Started: func() { close(started) }})
	if err != nil {
		t.Fatal(err)
	}
	if err := rec.AddCollection(c); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := rec.Run(ctx)
		done <- err
	}()
	select {
	case <-started:
	case err := <-done:
		t.Fatalf("record: %v", err)
	}
	runtime.LockOSThread()
	for range n {
		unix.Getppid()
	}
	runtime.UnlockOSThread()
	cancel() // the recorder drains the buffer before it stops
	if err := <-done; err != nil && ctx.Err() == nil {
		t.Fatalf("record: %v", err)
	}
	return dir
}

// TestUserStreamByLayout: a user's stream recorded with its layout
// (testprog's struct test_event) replays with its fields by name, exports
// to a typed table named after the stream whose DuckDB types and values
// are those the program wrote (tag[i] = (seq+i) & 0xff), and is counted by
// summary under its struct.
func TestUserStreamByLayout(t *testing.T) {
	const n = 300
	dir := recordTestprog(t, n)

	// Replay: the fields by name, for a library handler.
	r, err := replay.Open(dir, replay.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var seen int
	var bad []string
	r.HandleDecoded(func(d *replay.Decoded) error {
		if d.Stream.Name != "events_rb" {
			return nil
		}
		seen++
		if d.Layout == nil || d.Layout.Name != "test_event" {
			bad = append(bad, fmt.Sprintf("event %d: layout %v, err %v", seen, d.Layout, d.Err))
			return nil
		}
		vals := map[string]*btflayout.Value{}
		for i := range d.Layout.Fields {
			vals[d.Layout.Fields[i].Name] = &d.Fields[i]
		}
		seq := vals["seq"].Bits
		if vals["tgid"].Bits != uint64(os.Getpid()) || len(vals["tag"].List) != 40 || vals["tag"].List[39].Bits != (seq+39)&0xff {
			bad = append(bad, fmt.Sprintf("event %d: seq %d tgid %d tag %v", seen, seq, vals["tgid"].Bits, vals["tag"].List))
		}
		return nil
	})
	if _, err := r.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if seen != n || len(bad) > 0 {
		t.Fatalf("replayed %d events of %d; wrong: %v", seen, n, bad)
	}

	// Export: a typed table named after the stream.
	out := filepath.Join(t.TempDir(), "exp")
	m, err := Export(context.Background(), dir, out, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if tf, ok := m.Table("events_rb"); !ok || tf.Rows != n {
		t.Fatalf("manifest table events_rb: %+v (%v)", tf, ok)
	}
	db := openDB(t, out)
	types, _ := describe(t, db, "events_rb")
	for col, want := range map[string]string{"seq": "UBIGINT", "ktime_ns": "UBIGINT", "tgid": "UINTEGER", "cpu": "UINTEGER",
		"tag": "UTINYINT[]", "time": "TIMESTAMP_NS", "_cpu": "INTEGER", "index": "UINTEGER"} {
		if types[col] != want {
			t.Errorf("column %s: %q, want %s (all: %v)", col, types[col], want, types)
		}
	}
	if got := one[int64](t, db, "SELECT count(*) FROM events_rb WHERE tgid = ? AND len(tag) = 40", os.Getpid()); got != n {
		t.Errorf("%d rows of this process with 40 tags, want %d", got, n)
	}
	if got := one[int64](t, db, "SELECT count(DISTINCT seq) FROM events_rb WHERE seq < ?", n); got != n {
		t.Errorf("%d distinct seq below %d, want %d", got, n, n)
	}
	// Every tag byte is what the program wrote.
	q := `SELECT count(*) FROM (SELECT seq, unnest(tag) AS v, unnest(range(40)) AS i FROM events_rb) WHERE v = (seq + i) % 256`
	if got := one[int64](t, db, q); got != n*40 {
		t.Errorf("%d tag bytes as written, want %d", got, n*40)
	}

	// Summary: counted under the stream's struct.
	s, err := Summarize(context.Background(), dir, SummaryOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var found bool
	for _, sc := range s.Streams {
		if sc.Stream == "events_rb" {
			found = sc.Struct == "test_event" && sc.Events == n
		}
	}
	if !found || s.DecodeErrors != 0 {
		t.Errorf("summary streams %+v, %d decode errors", s.Streams, s.DecodeErrors)
	}
	var text strings.Builder
	if err := s.WriteText(&text); err != nil || !strings.Contains(text.String(), "struct test_event") {
		t.Errorf("summary text (%v):\n%s", err, text.String())
	}
}

// pairLayout is the marshalled layout of struct pair {u32 n; char
// name[8]}, or of a later build's {u64 n; char name[8]} (v2).
func pairLayout(t *testing.T, v2 bool) []byte {
	t.Helper()
	n := &btf.Int{Name: "unsigned int", Size: 4}
	size := uint32(12)
	if v2 {
		n, size = &btf.Int{Name: "unsigned long", Size: 8}, 16
	}
	char := &btf.Int{Name: "char", Size: 1, Encoding: btf.Signed}
	st := &btf.Struct{Name: "pair", Size: size, Members: []btf.Member{
		{Name: "n", Type: n},
		{Name: "name", Type: &btf.Array{Index: n, Type: char, Nelems: 8}, Offset: btf.Bits(n.Size * 8)},
	}}
	l, err := btflayout.New(st, binary.LittleEndian)
	if err != nil {
		t.Fatal(err)
	}
	b, err := l.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestExportByStoredLayouts: two recordings of one struct whose layout
// changed between builds export each by its own layout (the column's type
// follows), and a stream whose stored layout is damaged goes to the raw
// table with a warning naming it.
func TestExportByStoredLayouts(t *testing.T) {
	damaged := pairLayout(t, false)
	damaged = damaged[:len(damaged)-5]
	ev1 := append(binary.LittleEndian.AppendUint32(nil, 7), "seven\x00\x00\x00"...)
	ev2 := append(binary.LittleEndian.AppendUint64(nil, 1<<40), "fortyfou"...)
	for _, c := range []struct {
		layout []byte
		ev     []byte
		typ    string
		n      uint64
	}{
		{pairLayout(t, false), ev1, "UINTEGER", 7},
		{pairLayout(t, true), ev2, "UBIGINT", 1 << 40},
		{damaged, ev1, "", 0},
	} {
		dir := filepath.Join(t.TempDir(), "rec")
		meta := store.Meta{RecordingID: "pairs", Streams: []store.StreamInfo{
			{Name: "pairs", Map: "m", Kind: store.KindRingbuf, Layout: c.layout, Object: &store.ObjectInfo{Path: "p.o"}}}}
		w, err := store.Create(dir, meta, store.WriterOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Append(&store.Batch{Stream: "pairs", Kind: store.KindRingbuf, Events: []store.Event{{Raw: c.ev, Timestamp: time.Now()}}}); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		out := filepath.Join(t.TempDir(), "exp")
		m, err := Export(context.Background(), dir, out, Options{})
		if err != nil {
			t.Fatal(err)
		}
		db := openDB(t, out)
		if c.typ == "" {
			if _, ok := m.Table("pairs"); ok || len(m.Warnings) == 0 || !strings.Contains(m.Warnings[0], "stream pairs: stored layout: btflayout: struct pair: BTF of") {
				t.Errorf("damaged layout: warnings %q", m.Warnings)
			}
			if got := one[int64](t, db, "SELECT count(*) FROM raw WHERE stream = 'pairs' AND length = 12"); got != 1 {
				t.Errorf("damaged layout: %d raw rows", got)
			}
			continue
		}
		types, _ := describe(t, db, "pairs")
		if types["n"] != c.typ || types["name"] != "VARCHAR" || types["name_truncated"] != "BOOLEAN" {
			t.Errorf("layout n %s: columns %v", c.typ, types)
		}
		if got := one[uint64](t, db, "SELECT n FROM pairs"); got != c.n {
			t.Errorf("layout n %s: n = %d, want %d", c.typ, got, c.n)
		}
	}
}
