package all_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/ebpfrec/ebpfrec/bpf/tracers"
	"github.com/ebpfrec/ebpfrec/bpf/tracers/all"
)

func TestRegistry(t *testing.T) {
	want := []string{"exec", "exit", "open", "syscalls", "tcp"}
	if got := tracers.Names(); !slices.Equal(got, want) {
		t.Fatalf("Names() = %v, want %v", got, want)
	}
	for _, d := range all.Default {
		if !slices.Contains(want, d) {
			t.Errorf("default tracer %s is not registered", d)
		}
	}
	_, err := tracers.New("nope", tracers.Options{})
	if !errors.Is(err, tracers.ErrUnknownTracer) || !strings.Contains(err.Error(), "exec, exit, open, syscalls, tcp") {
		t.Fatalf("unknown tracer error: %v", err)
	}
	ts, err := tracers.All(tracers.Options{})
	if err != nil {
		t.Fatal(err)
	}
	perf := 0
	for _, tr := range ts {
		if tr.Description() == "" || len(tr.AttachPoints()) == 0 || len(tr.Streams()) == 0 {
			t.Errorf("%s: incomplete description", tr.Name())
		}
		if c := tr.Constants(); c["wakeup_every"] != uint32(tracers.DefaultWakeupEvery) {
			t.Errorf("%s: constants %v", tr.Name(), c)
		}
		spec, err := tr.Load()
		if err != nil {
			t.Fatalf("%s: %v", tr.Name(), err)
		}
		progs := tracers.ProgramsByAttachPoint(spec)
		tps := tr.Tracepoints()
		if len(progs) != len(tps) {
			t.Errorf("%s: programs by attach point %v, tracepoints %v", tr.Name(), progs, tps)
		}
		for k := range tps {
			if _, ok := spec.Programs[progs[k]]; !ok {
				t.Errorf("%s: no program for attach point %s", tr.Name(), k)
			}
		}
		for _, s := range tr.Streams() {
			if s.Kind == tracers.Perfbuf {
				perf++
			}
			for _, m := range []string{s.Map, s.DropCounter, s.EmittedCounter} {
				if _, ok := spec.Maps[m]; !ok {
					t.Errorf("%s: stream %s: map %q not in the spec", tr.Name(), s.Name, m)
				}
			}
			for _, m := range []string{"filter_config", "pid_allow", "pid_block", "comm_allow"} {
				if _, ok := spec.Maps[m]; !ok {
					t.Errorf("%s: filter map %s missing", tr.Name(), m)
				}
			}
			fields := tracers.Fields(s.Event)
			if len(fields) < 3 {
				t.Errorf("%s: fields %v", tr.Name(), fields)
			}
			names := map[string]bool{}
			for _, f := range fields {
				if names[f.Name] || f.Name != strings.ToLower(f.Name) || f.Doc == "" {
					t.Errorf("%s: field %+v (duplicate, not snake_case, or undocumented)", tr.Name(), f)
				}
				names[f.Name] = true
			}
			for _, f := range []string{"ktime_ns", "pid"} {
				if !names[f] {
					t.Errorf("%s: no %s field", tr.Name(), f)
				}
			}
			if s.Event.Tracer() != tr.Name() {
				t.Errorf("%s: event says tracer %s", tr.Name(), s.Event.Tracer())
			}
			if _, err := tr.Decode(s.Name, nil); err == nil {
				t.Errorf("%s: empty event decoded", tr.Name())
			}
		}
		if tr.Map(tr.Streams()[0].Map) != nil {
			t.Errorf("%s: map before load", tr.Name())
		}
	}
	if perf == 0 {
		t.Error("no tracer emits through a perf event array")
	}
}
