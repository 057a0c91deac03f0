package replay

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf/btf"

	"github.com/ebpfrec/ebpfrec/bpf/btflayout"
	_ "github.com/ebpfrec/ebpfrec/bpf/tracers/all"
	"github.com/ebpfrec/ebpfrec/bpf/tracers/exec"
	"github.com/ebpfrec/ebpfrec/store"
)

// pairLayout is the marshalled layout of struct pair {u32 n; char name[8]},
// or of a second build's struct pair {u64 n; char name[8]} (v2).
func pairLayout(t *testing.T, v2 bool) []byte {
	t.Helper()
	n := &btf.Int{Name: "unsigned int", Size: 4}
	size := uint32(12)
	if v2 {
		n, size = &btf.Int{Name: "unsigned long", Size: 8}, 16
	}
	char := &btf.Int{Name: "char", Size: 1, Encoding: btf.Signed}
	st := &btf.Struct{Name: "pair", Size: size, Members: []btf.Member{
		{Name: "n", Type: n},
		{Name: "name", Type: &btf.Array{Index: n, Type: char, Nelems: 8}, Offset: btf.Bits(n.Size * 8)},
	}}
	l, err := btflayout.New(st, binary.LittleEndian)
	if err != nil {
		t.Fatal(err)
	}
	b, err := l.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestDecodedByStoredLayout: a stream without a Go decoder decodes by the
// layout it stored, a recording whose layout changed between two builds
// by its own, a built-in stream recorded under an event type this build
// does not decode by its stored layout, and a stream whose stored layout
// is damaged stays raw with an error naming the stream; in recorded and
// in time order.
func TestDecodedByStoredLayout(t *testing.T) {
	v1, v2 := pairLayout(t, false), pairLayout(t, true)
	damaged := append([]byte(nil), v1...)
	damaged[len(damaged)-20] ^= 0xff // inside the BTF
	damaged = damaged[:len(damaged)-3]
	meta := store.Meta{RecordingID: "layouts", Streams: []store.StreamInfo{
		{Name: "v1", Map: "m1", Kind: store.KindRingbuf, Layout: v1, Object: &store.ObjectInfo{Path: "a.o"}},
		{Name: "v2", Map: "m2", Kind: store.KindRingbuf, Layout: v2, Object: &store.ObjectInfo{Path: "b.o"}},
		{Name: "exec", Tracer: exec.Name, Map: exec.MapEvents, Kind: store.KindRingbuf, EventType: "exec.Event/0", Layout: v1},
		{Name: "bad", Map: "m3", Kind: store.KindPerfbuf, Layout: damaged},
	}}
	dir := filepath.Join(t.TempDir(), "rec")
	w, err := store.Create(dir, meta, store.WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ev1 := append(binary.LittleEndian.AppendUint32(nil, 7), "seven\x00\x00\x00"...)
	ev2 := append(binary.LittleEndian.AppendUint64(nil, 1<<40), "fortyfou"...)
	now := time.Now()
	for _, b := range []store.Batch{
		{Stream: "v1", Kind: store.KindRingbuf, Events: []store.Event{{Raw: ev1, Timestamp: now}}},
		{Stream: "v2", Kind: store.KindRingbuf, Events: []store.Event{{Raw: ev2, Timestamp: now.Add(time.Millisecond)}}},
		{Stream: "exec", Kind: store.KindRingbuf, Events: []store.Event{{Raw: ev1, Timestamp: now.Add(2 * time.Millisecond)}}},
		{Stream: "bad", Kind: store.KindPerfbuf, Events: []store.Event{{Raw: ev1, Timestamp: now.Add(3 * time.Millisecond)}}},
	} {
		if err := w.Append(&b); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	want := `v1: n=7 name="seven"
v2: n=1099511627776 name="fortyfou"...
exec: n=7 name="seven"
bad: raw 12 bytes: stream bad: stored layout: btflayout: `
	for _, inOrder := range []bool{false, true} {
		r, err := Open(dir, Options{})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		fn := func(d *Decoded) error {
			s := d.Stream.Name + ":"
			switch {
			case d.Fields != nil:
				for i := range d.Layout.Fields {
					f := &d.Layout.Fields[i]
					s += " " + f.Name + "=" + string(btflayout.AppendText(nil, f, &d.Fields[i]))
				}
			case d.Err != nil && errors.Is(d.Err, btflayout.ErrLayout):
				s += fmt.Sprintf(" raw %d bytes: %v", len(d.Raw), d.Err)
			default:
				s += fmt.Sprintf(" event %v, err %v", d.Event, d.Err)
			}
			got = append(got, s)
			return nil
		}
		if inOrder {
			r.HandleDecodedInOrder(OrderOptions{}, fn)
		} else {
			r.HandleDecoded(fn)
		}
		if _, err := r.Run(context.Background()); err != nil {
			t.Fatal(err)
		}

		g := strings.Join(got, "\n")
		if !strings.HasPrefix(g, want) {
			t.Fatalf("in order %v:\n%s\nwant (a prefix):\n%s", inOrder, g, want)
		}
	}
}

// TestDecoderOf: built-in streams decode by their Go decoder, as in
// recordings made before event types or layouts were stored.
func TestDecoderOf(t *testing.T) {
	for _, si := range []store.StreamInfo{
		{Name: "exec", Tracer: exec.Name, EventType: exec.EventType},
		{Name: "exec", Tracer: exec.Name},
		{Name: "exec", Tracer: exec.Name, EventType: exec.EventType, Layout: []byte("ignored: the Go decoder knows better")},
	} {
		sd := DecoderOf(si)
		if sd.Builtin == nil || sd.Tracer != exec.Name || sd.Layout != nil || sd.Err != nil {
			t.Errorf("%+v: %+v", si, sd)
		}
	}
	sd := DecoderOf(store.StreamInfo{Name: "exec", Tracer: exec.Name, EventType: "exec.Event/0"})
	if sd.Decodes() || sd.Err == nil || !strings.Contains(sd.Err.Error(), "recorded as event type exec.Event/0") {
		t.Errorf("other event type: %+v", sd)
	}
}
