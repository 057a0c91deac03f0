package record

import (
	"bytes"
	"os"
	"strconv"
	"strings"
	"testing"
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
