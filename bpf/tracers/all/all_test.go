package all_test

import (
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/ebpfrec/ebpfrec/bpf/tracers"
	"github.com/ebpfrec/ebpfrec/bpf/tracers/all"
)

func TestRegistry(t *testing.T) {
	want := []string{"bash", "dns", "exec", "exit", "gofunc", "open", "proc", "syscalls", "tcp"}
	if got := tracers.Names(); !slices.Equal(got, want) {
		t.Fatalf("Names() = %v, want %v", got, want)
	}
	for _, d := range all.Default {
		if !slices.Contains(want, d) {
			t.Errorf("default tracer %s is not registered", d)
		}
	}
	_, err := tracers.New("nope", tracers.Options{})
	if !errors.Is(err, tracers.ErrUnknownTracer) || !strings.Contains(err.Error(), "bash, dns, exec, exit, gofunc, open, proc, syscalls, tcp") {
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
		if _, err := tr.Decode("nope", make([]byte, 1024)); err == nil || !strings.Contains(err.Error(), tr.Name()) || !strings.Contains(err.Error(), "nope") {
			t.Errorf("%s: decoding an unknown stream: %v", tr.Name(), err)
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

// FuzzDecodeAll feeds every tracer's Decode, through the registry, with
// arbitrary bytes: errors are fine, panics are not; decoded events render.
func FuzzDecodeAll(f *testing.F) {
	f.Add(uint8(0), make([]byte, 560))
	f.Add(uint8(4), []byte{1, 2, 3})
	ts, err := tracers.All(tracers.Options{})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, which uint8, raw []byte) {
		tr := ts[int(which)%len(ts)]
		ev, err := tr.Decode(tr.Streams()[0].Name, raw)
		if err != nil {
			return
		}
		_ = tracers.AppendLine(nil, ev)
		if _, err := json.Marshal(ev); err != nil {
			t.Fatal(err)
		}
	})
}

// TestJSONRoundTrip: every event type survives JSON (as replay and
// analyze may store and reload it), with its snake_case names.
func TestJSONRoundTrip(t *testing.T) {
	ts, err := tracers.All(tracers.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tr := range ts {
		s := tr.Streams()[0]
		raw := make([]byte, 1024)
		raw[20] = 2 // tcp: AF_INET
		raw[8] = 1  // proc: a fork
		raw[36] = 1 // gofunc: an entry
		ev, err := tr.Decode(s.Name, raw)
		if err != nil {
			t.Fatalf("%s: %v", tr.Name(), err)
		}
		b, err := json.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		back := reflect.New(reflect.TypeOf(ev).Elem()).Interface()
		if err := json.Unmarshal(b, back); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(back, ev) {
			t.Errorf("%s: %s round-trips to %+v", tr.Name(), b, back)
		}
		if !strings.Contains(string(b), `"ktime_ns":`) {
			t.Errorf("%s: %s", tr.Name(), b)
		}
	}
}
