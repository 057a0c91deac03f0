package dns_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ebpfrec/ebpfrec/bpf"
	"github.com/ebpfrec/ebpfrec/bpf/tracers"
	"github.com/ebpfrec/ebpfrec/bpf/tracers/dns"
	"github.com/ebpfrec/ebpfrec/bpf/tracers/internal/tracertest"
)

func TestMain(m *testing.M) { tracertest.Main(m, nil) }

// etcDir writes the /etc that the lookups see: a hosts file and an
// nsswitch.conf that reads only it.
func etcDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	files := map[string]string{
		"hosts":         "10.1.2.3 alpha.ebpfrec.test\nfd00::5 beta.ebpfrec.test\n",
		"nsswitch.conf": "hosts: files\n",
	}
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// getent runs `getent ahosts name` with etc bind-mounted on /etc in a
// mount namespace of its own, and returns its pid, output and exit code.
func getent(t *testing.T, etc, name string) (int, string, int) {
	t.Helper()
	cmd := exec.Command("/bin/sh", "-c", `mount --bind "$0" /etc && exec getent ahosts "$1"`, etc, name)
	// Go makes the new namespace's mounts private before the shell runs.
	cmd.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS}
	out, err := cmd.Output()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("getent ahosts %s: %v", name, err)
	}
	return cmd.Process.Pid, string(out), code
}

// waitMapped waits until process pid maps a file whose path ends with
// suffix: right after its exec, only the dynamic loader is mapped.
func waitMapped(t *testing.T, pid int, suffix string) {
	t.Helper()
	for range 1000 {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/maps", pid))
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasSuffix(l, suffix) {
				return
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("process %d does not map %s", pid, suffix)
}

// TestGetent: getent ahosts for two names of the hosts file and one that
// is not there records exactly those three lookups, with their results
// and addresses; once the last process using libc is released, nothing.
func TestGetent(t *testing.T) {
	f := tracertest.NewFilter(t)
	tr := dns.New(tracers.Options{Filter: f, WakeupEvery: 1})
	tracertest.LoadTracer(t, tr)
	r := tracertest.NewReader(t, tr, dns.StreamDNS)

	// A process that maps libc, to instrument it: the probes go on the
	// library file, and the filter chooses whose calls are recorded.
	sleeper := exec.Command("sleep", "1000")
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sleeper.Process.Kill(); sleeper.Wait() })
	waitMapped(t, sleeper.Process.Pid, "/libc.so.6")
	pt := bpf.NewProcessTracer(bpf.Generic, nil, tr)
	t.Cleanup(func() { pt.Close() })
	if err := pt.Instrument(&bpf.Instrumentable{FileInfo: &bpf.FileInfo{PID: int32(sleeper.Process.Pid)}}); err != nil {
		t.Fatalf("Instrument: %v", err)
	}
	tr.AllowComm("getent")

	etc := etcDir(t)
	type lookup struct {
		name   string
		pid    int
		result string
		addrs  []string
	}
	want := []lookup{
		{name: "alpha.ebpfrec.test", result: "ok", addrs: []string{"10.1.2.3"}},
		{name: "beta.ebpfrec.test", result: "ok", addrs: []string{"fd00::5"}},
		{name: "missing.ebpfrec.test", result: "EAI_NONAME"},
	}
	for i := range want {
		pid, out, code := getent(t, etc, want[i].name)
		want[i].pid = pid
		wantCode := 0
		if want[i].addrs == nil {
			wantCode = 2
		}
		if code != wantCode {
			t.Fatalf("getent ahosts %s: exit %d, want %d\n%s", want[i].name, code, wantCode, out)
		}
		for _, a := range want[i].addrs {
			if !strings.Contains(out, a) {
				t.Fatalf("getent ahosts %s: %q lacks %s (is the hosts file used?)", want[i].name, out, a)
			}
		}
	}

	evs := r.DrainAtLeast(t, len(want), 0)
	tracertest.CheckAccounting(t, tr, r, len(evs))
	if len(evs) != len(want) {
		for _, e := range evs {
			t.Logf("%s", tracers.AppendLine(nil, e))
		}
		t.Fatalf("%d events, want %d", len(evs), len(want))
	}
	for i, w := range want {
		e := evs[i].(*dns.Event)
		got := slices.Clone(e.Addrs)
		slices.Sort(got)
		if e.Host != w.name || e.Result != w.result || int(e.Pid) != w.pid || e.Tid == 0 || !slices.Equal(got, w.addrs) || e.Truncated {
			t.Errorf("lookup %d: %s; want host=%s result=%s addrs=%v by pid %d", i, tracers.AppendLine(nil, e), w.name, w.result, w.addrs, w.pid)
		}
		if (e.Ret == 0) != (w.result == "ok") {
			t.Errorf("lookup %d: ret %d for result %s", i, e.Ret, w.result)
		}
	}

	// Released, the last user of libc detaches its probes.
	if err := pt.Release(int32(sleeper.Process.Pid)); err != nil {
		t.Fatal(err)
	}
	getent(t, etc, "alpha.ebpfrec.test")
	if evs := r.Drain(t); len(evs) != 0 {
		t.Errorf("%d events after Release, want none", len(evs))
	}
}

func FuzzDecode(f *testing.F) {
	raw := make([]byte, dns.EventSize)
	raw[32] = 9 // more addresses than the layout holds
	raw[40] = 2
	f.Add(raw)
	f.Add(raw[:12])
	f.Fuzz(func(t *testing.T, b []byte) {
		var ev dns.Event
		if err := dns.Decode(b, &ev); err == nil {
			_ = tracers.AppendLine(nil, &ev)
		}
	})
}
