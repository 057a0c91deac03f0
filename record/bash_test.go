package record

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/ebpfrec/ebpfrec/bpf/tracers/bash"
	"github.com/ebpfrec/ebpfrec/internal/kerneltest"
)

// TestRecordBashCommand records the bash tracer with the Command a bash
// script that types lines into an interactive bash under a
// pseudo-terminal (script(1)): bash is instrumented by the Command's path
// before it runs, when its process is still the gate's shell, which maps
// no bash; the recording holds exactly the typed lines.
func TestRecordBashCommand(t *testing.T) {
	kerneltest.Require(t)
	tmp := t.TempDir()
	script := filepath.Join(tmp, "type.sh")
	text := `printf '%s\n' 'echo hello-1' 'x=2; echo "x is $x"' 'exit' |
  env -i TERM=dumb INPUTRC=/dev/null HOME="$1" PS1='$ ' HISTFILE=/dev/null PATH="$PATH" \
    script -qec 'bash --norc --noprofile -i' /dev/null >/dev/null
`
	if err := os.WriteFile(script, []byte(text), 0o755); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(tmp, "rec")
	rec, err := New(Options{Dir: dir, Command: []string{"bash", script, tmp}, WakeupEvery: 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := rec.AddBuiltin(bash.Name); err != nil {
		t.Fatal(err)
	}
	sum, err := rec.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(sum.Instrumented) != 1 || sum.Instrumented[0].Err != nil {
		t.Fatalf("instrumented %+v; want the Command", sum.Instrumented)
	}
	var got []string
	for _, e := range decodeAll(t, dir)[bash.StreamBash] {
		got = append(got, e.(*bash.Event).Line)
	}
	want := []string{"echo hello-1", `x=2; echo "x is $x"`, "exit"}
	if fmt.Sprintf("%q", got) != fmt.Sprintf("%q", want) {
		t.Errorf("recorded lines %q, want %q", got, want)
	}
}
