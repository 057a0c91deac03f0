package record

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The gated program must run with the PID reported before release, and not
// before release.
func TestGatedCommandKeepsPID(t *testing.T) {
	// A file, not a buffer: no goroutine copies into it, so it can be
	// looked at while the command is gated.
	out, err := os.CreateTemp(t.TempDir(), "out")
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	g, err := startGated([]string{"sh", "-c", "echo $$; exit 7"}, nil, out, out)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(out.Name()); len(b) != 0 {
		t.Fatalf("command ran before release: %q", b)
	}
	pid := g.pid()
	if err := g.release(); err != nil {
		t.Fatal(err)
	}
	code, err := g.wait()
	if err != nil {
		t.Fatal(err)
	}
	if code != 7 {
		t.Errorf("exit code %d, want 7", code)
	}
	b, err := os.ReadFile(out.Name())
	if err != nil {
		t.Fatal(err)
	}
	got, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	if got != pid {
		t.Errorf("program ran as pid %d, gate reported %d", got, pid)
	}
}

func TestGatedCommandAbortAndMissing(t *testing.T) {
	if _, err := startGated([]string{"/no/such/program"}, nil, nil, nil); err == nil || !strings.Contains(err.Error(), "/no/such/program") {
		t.Fatalf("missing program: err = %v", err)
	}
	if _, err := startGated(nil, nil, nil, nil); err == nil {
		t.Fatal("empty command: no error")
	}
	var out bytes.Buffer
	g, err := startGated([]string{"echo", "ran"}, nil, &out, &out)
	if err != nil {
		t.Fatal(err)
	}
	g.abort()
	if out.Len() != 0 {
		t.Fatalf("aborted command ran: %q", out.String())
	}
}

// TestGatedCommandReady: startGated returns once the gate shell runs, its
// libraries mapped, so that a user-space tracer finds libc in the gated
// process (dns and bash instrument the libraries the process maps; right
// after the exec only the dynamic loader is). The files the gate maps when
// startGated returns are those it maps once it waits on the gate. It failed
// before the gate said it was ready: the maps held /bin/sh and ld.so, and
// libc.so.6 only later.
func TestGatedCommandReady(t *testing.T) {
	mapped := func(pid int) string {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/maps")
		if err != nil {
			t.Fatal(err)
		}
		files := map[string]bool{}
		for _, l := range strings.Split(string(b), "\n") {
			if f := strings.Fields(l); len(f) == 6 && strings.HasPrefix(f[5], "/") {
				files[f[5]] = true
			}
		}
		return fmt.Sprint(files)
	}
	for i := 0; i < 5; i++ {
		g, err := startGated([]string{"true"}, nil, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		at := mapped(g.pid())
		// Waiting on the gate: asleep in read(2).
		for j := 0; ; j++ {
			b, err := os.ReadFile("/proc/" + strconv.Itoa(g.pid()) + "/stat")
			if err != nil {
				t.Fatal(err)
			}
			if _, rest, _ := strings.Cut(string(b), ") "); strings.HasPrefix(rest, "S") {
				break
			}
			if j == 500 {
				t.Fatalf("the gate shell does not wait: %s", b)
			}
			time.Sleep(10 * time.Millisecond)
		}
		if waiting := mapped(g.pid()); at != waiting {
			t.Errorf("run %d: the gate mapped %s when startGated returned, %s once waiting", i, at, waiting)
		}
		if err := g.release(); err != nil {
			t.Fatal(err)
		}
		if code, err := g.wait(); err != nil || code != 0 {
			t.Fatalf("true: exit %d, %v", code, err)
		}
	}
}
