package main

import (
	"context"
	"encoding/json"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ebpfrec/ebpfrec/bpf/tracers/proc"
	"github.com/ebpfrec/ebpfrec/internal/cmdtest"
	"github.com/ebpfrec/ebpfrec/internal/kerneltest"
	"github.com/ebpfrec/ebpfrec/replay/replaytest"
	"github.com/ebpfrec/ebpfrec/store"
)

// TestReplayNamesProcesses records syscalls of a shell that runs /bin/true
// twice: replay's text names the process of every syscalls line (their
// events carry no comm), its JSON adds the process's fields, and summary's
// top processes have names.
func TestReplayNamesProcesses(t *testing.T) {
	kerneltest.Require(t)
	out := filepath.Join(t.TempDir(), "rec")
	stdout, stderr, code := runCmd(t, "record", "-q", "--tracer", "syscalls", "-o", out, "--", "/bin/sh", "-c", "/bin/true; /bin/true")
	if code != 0 {
		t.Fatalf("record: exit %d\n%s%s", code, stdout, stderr)
	}
	text, stderr, code := runReplay(t, "--stream", "syscalls", out)
	if code != 0 || stderr != "" {
		t.Fatalf("replay: exit %d: %s", code, stderr)
	}
	comms := map[string]int{}
	for _, l := range strings.Split(strings.TrimSpace(text), "\n") {
		// TIME [CPU] PID COMM syscalls: ...
		f := strings.Fields(l)
		if len(f) < 5 || f[4] != "syscalls:" {
			t.Fatalf("line %q", l)
		}
		comms[f[3]]++
	}
	if len(comms) != 2 || comms["sh"] == 0 || comms["true"] == 0 {
		t.Errorf("syscalls lines by comm %v: want sh and true, and nothing unnamed", comms)
	}

	js, stderr, code := runReplay(t, "--format", "json", "--stream", "syscalls", out)
	if code != 0 || stderr != "" {
		t.Fatalf("replay --format json: exit %d: %s", code, stderr)
	}
	n := 0
	for _, l := range strings.Split(strings.TrimSpace(js), "\n") {
		var ev map[string]any
		if err := json.Unmarshal([]byte(l), &ev); err != nil {
			t.Fatalf("%q: %v", l, err)
		}
		if ev["type"] != "event" {
			continue
		}
		n++
		comm, _ := ev["comm"].(string)
		exe, _ := ev["exe"].(string)
		_, hasCgroup := ev["cgroup_id"].(string) // a 64-bit id: a string
		_, hasContainer := ev["container_id"].(string)
		ppid, _ := ev["ppid"].(float64)
		if !hasCgroup || !hasContainer || ppid == 0 || (comm != "sh" && comm != "true") ||
			(comm == "true" && exe != "/bin/true") {
			t.Errorf("line without its process: %s", l)
		}
	}
	if n != comms["sh"]+comms["true"] {
		t.Errorf("%d JSON events, %d text lines", n, comms["sh"]+comms["true"])
	}

	sum, stderr, code := runCmd(t, "summary", out)
	if code != 0 {
		t.Fatalf("summary: exit %d: %s", code, stderr)
	}
	_, top, ok := strings.Cut(sum, "top processes by events\n")
	if !ok {
		t.Fatalf("no top processes in\n%s", sum)
	}
	top, _, _ = strings.Cut(top, "\n\n")
	rows := 0
	for _, l := range strings.Split(strings.TrimSpace(top), "\n") {
		if f := strings.Fields(l); len(f) != 3 || f[0] == "PID" {
			continue
		} else if f[1] != "sh" && f[1] != "true" {
			t.Errorf("top process %q: want sh or true", l)
		}
		rows++
	}
	if rows < 2 {
		t.Errorf("top processes:\n%s", top)
	}
}

// TestReplayFollowExtendsProcesses: a follower resolves the processes that
// the proc stream describes after it started (proctable.LoadSeq, then
// proc.Table.Extend as their batches arrive), not only those of the
// recording as it was at its start.
func TestReplayFollowExtendsProcesses(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "rec")
	meta := replaytest.Meta()
	meta.Streams = append(meta.Streams, store.StreamInfo{Name: proc.StreamProc, Tracer: proc.Name, Map: proc.MapEvents, Kind: store.KindRingbuf, EventType: proc.EventType})
	w, err := store.Create(dir, meta, store.WriterOptions{FlushInterval: time.Hour, Sync: store.SyncNever})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	at := func(kt uint64) time.Time { return time.Unix(0, meta.MonoToWall+int64(kt)) }
	kt := uint64(replaytest.Mono)
	// pid, its cgroup and the exec event that resolves to it.
	appendProcess := func(pid uint32, cgroup uint64) {
		t.Helper()
		kt += 1000
		snap := proc.Event{KtimeNs: kt, Pid: pid, Ppid: 1, Command: "sleeper", Exe: "/bin/sleeper", CgroupID: cgroup}
		ex := replaytest.ExecRaw(kt+10, pid, 1, 0, "sleeper", "/bin/sleeper")
		for _, b := range []*store.Batch{
			{Stream: proc.StreamProc, Kind: store.KindRingbuf, Events: []store.Event{{Raw: proc.AppendRecord(nil, proc.KindSnapshot, &snap), Timestamp: at(kt), CPU: -1}}},
			{Stream: "exec", Kind: store.KindRingbuf, Events: []store.Event{{Raw: ex, Timestamp: at(kt + 10), CPU: -1}}},
		} {
			if err := w.Append(b); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	appendProcess(100, 4100)

	app := newApp()
	var out cmdtest.LockedBuffer
	app.Writer, app.ErrWriter = &out, io.Discard
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- app.RunContext(ctx, []string{"ebpfrec", "replay", "--follow", "--format", "json", "--stream", "exec", dir})
	}()
	waitUntil(t, func() bool { return strings.Contains(out.String(), `"cgroup_id":"4100"`) }, func() string { return out.String() })
	// Processes the follower's table did not hold when it started.
	appendProcess(200, 4200)
	appendProcess(300, 4300)
	waitUntil(t, func() bool { return strings.Count(out.String(), "\n") >= 3 }, func() string { return out.String() })
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("replay --follow: %v", err)
	}
	for _, want := range []string{`"pid":200,`, `"cgroup_id":"4200"`, `"pid":300,`, `"cgroup_id":"4300"`, `"exe":"/bin/sleeper"`} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("no %s in\n%s", want, out.String())
		}
	}
}

// TestReplayFollowBeforeRecording: a follower started before the recorder
// builds its process table from every proc batch it reads, so it says no
// "process table incomplete" (it did, naming the missing folder, although
// every event it printed was resolved), and its events name their process.
func TestReplayFollowBeforeRecording(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "rec")
	app := newApp()
	var out, errOut cmdtest.LockedBuffer
	app.Writer, app.ErrWriter = &out, &errOut
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- app.RunContext(ctx, []string{"ebpfrec", "replay", "--follow", "--format", "json", "--stream", "exec", dir})
	}()

	meta := replaytest.Meta()
	meta.Streams = append(meta.Streams, store.StreamInfo{Name: proc.StreamProc, Tracer: proc.Name, Map: proc.MapEvents, Kind: store.KindRingbuf, EventType: proc.EventType})
	w, err := store.Create(dir, meta, store.WriterOptions{FlushInterval: time.Hour, Sync: store.SyncNever})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	at := func(kt uint64) time.Time { return time.Unix(0, meta.MonoToWall+int64(kt)) }
	kt := uint64(replaytest.Mono) + 1000
	snap := proc.Event{KtimeNs: kt, Pid: 100, Ppid: 1, Command: "sleeper", Exe: "/bin/sleeper", CgroupID: 4100}
	for _, b := range []*store.Batch{
		{Stream: proc.StreamProc, Kind: store.KindRingbuf, Events: []store.Event{{Raw: proc.AppendRecord(nil, proc.KindSnapshot, &snap), Timestamp: at(kt), CPU: -1}}},
		{Stream: "exec", Kind: store.KindRingbuf, Events: []store.Event{{Raw: replaytest.ExecRaw(kt+10, 100, 1, 0, "sleeper", "/bin/sleeper"), Timestamp: at(kt + 10), CPU: -1}}},
	} {
		if err := w.Append(b); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, func() bool { return strings.Contains(out.String(), `"cgroup_id":"4100"`) }, func() string { return out.String() + errOut.String() })
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("replay --follow: %v", err)
	}
	if e := errOut.String(); e != "" {
		t.Errorf("follower started before the recording said\n%s", e)
	}
}
