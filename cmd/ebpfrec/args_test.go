package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ebpfrec/ebpfrec/replay/replaytest"
	"github.com/ebpfrec/ebpfrec/store"
)

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{
		"4096": 4096, "0": 0, "64MiB": 64 << 20, "64mib": 64 << 20, "1G": 1 << 30, "1GiB": 1 << 30,
		"500MB": 500e6, "2k": 2048, "1.5M": 3 << 19, "10B": 10, " 3 KiB ": 3 << 10, "1TB": 1e12,
	} {
		if got, err := parseSize(in); err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "MiB", "12XB", "-1", "1.5B", "1e3", "99999999999TB", "0x10"} {
		if got, err := parseSize(in); err == nil {
			t.Errorf("parseSize(%q) = %d, want an error", in, got)
		}
	}
}

// TestFlagsAfterArguments: flags given after a command's positional
// arguments count as if given before them.
func TestFlagsAfterArguments(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "rec")
	replaytest.Generate(t, dir, 10, store.WriterOptions{})
	out, errOut, code := runCmd(t, "replay", dir, "--format", "json", "--stream", "exec")
	if code != 0 {
		t.Fatalf("replay DIR --format json: exit %d: %s", code, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	for _, l := range lines {
		var v map[string]any
		if err := json.Unmarshal([]byte(l), &v); err != nil || v["stream"] != "exec" {
			t.Fatalf("replay DIR --format json --stream exec printed %q (%v)", l, err)
		}
	}
	out, errOut, code = runCmd(t, "info", dir, "--json")
	var v map[string]any
	if code != 0 || json.Unmarshal([]byte(out), &v) != nil {
		t.Fatalf("info DIR --json: exit %d: %.200s %s", code, out, errOut)
	}
	// What follows -- stays an argument.
	if _, errOut, code := runCmd(t, "info", "--", "--json"); code == 0 || !strings.Contains(errOut, "--json") {
		t.Fatalf("info -- --json: exit %d, %s", code, errOut)
	}
}

// TestBadValuesSayWhatIsWanted: a flag value that does not parse gets an
// error saying what the flag wants.
func TestBadValuesSayWhatIsWanted(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"record", "--duration", "soon"}, "want a duration such as 30s"},
		{[]string{"replay", "--speed", "fast", "x"}, "want a number"},
		{[]string{"record", "--segment-size", "12XB"}, "want a size such as"},
	} {
		_, errOut, code := runCmd(t, c.args...)
		if code != exitUsage || !strings.Contains(errOut, c.want) {
			t.Errorf("%v: exit %d, %q; want it to say %q", c.args, code, errOut, c.want)
		}
	}
}
