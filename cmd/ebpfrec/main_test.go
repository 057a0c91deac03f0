package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestUnknownCommandAndFlagExitUsage(t *testing.T) {
	for _, args := range [][]string{
		{"ebpfrec", "version", "--no-such-flag"},
		{"ebpfrec", "no-such-command"},
	} {
		if code := run(args); code != exitUsage {
			t.Errorf("%v: exit code %d, want %d", args, code, exitUsage)
		}
	}
}

func TestVersion(t *testing.T) {
	app := newApp()
	var out bytes.Buffer
	app.Writer = &out
	if err := app.Run([]string{"ebpfrec", "version"}); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out.String(), "ebpfrec ") {
		t.Fatalf("version output %q", out.String())
	}
}
