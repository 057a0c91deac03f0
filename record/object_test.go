package record

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// testObject is a compiled test object of this machine's architecture.
func testObject(t *testing.T) string {
	arch := map[string]string{"amd64": "x86", "arm64": "arm64"}[runtime.GOARCH]
	if arch == "" {
		t.Skipf("no test object for %s", runtime.GOARCH)
	}
	return filepath.Join("..", "bpf", "testdata", "testprog_"+arch+"_bpfel.o")
}

// TestObjectCollection: a user's object file becomes a collection that
// records what the options say, or a clear error naming what is wrong.
func TestObjectCollection(t *testing.T) {
	obj := testObject(t)
	c, err := ObjectCollection(obj, ObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var maps []string
	for _, s := range c.Streams {
		maps = append(maps, s.Map)
		if s.Object == nil || s.Object.Path != obj || len(s.Object.SHA256) != 64 {
			t.Errorf("stream %s: object %+v", s.Map, s.Object)
		}
	}
	if c.Name != strings.TrimSuffix(filepath.Base(obj), ".o") || strings.Join(maps, ",") != "events_perf,events_rb" {
		t.Fatalf("collection %s records %v", c.Name, maps)
	}
	c, err = ObjectCollection(obj, ObjectOptions{Ringbufs: []string{"events_rb"}, Set: []string{"target_tgid=0x10", "wakeup_every=-1"},
		Attach: []string{"tracepoint:syscalls/sys_enter_getppid=rb_getppid"}})
	if err != nil {
		t.Fatal(err)
	}
	var tgid uint32
	if err := c.Spec.Variables["target_tgid"].Get(&tgid); err != nil || tgid != 16 || len(c.Streams) != 1 || len(c.Attach) != 1 {
		t.Fatalf("target_tgid %d (%v), %d streams, %d attachments", tgid, err, len(c.Streams), len(c.Attach))
	}
	for _, bad := range []struct {
		o    ObjectOptions
		want string
	}{
		{ObjectOptions{Ringbufs: []string{"events_perf"}}, `map "events_perf" is a PerfEventArray, not a RingBuf`},
		{ObjectOptions{Perfbufs: []string{"nope"}}, "unknown map"},
		{ObjectOptions{Set: []string{"nope=1"}}, "no global variable"},
		{ObjectOptions{Set: []string{"target_tgid"}}, "want NAME=VALUE"},
		{ObjectOptions{Set: []string{"target_tgid=x"}}, "not an integer"},
		{ObjectOptions{Attach: []string{"tracepoint:x"}}, "attachment"},
	} {
		if _, err := ObjectCollection(obj, bad.o); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%+v: %v, want it to say %q", bad.o, err, bad.want)
		}
	}
	if _, err := ObjectCollection(filepath.Join(t.TempDir(), "missing.o"), ObjectOptions{}); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}

// TestStreamStructs: a user names the struct of a map's events with
// MAP=STRUCT; a struct not in the object's BTF is refused, listing those
// that are.
func TestStreamStructs(t *testing.T) {
	obj := testObject(t)
	c, err := ObjectCollection(obj, ObjectOptions{Ringbufs: []string{"events_rb=test_event"}, Perfbufs: []string{"events_perf"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Streams) != 2 || c.Streams[0].Map != "events_rb" || c.Streams[0].Struct != "test_event" || c.Streams[1].Struct != "" {
		t.Fatalf("streams %+v", c.Streams)
	}
	b, err := StructLayout(c.Spec, "test_event")
	if err != nil || len(b) == 0 {
		t.Fatalf("layout of %d bytes, %v", len(b), err)
	}
	_, err = ObjectCollection(obj, ObjectOptions{Ringbufs: []string{"events_rb=nope"}})
	if !errors.Is(err, ErrUnknownStruct) || !strings.Contains(err.Error(), "struct nope") || !strings.Contains(err.Error(), "test_event") {
		t.Fatalf("unknown struct: %v", err)
	}
}
