package bpf

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/ebpfrec/ebpfrec/bpf/testdata"
)

// TestFindProcesses starts two processes of gotarget (one through a
// symlink, so with another comm) and a cat, and finds them by PID,
// executable and comm glob.
func TestFindProcesses(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to read other processes' /proc/PID/exe")
	}
	bin := testdata.GoTarget(t, "testdata", runtime.GOARCH, false)
	link := filepath.Join(t.TempDir(), "other-name")
	if err := os.Symlink(bin, link); err != nil {
		t.Fatal(err)
	}
	g1 := startProc(t, bin, "calls", "1")
	g2 := startProc(t, link, "calls", "1")
	cat := startProc(t, "cat")
	cat.line(t, "ready")
	gone := startProc(t, "true")
	gone.finish(t)
	defer func() {
		for _, p := range []*proc{g1, g2} {
			io.WriteString(p.stdin, "x")
			p.finish(t)
		}
		cat.finish(t)
	}()
	pids := func(fis []*FileInfo) string {
		var s []string
		for _, fi := range fis {
			s = append(s, strconv.Itoa(int(fi.PID)))
		}
		return strings.Join(s, " ")
	}
	want := func(ps ...*proc) string {
		var s []string
		for _, p := range ps {
			s = append(s, strconv.Itoa(int(p.pid())))
		}
		return strings.Join(s, " ")
	}
	g12 := want(g1, g2)
	if g1.pid() > g2.pid() {
		g12 = want(g2, g1)
	}
	missing := filepath.Join(t.TempDir(), "missing")
	for _, c := range []struct {
		name string
		sel  ProcessSelector
		want string
		errs []error
	}{
		{"by exe", ProcessSelector{ExePaths: []string{link}}, g12, nil},
		// The comm is the name it was started by: the symlink's for g2.
		{"by comm", ProcessSelector{Comms: []string{"gotarget"}}, want(g1), nil},
		{"by comm glob", ProcessSelector{Comms: []string{"*-na?e"}}, want(g2), nil},
		{"by comms", ProcessSelector{Comms: []string{"gotar*", "other-name"}}, g12, nil},
		{"by pid", ProcessSelector{PIDs: []int32{cat.pid()}}, want(cat), nil},
		{"pid and comm, once", ProcessSelector{PIDs: []int32{g1.pid()}, Comms: []string{"gotarget"}}, want(g1), nil},
		{"vanished pid", ProcessSelector{PIDs: []int32{gone.pid(), cat.pid()}}, want(cat), []error{os.ErrNotExist}},
		{"missing exe", ProcessSelector{ExePaths: []string{missing}}, "", []error{os.ErrNotExist}},
	} {
		got, errs := FindProcesses(c.sel)
		if pids(got) != c.want {
			t.Errorf("%s: found %q, want %q", c.name, pids(got), c.want)
		}
		if len(errs) != len(c.errs) {
			t.Errorf("%s: errors %v, want %v", c.name, errs, c.errs)
			continue
		}
		for i, err := range errs {
			if !errors.Is(err, c.errs[i]) || !strings.Contains(err.Error(), fmt.Sprint(gone.pid())) && !strings.Contains(err.Error(), missing) {
				t.Errorf("%s: %v, want %v naming the PID or file", c.name, err, c.errs[i])
			}
		}
	}
	// What it found is what Instrument takes.
	got, _ := FindProcesses(ProcessSelector{PIDs: []int32{g2.pid()}})
	if len(got) != 1 || got[0].CmdExePath != bin || got[0].Service.Name != "other-name" || got[0].Ino == 0 {
		t.Errorf("FileInfo %+v", *got[0])
	}
}
