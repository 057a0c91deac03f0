package bpf

import (
	"errors"
	"fmt"
	"os"
	"testing"
)

// fakeTracer implements Tracer by embedding a nil one; only the PID
// methods are called.
type fakeTracer struct {
	Tracer
	allowed, blocked [][2]uint32
	attrs            []*ServiceAttrs
}

func (f *fakeTracer) AllowPID(pid, ns uint32, a *ServiceAttrs) {
	f.allowed = append(f.allowed, [2]uint32{pid, ns})
	f.attrs = append(f.attrs, a)
}

func (f *fakeTracer) BlockPID(pid, ns uint32) { f.blocked = append(f.blocked, [2]uint32{pid, ns}) }

func TestProcessTracerPIDs(t *testing.T) {
	a, b := &fakeTracer{}, &fakeTracer{}
	pt := NewProcessTracer(Generic, nil, a, b)
	if pt.Type != Generic || Go != 0 || Generic != 1 || pt.Type.String() != "generic" {
		t.Errorf("type %v", pt.Type)
	}
	attrs := &ServiceAttrs{Name: "svc"}
	pt.AllowPID(10, 4026531836, attrs)
	pt.BlockPID(10, 4026531836)
	pt.BlockPID(11, 1)
	for i, f := range []*fakeTracer{a, b} {
		if fmt.Sprint(f.allowed) != "[[10 4026531836]]" || f.attrs[0] != attrs {
			t.Errorf("tracer %d allowed %v", i, f.allowed)
		}
		if fmt.Sprint(f.blocked) != "[[10 4026531836] [11 1]]" {
			t.Errorf("tracer %d blocked %v", i, f.blocked)
		}
	}
	(&ProcessTracer{}).BlockPID(1, 1) // no programs: nothing to do
}

func TestProcessTracerInstrumented(t *testing.T) {
	pt := NewProcessTracer(Go, nil)
	var closed []string
	c := func(name string, err error) closerFunc {
		return func() error { closed = append(closed, name); return err }
	}
	pt.AddInstrumented(42, c("a", nil), c("b", nil))
	pt.AddInstrumented(42) // a second process of the same file
	pt.AddInstrumented(7, c("x", errors.New("x failed")))
	if !pt.IsInstrumented(42) || len(pt.Instrumentables) != 2 {
		t.Fatalf("instrumentables %v", pt.Instrumentables)
	}
	if err := pt.UnlinkInstrumented(42); err != nil || len(closed) != 0 {
		t.Errorf("first unlink closed %v (%v)", closed, err)
	}
	if err := pt.UnlinkInstrumented(42); err != nil || fmt.Sprint(closed) != "[b a]" {
		t.Errorf("last unlink closed %v (%v), want [b a]", closed, err)
	}
	if pt.IsInstrumented(42) {
		t.Error("42 still instrumented")
	}
	if err := pt.UnlinkInstrumented(99); err != nil {
		t.Errorf("unknown inode: %v", err)
	}
	if err := pt.Close(); err == nil || fmt.Sprint(closed) != "[b a x]" {
		t.Errorf("Close: %v, closed %v", err, closed)
	}
	var zero ProcessTracer
	zero.AddInstrumented(1)
	if !zero.IsInstrumented(1) {
		t.Error("zero ProcessTracer cannot record")
	}
}

func TestCopyToServiceAttributes(t *testing.T) {
	ie := &Instrumentable{Type: InstrumentableGolang, ChildPids: []uint32{5, 6}, FileInfo: &FileInfo{}}
	ie.CopyToServiceAttributes()
	if ie.FileInfo.Service.Type != InstrumentableGolang || fmt.Sprint(ie.FileInfo.Service.ChildPIDs) != "[5 6]" {
		t.Errorf("service %+v", ie.FileInfo.Service)
	}
	ie.ChildPids[0] = 9
	if ie.FileInfo.Service.ChildPIDs[0] != 5 {
		t.Error("ChildPIDs shares the Instrumentable's slice")
	}
	(&Instrumentable{}).CopyToServiceAttributes() // nil FileInfo
	var nilIE *Instrumentable
	nilIE.CopyToServiceAttributes()
}

// TestInstrumentNilRefused: Instrument(nil) is an error (ErrInvalidName),
// not a nil-pointer panic; it needs no privileges.
func TestInstrumentNilRefused(t *testing.T) {
	pt := NewProcessTracer(Go, nil)
	defer pt.Close()
	var err error
	func() {
		defer func() {
			if p := recover(); p != nil {
				t.Fatalf("Instrument(nil) panicked: %v", p)
			}
		}()
		err = pt.Instrument(nil)
	}()
	if !errors.Is(err, ErrInvalidName) {
		t.Fatalf("Instrument(nil): %v, want ErrInvalidName", err)
	}
}

// TestInstrumentAfterCloseRefused: a closed ProcessTracer instruments
// nothing more (ErrTracerClosed), where Instrument went on to probe the
// executable and keep links that nothing would release.
func TestInstrumentAfterCloseRefused(t *testing.T) {
	pt := NewProcessTracer(Go, nil)
	if err := pt.Close(); err != nil {
		t.Fatal(err)
	}
	fi, err := NewFileInfo(int32(os.Getpid()))
	if err != nil {
		t.Fatal(err)
	}
	if err := pt.Instrument(&Instrumentable{FileInfo: fi}); !errors.Is(err, ErrTracerClosed) {
		t.Errorf("Instrument after Close: %v, want ErrTracerClosed", err)
	}
	if err := pt.InstrumentFile(fi); !errors.Is(err, ErrTracerClosed) {
		t.Errorf("InstrumentFile after Close: %v, want ErrTracerClosed", err)
	}
	if err := pt.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}
