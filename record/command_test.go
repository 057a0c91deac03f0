package record

import (
	"bytes"
	"strconv"
	"strings"
	"testing"
)

// The gated program must run with the PID reported before release, and not
// before release.
func TestGatedCommandKeepsPID(t *testing.T) {
	var out bytes.Buffer
	g, err := startGated([]string{"sh", "-c", "echo $$; exit 7"}, nil, &out, &out)
	if err != nil {
		t.Fatal(err)
	}
	if out.Len() != 0 {
		t.Fatalf("command ran before release: %q", out.String())
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
	got, _ := strconv.Atoi(strings.TrimSpace(out.String()))
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
