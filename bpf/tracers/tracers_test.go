package tracers_test

import (
	"encoding/json"
	"testing"

	"github.com/ebpfrec/ebpfrec/bpf/tracers"
)

type fakeEvent struct {
	KtimeNs uint64 `json:"ktime_ns" parquet:"ktime_ns" doc:"time"`
	Pid     uint32 `json:"pid" parquet:"pid" doc:"pid"`
	Name    string `json:"name" parquet:"name"`
	Skip    int    `json:"-"`
	hidden  int
}

func (e *fakeEvent) Tracer() string     { return "fake" }
func (e *fakeEvent) KernelTime() uint64 { return e.KtimeNs }
func (e *fakeEvent) PID() uint32        { return e.Pid }
func (e *fakeEvent) Comm() string       { return "" }
func (e *fakeEvent) AppendText(dst []byte) []byte {
	return tracers.AppendStr(dst, "name", e.Name)
}

func TestFieldsAndValues(t *testing.T) {
	ev := &fakeEvent{KtimeNs: 1_500_000_000, Pid: 3, Name: "a b", hidden: 1}
	f := tracers.Fields(ev)
	if len(f) != 3 || f[0] != (tracers.Field{Name: "ktime_ns", Type: "uint64", Doc: "time"}) || f[2].Name != "name" {
		t.Fatalf("%+v", f)
	}
	v := tracers.FieldValues(ev)
	if len(v) != 3 || v["pid"] != uint32(3) || v["name"] != "a b" {
		t.Fatalf("%v", v)
	}
	if got := string(tracers.AppendLine(nil, ev)); got != `1.500000000 - 3 fake: name="a b"` {
		t.Fatalf("%q", got)
	}
	if tracers.Fields(nil) != nil || tracers.FieldValues((*fakeEvent)(nil)) != nil {
		t.Fatal("nil events")
	}
}

func TestAppendHelpers(t *testing.T) {
	var b []byte
	b = tracers.AppendStr(b, "s", "plain")
	b = tracers.AppendStr(b, "e", "")
	b = tracers.AppendStr(b, "q", "has\"quote")
	b = tracers.AppendInt(b, "i", -5)
	b = tracers.AppendUint(b, "u", 7)
	b = tracers.AppendHex(b, "h", 255)
	if got := string(b); got != `s=plain e="" q="has\"quote" i=-5 u=7 h=0xff` {
		t.Fatalf("%q", got)
	}
}

func TestStreamKindJSON(t *testing.T) {
	b, err := json.Marshal(tracers.Stream{Name: "x", Kind: tracers.Perfbuf, Event: &fakeEvent{}})
	if err != nil {
		t.Fatal(err)
	}
	if got := string(b); got != `{"name":"x","map":"","kind":"perf","drop_counter":"","emitted_counter":"","event_type":""}` {
		t.Fatalf("%s", got)
	}
	if tracers.Ringbuf.String() != "ringbuf" || tracers.StreamKind(9).String() != "StreamKind(9)" {
		t.Fatal("kind names")
	}
}

func TestErrnoName(t *testing.T) {
	for ret, want := range map[int64]string{
		-2: "ENOENT", -13: "EACCES", -11: "EAGAIN", -512: "ERESTARTSYS", -516: "ERESTART_RESTARTBLOCK",
		-4000: "errno_4000", -4095: "errno_4095", -4096: "", 0: "", 3: "", -1 << 40: "",
	} {
		if got := tracers.ErrnoName(ret); got != want {
			t.Errorf("ErrnoName(%d) = %q, want %q", ret, got, want)
		}
	}
	var b []byte
	b = tracers.AppendRet(b, "ret", -2)
	b = tracers.AppendRet(b, "ret", 3)
	b = tracers.AppendRet(b, "ret", -1<<40)
	if got := string(b); got != "ret=-2 (ENOENT) ret=3 ret=-1099511627776" {
		t.Fatalf("%q", got)
	}
}

func TestAppendDuration(t *testing.T) {
	for ns, want := range map[uint64]string{
		0: "0ns", 999: "999ns", 1000: "1µs", 1234: "1.23µs", 12345: "12.3µs", 123456: "123µs",
		1_200_000: "1.2ms", 1_234_567: "1.23ms", 999_999_999: "1s", 1_500_000_000: "1.5s",
		90e9: "90s", 1234e9: "20m34s", 3 * 3600e9: "3h0m0s",
	} {
		if got := string(tracers.AppendDuration(nil, "latency", ns)); got != "latency="+want {
			t.Errorf("%d ns: %q, want latency=%s", ns, got, want)
		}
	}
}

func TestAppendList(t *testing.T) {
	got := string(tracers.AppendList(nil, "args", []string{"sh", "-c", "echo 'hi' there", "", "a=b,c:d/e.f_g+h@i%j", "$HOME", "x\x1by"}, true))
	want := `args=[sh -c 'echo '\''hi'\'' there' '' a=b,c:d/e.f_g+h@i%j '$HOME' 'x` + "\x1b" + `y' ...]`
	if got != want {
		t.Fatalf("got  %q\nwant %q", got, want)
	}
	if got := string(tracers.AppendList([]byte("x=1"), "args", nil, false)); got != "x=1 args=[]" {
		t.Fatalf("%q", got)
	}
}
