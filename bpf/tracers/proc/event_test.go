package proc

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/ebpfrec/ebpfrec/bpf"
	"github.com/ebpfrec/ebpfrec/bpf/tracers"
)

func TestLayout(t *testing.T) {
	if headSize() != HeadSize || execSize() != ExecSize {
		t.Fatalf("C structs are %d and %d bytes, the decoder expects %d and %d", headSize(), execSize(), HeadSize, ExecSize)
	}
}

// A user-written record decodes to what was written, strings cut at
// MaxUserString.
func TestRecordRoundTrip(t *testing.T) {
	in := Event{KtimeNs: 7, Pid: 10, Tid: 10, Ppid: 1, UID: 1000, CgroupID: 99, StartNs: 5, Command: "a-very-long-command-name",
		Exe: "/usr/bin/x", Args: []string{"x", "-v", ""}, CgroupPath: "/system.slice/x.service"}
	raw := AppendRecord(nil, KindSnapshot, &in)
	var out Event
	if err := Decode(raw, &out); err != nil {
		t.Fatal(err)
	}
	want := in
	want.Kind, want.Command = "snapshot", "a-very-long-com"
	want.CPU = tracers.UnknownCPU // user space writes no CPU
	if !reflect.DeepEqual(out, want) {
		t.Fatalf("decoded %+v, want %+v", out, want)
	}
	long := Event{Args: []string{strings.Repeat("a", MaxUserString+10)}, CgroupPath: "/c"}
	if err := Decode(AppendRecord(nil, KindCgroup, &long), &out); err != nil {
		t.Fatal(err)
	}
	if len(out.Args) != 1 || len(out.Args[0]) != MaxUserString || !out.ArgsTruncated || out.Kind != "cgroup" || out.CgroupPath != "/c" {
		t.Fatalf("long args: %d bytes, truncated %v, %+v", len(out.Args[0]), out.ArgsTruncated, out.Kind)
	}
}

func TestDecodeBad(t *testing.T) {
	var ev Event
	good := AppendRecord(nil, KindSnapshot, &Event{Exe: "/bin/sh", CgroupPath: "/"})
	for _, tc := range []struct {
		name string
		raw  []byte
		want error
	}{
		{"short head", good[:HeadSize-1], bpf.ErrOutOfBounds},
		{"short record", good[:len(good)-1], bpf.ErrOutOfBounds},
		{"short exec", func() []byte { b := make([]byte, HeadSize); b[offKind] = KindExec; return b }(), bpf.ErrOutOfBounds},
		{"bad kind", func() []byte { b := append([]byte(nil), good...); b[offKind] = 9; return b }(), ErrBadKind},
		{"long string", func() []byte {
			b := append([]byte(nil), good[:HeadSize]...)
			return append(b, 0xff, 0xff, 0xff, 0x7f)
		}(), ErrTooLong},
	} {
		err := Decode(tc.raw, &ev)
		if !errors.Is(err, tc.want) || !strings.HasPrefix(err.Error(), "proc ") {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(AppendRecord(nil, KindSnapshot, &Event{Pid: 1, Exe: "/sbin/init", Args: []string{"init"}, CgroupPath: "/init.scope"}))
	f.Add(AppendRecord(nil, KindCgroup, &Event{CgroupID: 1, CgroupPath: "/"}))
	exec := make([]byte, ExecSize)
	exec[offKind] = KindExec
	copy(exec[offArgs:], "ls\x00-l\x00")
	exec[offArgsLen] = 6
	f.Add(exec)
	f.Add(make([]byte, HeadSize))
	f.Fuzz(func(t *testing.T, raw []byte) {
		var ev Event
		if err := Decode(raw, &ev); err != nil {
			return
		}
		_ = ev.AppendText(nil)
		if len(ev.Exe) > MaxUserString || len(ev.CgroupPath) > MaxUserString {
			t.Fatalf("strings longer than their bound: %d, %d", len(ev.Exe), len(ev.CgroupPath))
		}
	})
}

// TestExitText: an exit's line says its exit code or signal as the exit
// tracer's does, from the raw wait status the event holds. It said
// exit_code=768 for sh -c 'exit 3' and exit_code=15 for a SIGTERM before.
func TestExitText(t *testing.T) {
	for status, want := range map[uint32]string{
		0:          " exit_code=0",
		3 << 8:     " exit_code=3",
		255 << 8:   " exit_code=255",
		15:         " signal=15",
		0x80 | 11:  " signal=11 core=dumped",
		1<<8 | 0x7: " signal=7",
	} {
		ev := Event{Kind: "exit", Pid: 5, Ppid: 1, ExitCode: status}
		got := string(ev.AppendText(nil))
		if !strings.HasSuffix(got, want) {
			t.Errorf("status %#x: %q, want it to end with %q", status, got, want)
		}
	}
}
