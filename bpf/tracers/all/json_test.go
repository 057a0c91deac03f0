package all_test

import (
	"encoding/json"
	"testing"

	"github.com/ebpfrec/ebpfrec/bpf/tracers/open"
	"github.com/ebpfrec/ebpfrec/bpf/tracers/syscalls"
	"github.com/ebpfrec/ebpfrec/bpf/tracers/tcp"
)

// TestJSONReadableValues: the JSON of events with a return value carries
// its errno name (null when it is not an error), and 64-bit identifiers
// that JSON numbers (float64 in most readers) cannot hold exactly are
// strings.
func TestJSONReadableValues(t *testing.T) {
	decode := func(v any) map[string]any {
		t.Helper()
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		return m
	}
	m := decode(&open.Event{Ret: -2, Path: "/nope", Pid: 3})
	if m["errno"] != "ENOENT" || m["ret"] != float64(-2) || m["path"] != "/nope" || m["pid"] != float64(3) {
		t.Fatalf("open: %v", m)
	}
	if m := decode(&open.Event{Ret: 4}); m["errno"] != nil || len(m) != len(decode(&open.Event{Ret: -1})) {
		t.Fatalf("open, fd 4: %v", m)
	}
	if m := decode(&syscalls.Event{Ret: -11, Syscall: "read"}); m["errno"] != "EAGAIN" || m["syscall"] != "read" {
		t.Fatalf("syscalls: %v", m)
	}
	if m := decode(&syscalls.Event{Ret: 140156416618496}); m["errno"] != nil || m["ret"] != float64(140156416618496) {
		t.Fatalf("syscalls, an address: %v", m)
	}
	const sk = 0xffff8a01_2345_6789 // a kernel address: above 2^53
	if m := decode(&tcp.Event{Socket: sk}); m["socket"] != "18446614336224192393" {
		t.Fatalf("tcp: socket %#v", m["socket"])
	}
}
