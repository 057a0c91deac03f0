package main

import (
	"encoding/json"
	"maps"
	"testing"

	"github.com/ebpfrec/ebpfrec/bpf/tracers"
	execTracer "github.com/ebpfrec/ebpfrec/bpf/tracers/exec"
	exitTracer "github.com/ebpfrec/ebpfrec/bpf/tracers/exit"
	"github.com/ebpfrec/ebpfrec/bpf/tracers/syscalls"
)

// TestEventMembers: a JSON event line carries the event's own members but
// its "cpu" (a tracers.CPUEvent's, which the line gives), read member by
// member: values holding what looks like a key (`,"cpu":`, quotes, braces
// and brackets in strings, lists) are copied whole, and has names the
// process keys the event has, whatever its values say.
func TestEventMembers(t *testing.T) {
	tricky := `x","cpu":7,"exe":"}]{[\`
	for _, c := range []struct {
		name   string
		ev     tracers.Event
		ownCPU bool
		has    []string
	}{
		{"exec", &execTracer.Event{KtimeNs: 1, Pid: 2, Ppid: 3, Command: tricky, Filename: `"cpu":1`, Args: []string{tricky, "]", "}"}, CPU: 5}, true, []string{"comm", "ppid"}},
		{"exec without cpu", &execTracer.Event{Command: "sh", CPU: tracers.UnknownCPU}, true, []string{"comm", "ppid"}},
		{"syscalls", &syscalls.Event{Pid: 9, Syscall: tricky, Ret: -2, CPU: 0}, true, nil}, // its MarshalJSON adds errno
		{"exit", &exitTracer.Event{Pid: 4, Command: tricky}, false, []string{"comm", "ppid"}},
	} {
		has := checkEventMembers(t, c.name, c.ev, c.ownCPU)
		for i, f := range processFields {
			wantHas := false
			for _, k := range c.has {
				wantHas = wantHas || k == f.key
			}
			if has[i] != wantHas {
				t.Errorf("%s: has %s = %v, want %v", c.name, f.key, has[i], wantHas)
			}
		}
	}
}

// checkEventMembers checks that appendEventMembers gives the members of
// ev's JSON, without its cpu if ownCPU.
func checkEventMembers(t *testing.T, name string, ev tracers.Event, ownCPU bool) (has [len(processFields)]bool) {
	t.Helper()
	j, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	b, has := appendEventMembers([]byte(`{"type":"event"`), j, ev)
	var got, want map[string]any
	if err := json.Unmarshal(append(b, '}'), &got); err != nil {
		t.Fatalf("%s: %v in %s", name, err, b)
	}
	if err := json.Unmarshal(j, &want); err != nil {
		t.Fatal(err)
	}
	want["type"] = "event"
	if ownCPU {
		if _, ok := want["cpu"]; !ok {
			t.Fatalf("%s: the event's JSON has no cpu: %s", name, j)
		}
		delete(want, "cpu")
	}
	if !maps.EqualFunc(got, want, func(a, b any) bool { x, _ := json.Marshal(a); y, _ := json.Marshal(b); return string(x) == string(y) }) {
		t.Errorf("%s: members\n%s\nwant those of\n%s", name, b, j)
	}
	return has
}

// FuzzEventMembers: whatever the text of an event (names come from the
// traced host), its line has its members but its own cpu.
func FuzzEventMembers(f *testing.F) {
	f.Add(`x","cpu":7,"exe":"}]{[\\`, `"cpu":1`, "]", int32(3))
	f.Add("", "", "", int32(-1))
	f.Fuzz(func(t *testing.T, comm, filename, arg string, cpu int32) {
		ev := &execTracer.Event{Command: comm, Filename: filename, Args: []string{arg, comm}, CPU: tracers.CPU(cpu)}
		checkEventMembers(t, "exec", ev, true)
	})
}
