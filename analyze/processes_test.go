package analyze

import (
	"database/sql"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ebpfrec/ebpfrec/analyze/internal/synth"
	"github.com/ebpfrec/ebpfrec/analyze/query"
	"github.com/ebpfrec/ebpfrec/bpf/tracers/proc"
	"github.com/ebpfrec/ebpfrec/bpf/tracers/syscalls"
	"github.com/ebpfrec/ebpfrec/store"
)

// procRecording writes a recording with a proc stream and a syscalls
// stream: a shell (pid 50) in a Docker container, alive at start
// (snapshot), forks pid 100, which execs ls and exits; pid 100 is then
// reused by cat. Each process makes syscalls (nr 39) in each of its lives.
func procRecording(t *testing.T) (dir, container string) {
	t.Helper()
	container = strings.Repeat("c0", 32)
	dir = filepath.Join(t.TempDir(), "rec")
	procInfo := store.StreamInfo{Name: proc.StreamProc, Tracer: proc.Name, Map: proc.MapEvents, Kind: store.KindRingbuf, EventType: proc.EventType}
	w, err := store.Create(dir, synth.Meta("host", synth.Builtin(syscalls.Name), procInfo), store.WriterOptions{Sync: store.SyncNever})
	if err != nil {
		t.Fatal(err)
	}
	const B = synth.Boot
	at := func(kt uint64) time.Time { return synth.Start.Add(time.Duration(kt - B)) }
	rec := func(kind uint32, ev proc.Event) store.Event {
		return store.Event{Raw: proc.AppendRecord(nil, kind, &ev), Timestamp: at(ev.KtimeNs), CPU: -1}
	}
	// The kernel's fork, exec and exit events have the layout of
	// proc_head and proc_exec_event: written here as the tracer's decoder
	// reads them.
	kernel := func(kind uint32, ev proc.Event) store.Event {
		raw := proc.AppendRecord(nil, kind, &ev)[:proc.HeadSize]
		if kind == proc.KindExec {
			raw = append(raw, make([]byte, proc.ExecSize-proc.HeadSize)...)
			copy(raw[proc.HeadSize:], ev.Exe)
			args := strings.Join(ev.Args, "\x00") + "\x00"
			copy(raw[336:], args)
			raw[332] = byte(len(args))
		}
		return store.Event{Raw: raw, Timestamp: at(ev.KtimeNs), CPU: -1}
	}
	cg := "/system.slice/docker-" + container + ".scope"
	procs := []store.Event{
		rec(proc.KindCgroup, proc.Event{KtimeNs: B + 10, CgroupID: 7, CgroupPath: cg}),
		rec(proc.KindSnapshot, proc.Event{KtimeNs: B + 10, Pid: 50, Ppid: 1, Command: "sh", Exe: "/bin/sh", Args: []string{"sh", "-i"}, StartNs: B - 1e9, CgroupID: 7, CgroupPath: cg}),
		kernel(proc.KindFork, proc.Event{KtimeNs: B + 1000, Pid: 100, Tid: 100, Ppid: 50, Command: "sh", StartNs: B + 1000, CgroupID: 7}),
		kernel(proc.KindExec, proc.Event{KtimeNs: B + 2000, Pid: 100, Tid: 100, Ppid: 50, Command: "ls", Exe: "/bin/ls", Args: []string{"ls", "-l"}, StartNs: B + 1000, CgroupID: 7}),
		kernel(proc.KindExit, proc.Event{KtimeNs: B + 3000, Pid: 100, Tid: 100, Ppid: 50, Command: "ls", StartNs: B + 1000, CgroupID: 7}),
		kernel(proc.KindFork, proc.Event{KtimeNs: B + 4000, Pid: 100, Tid: 100, Ppid: 1, Command: "init", StartNs: B + 4000, CgroupID: 1}),
		kernel(proc.KindExec, proc.Event{KtimeNs: B + 5000, Pid: 100, Tid: 100, Ppid: 1, Command: "cat", Exe: "/bin/cat", Args: []string{"cat"}, StartNs: B + 4000, CgroupID: 1}),
	}
	var sys []store.Event
	for _, e := range []struct {
		kt  uint64
		pid uint32
	}{{5, 50}, {500, 50}, {1500, 100}, {2500, 100}, {2600, 100}, {4500, 100}, {6000, 100}, {6000, 50}, {7000, 999}} {
		sys = append(sys, store.Event{Raw: synth.Syscall(B+e.kt, 10, 0, e.pid, 39), Timestamp: at(B + e.kt), CPU: -1})
	}
	for _, b := range []*store.Batch{
		{Stream: syscalls.StreamSyscalls, Kind: store.KindRingbuf, Events: sys},
		{Stream: proc.StreamProc, Kind: store.KindRingbuf, Events: procs},
	} {
		if err := w.Append(b); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return dir, container
}

// TestProcessesTable: the processes table has one row per process life,
// and every syscalls row says, as of its time, which process made it;
// DuckDB joins the two.
func TestProcessesTable(t *testing.T) {
	rec, container := procRecording(t)
	out, m := export(t, rec, Options{})
	if m.DecodeErrors != 0 || len(m.Warnings) != 0 {
		t.Fatalf("decode errors %d, warnings %q", m.DecodeErrors, m.Warnings)
	}
	db := openDB(t, out)
	// sh (snapshot), sh (fork of 100), ls, init (fork of 100 again), cat.
	got := strs(t, queryT(t, db, `SELECT pid, comm, exe, ppid, origin, exited, container_id = '`+container+`', array_to_string(args, ' ')
		FROM processes ORDER BY begin_ktime_ns, pid`))
	want := []string{
		"50 sh /bin/sh 1 snapshot false true sh -i",
		"100 sh /bin/sh 50 fork false true sh -i",
		"100 ls /bin/ls 50 exec true true ls -l",
		"100 init  1 fork false false ",
		"100 cat /bin/cat 1 exec false false cat",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("processes:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	got = strs(t, queryT(t, db, `SELECT ktime_ns - `+strconv.Itoa(synth.Boot)+`, pid, comm, ppid, cgroup_id, container_id <> '', exe FROM syscalls ORDER BY ktime_ns, pid`))
	want = []string{
		"5 50 sh 1 7 true /bin/sh",
		"500 50 sh 1 7 true /bin/sh",
		"1500 100 sh 50 7 true /bin/sh",
		"2500 100 ls 50 7 true /bin/ls",
		"2600 100 ls 50 7 true /bin/ls",
		"4500 100 init 1 1 false ",
		"6000 50 sh 1 7 true /bin/sh",
		"6000 100 cat 1 1 false /bin/cat",
		"7000 999  0 0 false ", // a process the recording does not describe
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("syscalls:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// The join the resolved columns spare: the life of pid that was
	// current at the event.
	n := one[int64](t, db, `SELECT count(*) FROM syscalls s JOIN processes p
		ON s.pid = p.pid AND p.begin_ktime_ns <= s.ktime_ns
		AND NOT EXISTS (SELECT 1 FROM processes q WHERE q.pid = s.pid AND q.begin_ktime_ns <= s.ktime_ns AND q.begin_ktime_ns > p.begin_ktime_ns)
		WHERE p.comm = s.comm AND p.exe = s.exe`)
	if n != 8 {
		t.Errorf("join: %d syscalls match their process, want 8", n)
	}
}

func queryT(t *testing.T, db *sql.DB, q string) *query.Result {
	t.Helper()
	res, err := query.Query(t.Context(), db, q)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// TestSummaryNamesProcesses: summary's top processes are named by the
// process table where their events carry no comm (syscalls).
func TestSummaryNamesProcesses(t *testing.T) {
	rec, _ := procRecording(t)
	s, err := Summarize(t.Context(), rec, SummaryOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range s.TopProcesses {
		got = append(got, strconv.Itoa(int(p.Pid))+" "+p.Comm+" "+strconv.Itoa(int(p.Events)))
	}
	// pid 100's last event is cat's; pid 999 is not in the table.
	if want := "100 cat 5,50 sh 3,999  1"; strings.Join(got, ",") != want {
		t.Errorf("top processes %q, want %q", strings.Join(got, ","), want)
	}
	if len(s.Warnings) != 0 || s.DecodeErrors != 0 {
		t.Errorf("warnings %q, decode errors %d", s.Warnings, s.DecodeErrors)
	}
}
