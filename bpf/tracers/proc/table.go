package proc

import (
	"cmp"
	"slices"
	"sort"
)

// Process is one life of a process image: a pid from its fork, exec or
// the snapshot that found it, to its next exec or its exit. A process that
// execs twice has three lives under one pid, each with its comm and exe.
type Process struct {
	Pid, Ppid, UID uint32
	// Comm is the command name (at most 15 bytes); Exe the executable
	// (exec: as given to exec; fork: the parent's; snapshot: /proc/PID/exe).
	Comm, Exe     string
	Args          []string
	ArgsTruncated bool
	// CgroupID is the cgroup v2 id; CgroupPath its path, when the
	// recording holds it; ContainerID is parsed from the path
	// (ParseCgroupPath).
	CgroupID    uint64
	CgroupPath  string
	ContainerID string
	// StartNs is when the process (not this image) started; Begin and End
	// bound this life (CLOCK_MONOTONIC ns, comparable with every event's
	// ktime): End is 0 while it is not known to have ended.
	StartNs, Begin, End uint64
	// Exited says End is the process's exit, with ExitCode (raw wait
	// status); otherwise an exec (or nothing) ended this life.
	Exited   bool
	ExitCode uint32
	// Origin names what the life was first known from: "fork", "exec",
	// "rename" (the process renamed itself: the life before it ended there),
	// "snapshot" or "exit".
	Origin string
}

// sameStart is how far apart two start times of one process may be: the
// snapshot's come from /proc at clock-tick (10 ms) resolution.
const sameStart = 25_000_000

// Table is the process table of a recording: every process life its proc
// stream describes. Add every event of the stream (in any order), then
// Resolve. The first call after an Add (Resolve, Len, Processes,
// CgroupPath) builds the table; once built, until the next Add, those
// methods only read it and are safe for concurrent use.
//
// The table holds every event added, and a Process for each life, in
// memory: its size grows with the proc stream (the recording's forks, execs
// and exits, a few hundred bytes each with their command lines), not with
// the other streams' events. A recording of a machine that starts millions
// of processes needs that much memory to replay or export with resolution.
type Table struct {
	events  []Event
	built   bool
	byPID   map[uint32][]*Process
	lives   []*Process
	cgroups map[uint64]string
}

// NewTable returns an empty table.
func NewTable() *Table { return &Table{} }

// Add adds an event of the proc stream.
func (t *Table) Add(ev *Event) {
	e := *ev
	t.events = append(t.events, e)
	t.built = false
}

// Extend adds an event of the proc stream to a table in use, as a
// follower reads it: an event no earlier than every one before it (the
// usual case: the stream in time order) is applied at once, so that
// extending by n events costs O(n), not a rebuild each; an earlier one
// marks the table for a rebuild (Add). Like Add, it must not run
// concurrently with the readers.
func (t *Table) Extend(ev *Event) {
	if !t.built || len(t.events) > 0 && eventLess(ev, &t.events[len(t.events)-1]) {
		t.Add(ev)
		return
	}
	t.events = append(t.events, *ev)
	e := &t.events[len(t.events)-1]
	n := len(t.lives)
	t.apply(e)
	for _, p := range t.lives[n:] {
		// A new life of pid: kept in Begin order among the pid's lives.
		lives := t.byPID[p.Pid]
		slices.SortStableFunc(lives, func(a, b *Process) int { return cmp.Compare(a.Begin, b.Begin) })
	}
	for _, p := range t.lives[n:] {
		t.finish(p)
	}
	switch e.Kind {
	case "snapshot":
		// It may have completed a life the kernel reported first.
		if p := t.current(e.Pid, e.StartNs); p != nil {
			t.finish(p)
		}
	case "cgroup":
		// The recorder names a cgroup once it finds it, after the
		// processes that entered it may have been reported (rare: a scan).
		for _, p := range t.lives {
			if p.CgroupID == e.CgroupID && p.CgroupPath == "" {
				t.finish(p)
			}
		}
	}
}

// eventLess orders the events of the stream: by ktime, then by kind
// (kindOrder).
func eventLess(a, b *Event) bool {
	if a.KtimeNs != b.KtimeNs {
		return a.KtimeNs < b.KtimeNs
	}
	return kindOrder(a.Kind) < kindOrder(b.Kind)
}

// finish sets what a life takes from the whole table: its cgroup's path
// (from the cgroup records) and its container id.
func (t *Table) finish(p *Process) {
	if p.CgroupPath == "" {
		p.CgroupPath = t.cgroups[p.CgroupID]
	}
	p.ContainerID = ParseCgroupPath(p.CgroupPath).ID
}

// Len returns the number of process lives.
func (t *Table) Len() int {
	t.build()
	return len(t.lives)
}

// Processes returns every process life, by start of life (Begin), then pid.
func (t *Table) Processes() []*Process {
	t.build()
	out := slices.Clone(t.lives)
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Begin != out[j].Begin {
			return out[i].Begin < out[j].Begin
		}
		return out[i].Pid < out[j].Pid
	})
	return out
}

// CgroupPath returns the path of a cgroup id, "" if the recording does not
// say.
func (t *Table) CgroupPath(id uint64) string {
	t.build()
	return t.cgroups[id]
}

// Resolve returns process pid as it was at ktime: the last life of pid
// that began at or before ktime (an event that comes just after the exit
// still resolves to the process that exited). It returns nil if the table
// knows no such life, and for pid 0: the tracers' word for a process they
// could not know (a tcp event's unknown owner), never the idle task's.
func (t *Table) Resolve(pid uint32, ktime uint64) *Process {
	if pid == 0 {
		return nil
	}
	t.build()
	lives := t.byPID[pid]
	i := sort.Search(len(lives), func(i int) bool { return lives[i].Begin > ktime })
	if i == 0 {
		return nil
	}
	return lives[i-1]
}

// kindOrder orders events of one ktime: cgroup paths and snapshots first,
// then the kernel's in the order of a process's life.
func kindOrder(k string) int {
	switch k {
	case "cgroup":
		return 0
	case "snapshot":
		return 1
	case "fork":
		return 2
	case "exec":
		return 3
	case "rename":
		return 4
	}
	return 5
}

func (t *Table) build() {
	if t.built {
		return
	}
	t.built = true
	t.byPID = map[uint32][]*Process{}
	t.lives = nil
	t.cgroups = map[uint64]string{}
	evs := t.events
	sort.SliceStable(evs, func(i, j int) bool { return eventLess(&evs[i], &evs[j]) })
	for i := range evs {
		t.apply(&evs[i])
	}
	for pid, lives := range t.byPID {
		sort.SliceStable(lives, func(i, j int) bool { return lives[i].Begin < lives[j].Begin })
		t.byPID[pid] = lives
	}
	for _, p := range t.lives {
		t.finish(p)
	}
}

// current returns the life of pid that is still open, if it is the same
// process as one that started at start (0: unknown), else nil.
func (t *Table) current(pid uint32, start uint64) *Process {
	lives := t.byPID[pid]
	if len(lives) == 0 {
		return nil
	}
	p := lives[len(lives)-1]
	if p.End != 0 || !sameProcess(p.StartNs, start) {
		return nil
	}
	return p
}

func sameProcess(a, b uint64) bool {
	if a == 0 || b == 0 {
		return true
	}
	if a > b {
		a, b = b, a
	}
	return b-a <= sameStart
}

// closeStale ends the open life of pid that the kernel's event (of a
// process that started at start) shows to be over: a pid reused while
// the exit was not recorded.
func (t *Table) closeStale(pid uint32, at uint64) {
	if lives := t.byPID[pid]; len(lives) > 0 {
		if p := lives[len(lives)-1]; p.End == 0 {
			p.End = max(at, p.Begin)
		}
	}
}

func (t *Table) add(p *Process) {
	t.byPID[p.Pid] = append(t.byPID[p.Pid], p)
	t.lives = append(t.lives, p)
}

func (t *Table) apply(e *Event) {
	switch e.Kind {
	case "cgroup":
		if e.CgroupPath != "" {
			t.cgroups[e.CgroupID] = e.CgroupPath
		}
	case "snapshot":
		if e.CgroupPath != "" && e.CgroupID != 0 {
			t.cgroups[e.CgroupID] = e.CgroupPath
		}
		if p := t.current(e.Pid, e.StartNs); p != nil {
			// The kernel reported it already (a fork or exec while the
			// snapshot ran): the snapshot adds what the kernel lacks.
			if p.Exe == "" || p.Origin == "fork" {
				p.Exe, p.Args, p.ArgsTruncated = e.Exe, e.Args, e.ArgsTruncated
			}
			if p.CgroupPath == "" {
				p.CgroupPath = e.CgroupPath
			}
			return
		}
		t.closeStale(e.Pid, e.StartNs)
		t.add(&Process{Pid: e.Pid, Ppid: e.Ppid, UID: e.UID, Comm: e.Command, Exe: e.Exe, Args: e.Args, ArgsTruncated: e.ArgsTruncated,
			CgroupID: e.CgroupID, CgroupPath: e.CgroupPath, StartNs: e.StartNs, Begin: min(e.StartNs, e.KtimeNs), Origin: "snapshot"})
	case "fork":
		t.closeStale(e.Pid, e.StartNs)
		p := &Process{Pid: e.Pid, Ppid: e.Ppid, UID: e.UID, Comm: e.Command, CgroupID: e.CgroupID,
			StartNs: e.StartNs, Begin: min(e.StartNs, e.KtimeNs), Origin: "fork"}
		if e.StartNs == 0 {
			p.Begin = e.KtimeNs
		}
		if parent := t.Resolve(e.Ppid, e.KtimeNs); parent != nil && parent.End == 0 {
			p.Exe, p.Args, p.ArgsTruncated = parent.Exe, parent.Args, parent.ArgsTruncated
		}
		t.add(p)
	case "exec":
		if p := t.current(e.Pid, e.StartNs); p != nil {
			p.End = e.KtimeNs
		} else {
			t.closeStale(e.Pid, e.KtimeNs)
		}
		t.add(&Process{Pid: e.Pid, Ppid: e.Ppid, UID: e.UID, Comm: e.Command, Exe: e.Exe, Args: e.Args, ArgsTruncated: e.ArgsTruncated,
			CgroupID: e.CgroupID, StartNs: e.StartNs, Begin: e.KtimeNs, Origin: "exec"})
	case "rename":
		// A new life from the rename on, with the new comm: an event
		// resolves to the name the process had at its time.
		p := t.current(e.Pid, e.StartNs)
		if p != nil && p.Comm == e.Command {
			return
		}
		n := &Process{Pid: e.Pid, Ppid: e.Ppid, UID: e.UID, CgroupID: e.CgroupID, StartNs: e.StartNs}
		if p != nil {
			*n = *p
			p.End = e.KtimeNs
		} else {
			t.closeStale(e.Pid, e.KtimeNs)
		}
		n.Comm, n.Begin, n.End, n.Origin = e.Command, e.KtimeNs, 0, "rename"
		if e.CgroupID != 0 && e.CgroupID != n.CgroupID {
			n.CgroupID, n.CgroupPath = e.CgroupID, ""
		}
		t.add(n)
	case "exit":
		p := t.current(e.Pid, e.StartNs)
		if p == nil {
			// Known only by its exit (started before the recording, and not
			// in the snapshot), or its pid was reused unseen.
			t.closeStale(e.Pid, e.StartNs)
			p = &Process{Pid: e.Pid, Ppid: e.Ppid, UID: e.UID, Comm: e.Command, CgroupID: e.CgroupID,
				StartNs: e.StartNs, Begin: min(e.StartNs, e.KtimeNs), Origin: "exit"}
			if e.StartNs == 0 {
				p.Begin = e.KtimeNs
			}
			t.add(p)
		}
		p.End, p.Exited, p.ExitCode = e.KtimeNs, true, e.ExitCode
		if p.Comm == "" {
			p.Comm = e.Command
		}
	}
}
