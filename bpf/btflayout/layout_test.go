package btflayout

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/ringbuf"
	"golang.org/x/sys/unix"

	"github.com/ebpfrec/ebpfrec/bpf/btflayout/testdata"
	"github.com/ebpfrec/ebpfrec/internal/kerneltest"
)

// kindsWant is what testdata/kinds.c's fill_kinds writes, field by field,
// as AppendText prints it (seq, the last field, is checked apart).
var kindsWant = []string{
	"u8=254", "s8=-2", "u16=65244", "s16=-300", "u32=4275878552", "s32=-70000",
	"u64=18364758544493064720", "s64=-5000000000", "flag=true",
	"color=KINDS_GREEN(2)", "neg=KINDS_NEG(-3)", "unknown=7",
	`name="hello"`, `full="abcd"...`, "arr=[1 2 4294967295]", "sarr=[-1 127]",
	"in.a=7", "in.b=-7", "x=11", "y=12", "bf_a=5", "bf_b=-9", "bf_c=11259375",
	"un=01020304", "ptr=18446612716735190648",
}

// kindsLayout builds the layout of struct kinds from the test object's BTF.
func kindsLayout(tb testing.TB) (*Layout, *ebpf.CollectionSpec) {
	tb.Helper()
	spec, err := testdata.LoadKinds()
	if err != nil {
		tb.Fatal(err)
	}
	var st *btf.Struct
	if err := spec.Types.TypeByName("kinds", &st); err != nil {
		tb.Fatal(err)
	}
	l, err := New(st, spec.ByteOrder)
	if err != nil {
		tb.Fatal(err)
	}
	return l, spec
}

// text prints every field as name=value.
func text(l *Layout, vals []Value) []string {
	out := make([]string, len(l.Fields))
	for i := range l.Fields {
		out[i] = l.Fields[i].Name + "=" + string(AppendText(nil, &l.Fields[i], &vals[i]))
	}
	return out
}

func checkKinds(t *testing.T, l *Layout, raw []byte, seq uint64) {
	t.Helper()
	vals, err := l.Decode(raw, nil)
	if err != nil {
		t.Fatal(err)
	}
	got := text(l, vals)
	want := append(append([]string(nil), kindsWant...), fmt.Sprintf("seq=%d", seq))
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("decoded:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestKindsFromKernel decodes struct kinds as a BPF program on this kernel
// wrote it, by the layout built from the object's BTF and by the same
// layout marshalled and read back.
func TestKindsFromKernel(t *testing.T) {
	kerneltest.Require(t)
	l, spec := kindsLayout(t)
	if err := spec.Variables["target_tgid"].Set(uint32(os.Getpid())); err != nil {
		t.Fatal(err)
	}
	var objs testdata.KindsObjects
	if err := spec.LoadAndAssign(&objs, nil); err != nil {
		t.Fatal(err)
	}
	defer objs.Close()
	lk, err := link.Tracepoint("syscalls", "sys_enter_getppid", objs.FillKinds, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer lk.Close()
	rd, err := ringbuf.NewReader(objs.KindsRb)
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()

	b, err := l.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	l2, err := Unmarshal(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(l2.Warnings) != 1 || !strings.Contains(l2.Warnings[0], "member un: union") {
		t.Errorf("warnings %q, want one about the union un", l2.Warnings)
	}
	for seq := uint64(0); seq < 3; seq++ {
		unix.Getppid()
		rd.SetDeadline(time.Now().Add(10 * time.Second))
		rec, err := rd.Read()
		if err != nil {
			t.Fatalf("event %d: %v", seq, err)
		}
		checkKinds(t, l, rec.RawSample, seq)
		checkKinds(t, l2, rec.RawSample, seq)
	}
}

// TestKindsFields checks the types of the fields built from the BTF.
func TestKindsFields(t *testing.T) {
	l, _ := kindsLayout(t)
	var got []string
	for _, f := range l.Fields {
		s := fmt.Sprintf("%s:%s@%d+%d", f.Name, f.Kind, f.Offset, f.Size)
		if f.Bits != 0 {
			s += fmt.Sprintf(":%d.%d", f.BitOffset, f.Bits)
		}
		if f.Elem != nil {
			s += fmt.Sprintf("[%d]%s", f.Len, f.Elem.Kind)
		}
		got = append(got, s)
	}
	want := "u8:uint@0+1 s8:int@1+1 u16:uint@2+2 s16:int@4+2 u32:uint@8+4 s32:int@12+4 u64:uint@16+8 s64:int@24+8 " +
		"flag:bool@32+1 color:enum@36+4 neg:enum@40+4 unknown:enum@44+4 name:text@48+16 full:text@64+4 " +
		"arr:list@68+12[3]uint sarr:list@80+2[2]int in.a:uint@82+2 in.b:int@84+2 x:uint@88+4 y:uint@92+4 " +
		"bf_a:uint@96+1:0.3 bf_b:int@96+1:3.5 bf_c:uint@97+3:0.24 un:bytes@100+4 ptr:uint@104+8 seq:uint@112+8"
	if strings.Join(got, " ") != want {
		t.Fatalf("fields:\n%s\nwant:\n%s", strings.Join(got, " "), want)
	}
	if l.Size != 120 {
		t.Errorf("size %d, want 120", l.Size)
	}
}

// TestBigEndian decodes a struct with bitfields in big-endian order.
func TestBigEndian(t *testing.T) {
	u32 := &btf.Int{Name: "u32", Size: 4}
	s32 := &btf.Int{Name: "s32", Size: 4, Encoding: btf.Signed}
	st := &btf.Struct{Name: "be", Size: 8, Members: []btf.Member{
		{Name: "a", Type: u32, Offset: 0, BitfieldSize: 3},
		{Name: "b", Type: s32, Offset: 3, BitfieldSize: 5},
		{Name: "c", Type: u32, Offset: 8, BitfieldSize: 24},
		{Name: "d", Type: s32, Offset: 32},
	}}
	l, err := New(st, binary.BigEndian)
	if err != nil {
		t.Fatal(err)
	}
	// a=5 (101), b=-9 (10111): first byte 101 10111; c=0xabcdef; d=-2.
	raw := []byte{0b10110111, 0xab, 0xcd, 0xef, 0xff, 0xff, 0xff, 0xfe}
	vals, err := l.Decode(raw, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Join(text(l, vals), " "), "a=5 b=-9 c=11259375 d=-2"; got != want {
		t.Fatalf("got %s, want %s", got, want)
	}
	b, err := l.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	l2, err := Unmarshal(b)
	if err != nil {
		t.Fatal(err)
	}
	if l2.Order != binary.BigEndian {
		t.Fatal("byte order lost")
	}
	vals, _ = l2.Decode(raw, vals)
	if got, want := strings.Join(text(l2, vals), " "), "a=5 b=-9 c=11259375 d=-2"; got != want {
		t.Fatalf("after Unmarshal: got %s, want %s", got, want)
	}
}

// TestShortEvent: an event shorter than the struct is an error.
func TestShortEvent(t *testing.T) {
	l, _ := kindsLayout(t)
	if _, err := l.Decode(make([]byte, 119), nil); !errors.Is(err, ErrLayout) || !strings.Contains(err.Error(), "event of 119 bytes, the struct has 120") {
		t.Fatalf("err %v", err)
	}
}

// TestHostileLayouts: damaged layouts give errors naming what is wrong.
func TestHostileLayouts(t *testing.T) {
	l, _ := kindsLayout(t)
	good, err := l.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	flip := func(i int) []byte { b := append([]byte(nil), good...); b[i] ^= 0xff; return b }
	for _, c := range []struct {
		name string
		b    []byte
		want string
	}{
		{"empty", nil, "not a layout"},
		{"magic", flip(0), "not a layout"},
		{"version", flip(4), "layout version"},
		{"order", flip(5), "byte order"},
		{"truncated", good[:len(good)-1], "BTF of"},
		{"name", append(append([]byte(nil), good[:8]...), []byte("kindz")...), "truncated"},
		{"btf magic", flip(8 + len("kinds") + 4), "no BTF header"},
		{"huge", make([]byte, MaxSize+1), "more than"},
	} {
		_, err := Unmarshal(c.b)
		if !errors.Is(err, ErrLayout) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err %v, want one containing %q", c.name, err, c.want)
		}
	}
	// Every single-byte change is an error or a layout; never a panic.
	for i := range good {
		b := flip(i)
		if l, err := Unmarshal(b); err == nil {
			_, _ = l.Decode(make([]byte, l.Size), nil)
		}
	}
}

// FuzzUnmarshal feeds hostile layouts to Unmarshal and decodes an event by
// every layout it accepts.
func FuzzUnmarshal(f *testing.F) {
	l, _ := kindsLayout(f)
	good, err := l.Marshal()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good, make([]byte, 120))
	f.Fuzz(func(t *testing.T, b, ev []byte) {
		l, err := Unmarshal(b)
		if err != nil {
			if !errors.Is(err, ErrLayout) {
				t.Fatalf("error without ErrLayout: %v", err)
			}
			return
		}
		vals, err := l.Decode(ev, nil)
		if err == nil {
			for i := range l.Fields {
				AppendText(nil, &l.Fields[i], &vals[i])
				JSON(&l.Fields[i], &vals[i])
			}
		}
	})
}

// FuzzDecode decodes hostile events by the kinds layout.
func FuzzDecode(f *testing.F) {
	l, _ := kindsLayout(f)
	f.Add(make([]byte, 120))
	f.Fuzz(func(t *testing.T, ev []byte) {
		vals, err := l.Decode(ev, nil)
		if err != nil {
			if len(ev) >= 120 {
				t.Fatal(err)
			}
			return
		}
		for i := range l.Fields {
			AppendText(nil, &l.Fields[i], &vals[i])
		}
	})
}

// FuzzBTF feeds hostile BTF behind a well-formed layout header, so that the
// fuzzer reaches the BTF parser and New rather than the header checks.
func FuzzBTF(f *testing.F) {
	l, _ := kindsLayout(f)
	good, err := l.Marshal()
	if err != nil {
		f.Fatal(err)
	}
	hdr := 4 + 2 + 2 + len("kinds") + 4
	f.Add(good[hdr:], "kinds")
	f.Fuzz(func(t *testing.T, raw []byte, name string) {
		if len(name) > 64 {
			return
		}
		b := append([]byte("EBTL\x01l"), byte(len(name)>>8), byte(len(name)))
		b = append(b, name...)
		b = binary.BigEndian.AppendUint32(b, uint32(len(raw)))
		b = append(b, raw...)
		l, err := Unmarshal(b)
		if err != nil {
			if !errors.Is(err, ErrLayout) {
				t.Fatalf("error without ErrLayout: %v", err)
			}
			return
		}
		vals, err := l.Decode(make([]byte, l.Size), nil)
		if err != nil {
			t.Fatal(err)
		}
		for i := range l.Fields {
			AppendText(nil, &l.Fields[i], &vals[i])
		}
		if _, err := l.Marshal(); err != nil && !errors.Is(err, ErrLayout) {
			t.Fatal(err)
		}
	})
}

// TestDuplicateNames: members of one name (hostile BTF, or flattening)
// become distinct fields.
func TestDuplicateNames(t *testing.T) {
	u8 := &btf.Int{Name: "u8", Size: 1}
	inner := &btf.Struct{Size: 1, Members: []btf.Member{{Name: "a", Type: u8}}}
	st := &btf.Struct{Name: "dup", Size: 3, Members: []btf.Member{
		{Name: "a", Type: u8}, {Name: "", Type: inner, Offset: 8}, {Name: "a", Type: u8, Offset: 16},
	}}
	l, err := New(st, binary.LittleEndian)
	if err != nil {
		t.Fatal(err)
	}
	vals, err := l.Decode([]byte{1, 2, 3}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(text(l, vals), " "); got != "a=1 a_2=2 a_3=3" {
		t.Fatalf("got %s", got)
	}
}
