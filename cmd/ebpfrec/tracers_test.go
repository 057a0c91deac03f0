package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

func runTracers(t *testing.T, args ...string) (string, error) {
	t.Helper()
	app := newApp()
	var out bytes.Buffer
	app.Writer = &out
	err := app.Run(append([]string{"ebpfrec", "tracers"}, args...))
	return out.String(), err
}

func TestTracersText(t *testing.T) {
	out, err := runTracers(t)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"exec (default): process executions", "exit (default):", "open (default):", "tcp (default):", "syscalls:",
		"tp_btf/sched_process_exec", "raw_tp/sys_enter", "tracepoint/sock/inet_sock_set_state",
		"stream exit: perf map exit_events", "stream exec: ringbuf map exec_events", "drops in sys_drops",
		"filename", "latency_ns", "supported: ",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

func TestTracersJSON(t *testing.T) {
	out, err := runTracers(t, "--json", "exit", "syscalls")
	if err != nil {
		t.Fatal(err)
	}
	var infos []struct {
		Name        string `json:"name"`
		Supported   bool   `json:"supported"`
		Unsupported string `json:"unsupported_reason"`
		Streams     []struct {
			Kind   string                        `json:"kind"`
			Map    string                        `json:"map"`
			Fields []struct{ Name, Type string } `json:"fields"`
		} `json:"streams"`
	}
	if err := json.Unmarshal([]byte(out), &infos); err != nil {
		t.Fatalf("%v:\n%s", err, out)
	}
	if len(infos) != 2 || infos[0].Name != "exit" || infos[1].Name != "syscalls" {
		t.Fatalf("%+v", infos)
	}
	if s := infos[0].Streams[0]; s.Kind != "perf" || s.Map != "exit_events" || len(s.Fields) == 0 {
		t.Fatalf("%+v", s)
	}
	for _, i := range infos {
		if !i.Supported && i.Unsupported == "" {
			t.Errorf("%s unsupported without a reason", i.Name)
		}
	}
}

func TestTracersUnknown(t *testing.T) {
	code := run([]string{"ebpfrec", "tracers", "nope"})
	if code != exitUsage {
		t.Fatalf("exit code %d, want %d", code, exitUsage)
	}
}
