package btflayout

import (
	"bytes"
	"encoding/binary"
	"sort"
	"testing"
	"time"
)

// kindsGo is struct kinds decoded by hand, the baseline of BenchmarkDecode.
type kindsGo struct {
	U8         uint8
	S8         int8
	U16        uint16
	S16        int16
	U32        uint32
	S32        int32
	U64        uint64
	S64        int64
	Flag       bool
	Color      uint32
	ColorName  string
	Neg        uint32
	NegName    string
	Unknown    uint32
	UnkName    string
	Name       string
	Full       string
	Truncated  bool
	Arr        []uint32
	Sarr       []int8
	InA        uint16
	InB        int16
	X, Y       uint32
	BfA        uint32
	BfB        int32
	BfC        uint32
	Un         []byte
	Ptr, Seq   uint64
	colorNames map[uint64]string
}

func cstr(b []byte) (string, bool) {
	n := bytes.IndexByte(b, 0)
	if n < 0 {
		return string(b), true
	}
	return string(b[:n]), false
}

func (k *kindsGo) decode(b []byte) {
	le := binary.LittleEndian
	_ = b[119]
	k.U8, k.S8 = b[0], int8(b[1])
	k.U16, k.S16 = le.Uint16(b[2:]), int16(le.Uint16(b[4:]))
	k.U32, k.S32 = le.Uint32(b[8:]), int32(le.Uint32(b[12:]))
	k.U64, k.S64 = le.Uint64(b[16:]), int64(le.Uint64(b[24:]))
	k.Flag = b[32] != 0
	k.Color = le.Uint32(b[36:])
	k.ColorName = k.colorNames[uint64(k.Color)]
	k.Neg = le.Uint32(b[40:])
	k.NegName = k.colorNames[uint64(k.Neg)]
	k.Unknown = le.Uint32(b[44:])
	k.UnkName = k.colorNames[uint64(k.Unknown)]
	k.Name, _ = cstr(b[48:64])
	k.Full, k.Truncated = cstr(b[64:68])
	k.Arr = k.Arr[:0]
	for i := range 3 {
		k.Arr = append(k.Arr, le.Uint32(b[68+4*i:]))
	}
	k.Sarr = append(k.Sarr[:0], int8(b[80]), int8(b[81]))
	k.InA, k.InB = le.Uint16(b[82:]), int16(le.Uint16(b[84:]))
	k.X, k.Y = le.Uint32(b[88:]), le.Uint32(b[92:])
	k.BfA = uint32(b[96] & 7)
	k.BfB = int32(int8(b[96]) >> 3)
	k.BfC = uint32(b[97]) | uint32(b[98])<<8 | uint32(b[99])<<16
	k.Un = b[100:104]
	k.Ptr, k.Seq = le.Uint64(b[104:]), le.Uint64(b[112:])
}

// kindsEvent is struct kinds as fill_kinds writes it (little endian).
func kindsEvent() []byte {
	b := make([]byte, 120)
	le := binary.LittleEndian
	b[0], b[1] = 0xfe, 0xfe
	le.PutUint16(b[2:], 0xfedc)
	le.PutUint32(b[36:], 2)
	le.PutUint32(b[40:], 0xfffffffd)
	le.PutUint32(b[44:], 7)
	copy(b[48:], "hello")
	copy(b[64:], "abcd")
	b[96], b[97], b[98], b[99] = 0b10111101, 0xef, 0xcd, 0xab
	return b
}

// BenchmarkDecode compares decoding struct kinds by its BTF layout with
// the hand-written decoder above, in the same run: rows/s of each, and
// their ratio (goal: at least 0.5), the median of rounds that alternate
// the two so that a busy machine slows both alike.
func BenchmarkDecode(b *testing.B) {
	l, _ := kindsLayout(b)
	ev := kindsEvent()
	var vals []Value
	k := kindsGo{colorNames: l.Fields[9].Names}
	const rounds, per = 9, 20000
	var ratios []float64
	var btfNs, goNs time.Duration
	for b.Loop() {
		for range rounds {
			t0 := time.Now()
			for range per {
				vals, _ = l.Decode(ev, vals)
			}
			t1 := time.Now()
			for range per {
				k.decode(ev)
			}
			t2 := time.Now()
			btfNs += t1.Sub(t0)
			goNs += t2.Sub(t1)
			ratios = append(ratios, float64(t2.Sub(t1))/float64(t1.Sub(t0)))
		}
	}
	sort.Float64s(ratios)
	n := float64(b.N * rounds * per)
	b.ReportMetric(n/btfNs.Seconds(), "btf-rows/s")
	b.ReportMetric(n/goNs.Seconds(), "go-rows/s")
	b.ReportMetric(ratios[len(ratios)/2], "ratio")
}

// TestHandDecoderAgrees keeps the benchmark honest: the baseline decodes
// what the layout decodes.
func TestHandDecoderAgrees(t *testing.T) {
	l, _ := kindsLayout(t)
	ev := kindsEvent()
	vals, err := l.Decode(ev, nil)
	if err != nil {
		t.Fatal(err)
	}
	k := kindsGo{colorNames: l.Fields[9].Names}
	k.decode(ev)
	if k.BfA != uint32(vals[20].Bits) || int64(k.BfB) != vals[21].Int() || k.BfC != uint32(vals[22].Bits) ||
		k.Name != vals[12].Text || k.Full != vals[13].Text || k.Truncated != vals[13].Truncated || k.NegName != vals[10].Text {
		t.Fatalf("hand decoder %+v, layout %+v", k, vals)
	}
}
