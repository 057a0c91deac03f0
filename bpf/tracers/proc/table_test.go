package proc

import (
	"math/rand"
	"strings"
	"testing"
)

const ms = 1_000_000

// lifeOf resolves pid at t and returns "comm exe ppid" ("-" if unknown).
func lifeOf(tb *Table, pid uint32, t uint64) string {
	p := tb.Resolve(pid, t)
	if p == nil {
		return "-"
	}
	return p.Comm + " " + p.Exe + " " + itoa(p.Ppid)
}

func itoa(v uint32) string {
	b := []byte{}
	for {
		b = append([]byte{byte('0' + v%10)}, b...)
		v /= 10
		if v == 0 {
			return string(b)
		}
	}
}

// build adds events to a new table, in the given order.
func build(evs []Event) *Table {
	tb := NewTable()
	for i := range evs {
		tb.Add(&evs[i])
	}
	return tb
}

var docker = "/system.slice/docker-" + strings.Repeat("ab", 32) + ".scope"

// sequence: init (pid 1) and a shell (pid 50, in a Docker container) alive
// at start; the shell forks 100, which execs ls and exits; pid 100 is
// reused by a fork of init that execs cat; the shell execs bash.
func sequence() []Event {
	return []Event{
		{Kind: "cgroup", KtimeNs: 1000 * ms, CgroupID: 7, CgroupPath: docker},
		{Kind: "cgroup", KtimeNs: 1000 * ms, CgroupID: 1, CgroupPath: "/"},
		{Kind: "snapshot", KtimeNs: 1000 * ms, Pid: 1, Ppid: 0, Command: "init", Exe: "/sbin/init", StartNs: 1 * ms, CgroupID: 1, CgroupPath: "/"},
		{Kind: "snapshot", KtimeNs: 1001 * ms, Pid: 50, Ppid: 1, Command: "sh", Exe: "/bin/sh", Args: []string{"sh"}, StartNs: 500 * ms, CgroupID: 7},
		{Kind: "fork", KtimeNs: 1100 * ms, Pid: 100, Ppid: 50, Command: "sh", StartNs: 1100 * ms, CgroupID: 7},
		{Kind: "exec", KtimeNs: 1110 * ms, Pid: 100, Ppid: 50, Command: "ls", Exe: "/bin/ls", Args: []string{"ls", "-l"}, StartNs: 1100 * ms, CgroupID: 7},
		{Kind: "exit", KtimeNs: 1200 * ms, Pid: 100, Ppid: 50, Command: "ls", StartNs: 1100 * ms, CgroupID: 7, ExitCode: 256},
		{Kind: "fork", KtimeNs: 1300 * ms, Pid: 100, Ppid: 1, Command: "init", StartNs: 1300 * ms, CgroupID: 1},
		{Kind: "exec", KtimeNs: 1310 * ms, Pid: 100, Ppid: 1, Command: "cat", Exe: "/bin/cat", StartNs: 1300 * ms, CgroupID: 1},
		{Kind: "exec", KtimeNs: 1400 * ms, Pid: 50, Ppid: 1, Command: "bash", Exe: "/bin/bash", StartNs: 500 * ms, CgroupID: 7},
	}
}

func checkSequence(t *testing.T, tb *Table) {
	t.Helper()
	for _, tc := range []struct {
		pid  uint32
		at   uint64
		want string
	}{
		{1, 5 * ms, "init /sbin/init 0"},      // before the snapshot, after its start
		{50, 600 * ms, "sh /bin/sh 1"},        // event before the snapshot
		{50, 1399 * ms, "sh /bin/sh 1"},       // just before its exec
		{50, 1400 * ms, "bash /bin/bash 1"},   // exec changes comm, from its ktime on
		{100, 1105 * ms, "sh /bin/sh 50"},     // forked: the parent's comm and exe
		{100, 1150 * ms, "ls /bin/ls 50"},     // after exec
		{100, 1250 * ms, "ls /bin/ls 50"},     // after the exit, before the reuse
		{100, 1305 * ms, "init /sbin/init 1"}, // reused pid
		{100, 1500 * ms, "cat /bin/cat 1"},
		{100, 1000 * ms, "-"}, // before it existed
		{999, 1500 * ms, "-"}, // never known
		{50, 400 * ms, "-"},   // before it started
	} {
		if got := lifeOf(tb, tc.pid, tc.at); got != tc.want {
			t.Errorf("Resolve(%d, %d ms) = %q, want %q", tc.pid, tc.at/ms, got, tc.want)
		}
	}
	ls := tb.Resolve(100, 1150*ms)
	if ls == nil || !ls.Exited || ls.ExitCode != 256 || ls.End != 1200*ms || ls.Begin != 1110*ms ||
		ls.CgroupPath != docker || ls.ContainerID != strings.Repeat("ab", 32) || len(ls.Args) != 2 {
		t.Errorf("ls: %+v", ls)
	}
	if sh := tb.Resolve(50, 1200*ms); sh == nil || sh.End != 1400*ms || sh.Exited || sh.ContainerID == "" {
		t.Errorf("sh before its exec: %+v", sh)
	}
	if cat := tb.Resolve(100, 1500*ms); cat == nil || cat.ContainerID != "" || cat.CgroupPath != "/" || cat.End != 0 {
		t.Errorf("cat: %+v", cat)
	}
	// init, sh, bash, sh(fork) -> ls, init(fork) -> cat: 7 lives.
	if n := tb.Len(); n != 7 {
		for _, p := range tb.Processes() {
			t.Logf("%+v", p)
		}
		t.Errorf("%d lives, want 7", n)
	}
}

func TestTableSequence(t *testing.T) {
	checkSequence(t, build(sequence()))
}

// The recording's order of events is not their ktime order (per-CPU
// buffers, the snapshot written after the attach): any order gives the
// same table.
func TestTableAnyOrder(t *testing.T) {
	r := rand.New(rand.NewSource(1))
	for i := 0; i < 20; i++ {
		evs := sequence()
		r.Shuffle(len(evs), func(i, j int) { evs[i], evs[j] = evs[j], evs[i] })
		checkSequence(t, build(evs))
	}
}

// The kernel and the snapshot may both report a process (started or
// exec'd while the snapshot ran): one life, with the snapshot's exe.
func TestTableSnapshotDuplicates(t *testing.T) {
	tb := build([]Event{
		{Kind: "fork", KtimeNs: 990 * ms, Pid: 70, Ppid: 1, Command: "bash", StartNs: 990 * ms},
		// /proc's start time is at 10 ms resolution.
		{Kind: "snapshot", KtimeNs: 1000 * ms, Pid: 70, Ppid: 1, Command: "bash", Exe: "/bin/bash", StartNs: 980 * ms},
		{Kind: "exec", KtimeNs: 995 * ms, Pid: 71, Ppid: 1, Command: "top", Exe: "/usr/bin/top", StartNs: 900 * ms},
		{Kind: "snapshot", KtimeNs: 1000 * ms, Pid: 71, Ppid: 1, Command: "top", Exe: "/usr/bin/top", Args: []string{"top", "-b"}, StartNs: 900 * ms},
	})
	if n := tb.Len(); n != 2 {
		for _, p := range tb.Processes() {
			t.Logf("%+v", p)
		}
		t.Fatalf("%d lives, want 2", n)
	}
	if got := lifeOf(tb, 70, 2000*ms); got != "bash /bin/bash 1" {
		t.Errorf("70: %q", got)
	}
	if p := tb.Resolve(71, 2000*ms); p == nil || p.Origin != "exec" || p.Exe != "/usr/bin/top" {
		t.Errorf("71: %+v", p)
	}
}

// A process known by its exit alone (started before the recording, left
// out of the snapshot) resolves from its start.
func TestTableExitOnly(t *testing.T) {
	tb := build([]Event{{Kind: "exit", KtimeNs: 50 * ms, Pid: 9, Ppid: 1, Command: "sleep", StartNs: 10 * ms, ExitCode: 9}})
	if p := tb.Resolve(9, 20*ms); p == nil || p.Comm != "sleep" || !p.Exited || p.ExitCode != 9 {
		t.Fatalf("%+v", p)
	}
}

// dump lists every life of a table, in Processes' order, with every field.
func dump(tb *Table) []string {
	var out []string
	for _, p := range tb.Processes() {
		out = append(out, strings.Join([]string{itoa(p.Pid), itoa(p.Ppid), p.Comm, p.Exe, strings.Join(p.Args, ","), itoa(uint32(p.CgroupID)),
			p.CgroupPath, p.ContainerID, itoa(uint32(p.Begin / ms)), itoa(uint32(p.End / ms)), p.Origin, itoa(p.ExitCode)}, " "))
	}
	return out
}

// TestExtend: a table extended event by event while in use (a follower's)
// ends as the table built from every event at once, and extending in
// stream order never rebuilds it; an event earlier than the last falls
// back to a rebuild, with the same result.
func TestExtend(t *testing.T) {
	evs := sequence()
	want := dump(build(evs))
	for start := 0; start <= len(evs); start++ {
		tb := build(evs[:start])
		tb.Len()
		for i := start; i < len(evs); i++ {
			tb.Extend(&evs[i])
			if !tb.built {
				t.Fatalf("from %d: event %d (%s at %d ms) in order rebuilt the table", start, i, evs[i].Kind, evs[i].KtimeNs/ms)
			}
			lifeOf(tb, evs[i].Pid, evs[i].KtimeNs) // in use between events
		}
		checkSequence(t, tb)
		if got := dump(tb); strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Fatalf("extended from %d:\n%s\nwant\n%s", start, strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	}
	// Out of order: the exit of 100 comes after the later fork.
	tb := build(evs[:6])
	tb.Len()
	for _, i := range []int{7, 6, 8, 9} {
		tb.Extend(&evs[i])
	}
	if got := dump(tb); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("extended out of order:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestRename: a process that renames itself resolves to its old comm
// before the rename and to the new one from it on, with the rest of its
// life (exe, args, cgroup) kept; a rename to the same name adds nothing; a
// rename of a process the table did not know starts a life.
func TestRename(t *testing.T) {
	evs := []Event{
		{Kind: "cgroup", KtimeNs: 1000 * ms, CgroupID: 7, CgroupPath: docker},
		{Kind: "snapshot", KtimeNs: 1000 * ms, Pid: 50, Ppid: 1, Command: "python3", Exe: "/usr/bin/python3", Args: []string{"python3", "srv.py"}, StartNs: 500 * ms, CgroupID: 7},
		{Kind: "rename", KtimeNs: 1100 * ms, Pid: 50, Ppid: 1, Command: "srv-main", StartNs: 500 * ms, CgroupID: 7},
		{Kind: "rename", KtimeNs: 1150 * ms, Pid: 50, Ppid: 1, Command: "srv-main", StartNs: 500 * ms, CgroupID: 7},
		{Kind: "rename", KtimeNs: 1200 * ms, Pid: 60, Ppid: 1, Command: "late", StartNs: 100 * ms, CgroupID: 7},
		{Kind: "exit", KtimeNs: 1300 * ms, Pid: 50, Ppid: 1, Command: "srv-main", StartNs: 500 * ms, CgroupID: 7},
	}
	for _, tb := range []*Table{build(evs), build([]Event{evs[5], evs[3], evs[1], evs[4], evs[2], evs[0]})} {
		for _, tc := range []struct {
			pid  uint32
			at   uint64
			want string
		}{
			{50, 1050 * ms, "python3 /usr/bin/python3 1"},
			{50, 1100 * ms, "srv-main /usr/bin/python3 1"},
			{50, 1299 * ms, "srv-main /usr/bin/python3 1"},
			{60, 1199 * ms, "-"},
			{60, 1200 * ms, "late  1"},
		} {
			if got := lifeOf(tb, tc.pid, tc.at); got != tc.want {
				t.Errorf("pid %d at %d ms: %q, want %q", tc.pid, tc.at/ms, got, tc.want)
			}
		}
		got := dump(tb)
		want := []string{
			"50 1 python3 /usr/bin/python3 python3,srv.py 7 " + docker + " " + strings.Repeat("ab", 32) + " 500 1100 snapshot 0",
			"50 1 srv-main /usr/bin/python3 python3,srv.py 7 " + docker + " " + strings.Repeat("ab", 32) + " 1100 1300 rename 0",
			"60 1 late   7 " + docker + " " + strings.Repeat("ab", 32) + " 1200 0 rename 0",
		}
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("lives:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	}
}
