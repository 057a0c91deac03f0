package record

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ebpfrec/ebpfrec/bpf/tracers"
	_ "github.com/ebpfrec/ebpfrec/bpf/tracers/all"
	execrec "github.com/ebpfrec/ebpfrec/bpf/tracers/exec"
	exitrec "github.com/ebpfrec/ebpfrec/bpf/tracers/exit"
	openrec "github.com/ebpfrec/ebpfrec/bpf/tracers/open"
	syscallsrec "github.com/ebpfrec/ebpfrec/bpf/tracers/syscalls"
	tcprec "github.com/ebpfrec/ebpfrec/bpf/tracers/tcp"
	"github.com/ebpfrec/ebpfrec/internal/kerneltest"
	"github.com/ebpfrec/ebpfrec/store"
)

// decodeAll reads every batch of the recording in dir and decodes it with
// the tracer named by its stream.
func decodeAll(t *testing.T, dir string) map[string][]tracers.Event {
	t.Helper()
	r, err := store.Open(dir, store.ReaderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	meta := r.Meta()
	decoders := map[string]tracers.Builtin{}
	for _, s := range meta.Streams {
		tr, err := tracers.New(s.Tracer, tracers.Options{})
		if err != nil {
			t.Fatalf("stream %s: %v", s.Name, err)
		}
		decoders[s.Name] = tr
	}
	out := map[string][]tracers.Event{}
	for {
		b, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range b.Events {
			ev, err := decoders[b.Stream].Decode(b.Stream, e.Raw)
			if err != nil {
				t.Fatalf("stream %s batch %d: %v", b.Stream, b.Seq, err)
			}
			out[b.Stream] = append(out[b.Stream], ev)
		}
	}
	return out
}

// A known workload run under Command, recorded by the default tracers and
// syscalls: exactly its execs, opens, TCP connections and exits are
// recorded, every process that exits has its exit_group in the syscalls
// stream, and every stream balances.
func TestRecordCommandWorkload(t *testing.T) {
	kerneltest.Require(t)
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("bash is needed for /dev/tcp")
	}
	work := t.TempDir()
	const nExec, nOpen, nTCP = 5, 4, 3
	for i := 0; i < nExec; i++ {
		copyFile(t, "/bin/true", filepath.Join(work, fmt.Sprintf("ebpfrec-x%d", i)))
	}
	for i := 0; i < nOpen; i++ {
		if err := os.WriteFile(filepath.Join(work, fmt.Sprintf("f%d", i)), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	port := ln.Addr().(*net.TCPAddr).Port
	script := fmt.Sprintf(`
W=%q
for i in $(seq 0 %d); do "$W/ebpfrec-x$i"; done
for i in $(seq 0 %d); do : < "$W/f$i"; done
: < "$W/missing" 2>/dev/null
for i in $(seq 1 %d); do exec 3<>/dev/tcp/127.0.0.1/%d; exec 3>&-; done
(exit 3)
exit 0
`, work, nExec-1, nOpen-1, nTCP, port)

	dir := filepath.Join(t.TempDir(), "rec")
	rec, err := New(Options{Dir: dir, Command: []string{"bash", "-c", script}, CommandStdout: io.Discard, CommandStderr: io.Discard,
		Store: store.WriterOptions{FlushInterval: 50 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"exec", "exit", "open", "tcp", "syscalls"} {
		if err := rec.AddBuiltin(n); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	sum, err := rec.Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if sum.CommandExit != 0 {
		t.Errorf("command exit %d", sum.CommandExit)
	}
	for _, s := range sum.Streams {
		if !s.HasEmitted || !s.Balanced() || s.Lost() != 0 {
			t.Errorf("stream %s: emitted %d (counted: %v), recorded %d, lost %d", s.Name, s.Emitted, s.HasEmitted, s.Recorded, s.Lost())
		}
	}
	t.Logf("summary: %+v", sum.Streams)
	events := decodeAll(t, dir)

	var execs []string
	for _, ev := range events["exec"] {
		e := ev.(*execrec.Event)
		if strings.HasPrefix(e.Filename, work) {
			execs = append(execs, filepath.Base(e.Filename))
		}
	}
	if len(execs) != nExec {
		t.Errorf("execs in the work dir: %v, want %d", execs, nExec)
	}
	for i, n := range execs {
		if want := fmt.Sprintf("ebpfrec-x%d", i); n != want {
			t.Errorf("exec %d: %s, want %s", i, n, want)
		}
	}
	opens := map[string]int32{}
	for _, ev := range events["open"] {
		e := ev.(*openrec.Event)
		if strings.HasPrefix(e.Path, work) {
			if _, dup := opens[e.Path]; dup {
				t.Errorf("open of %s recorded twice", e.Path)
			}
			opens[e.Path] = e.Ret
		}
	}
	if len(opens) != nOpen+1 {
		t.Errorf("opens in the work dir: %v, want %d", opens, nOpen+1)
	}
	for i := 0; i < nOpen; i++ {
		if ret, ok := opens[filepath.Join(work, fmt.Sprintf("f%d", i))]; !ok || ret < 0 {
			t.Errorf("open f%d: ret %d, recorded %v", i, ret, ok)
		}
	}
	if ret := opens[filepath.Join(work, "missing")]; ret != -2 {
		t.Errorf("open of missing file: ret %d, want -2 (ENOENT)", ret)
	}
	connects := 0
	for _, ev := range events["tcp"] {
		e := ev.(*tcprec.Event)
		if e.Dport == uint16(port) && e.NewState == "SYN_SENT" {
			connects++
		}
	}
	if connects != nTCP {
		t.Errorf("TCP connects to the test listener: %d, want %d", connects, nTCP)
	}
	codes := map[uint8]int{}
	exited := map[uint32]bool{}
	for _, ev := range events["exit"] {
		codes[ev.(*exitrec.Event).ExitCode]++
		exited[ev.PID()] = true
	}
	if codes[3] != 1 {
		t.Errorf("exits with code 3: %d, want 1 (exit codes %v)", codes[3], codes)
	}
	// Every process of the workload ends with exit_group(2): the two
	// tracers see the same processes end.
	exitGroups := map[uint32]bool{}
	for _, ev := range events["syscalls"] {
		if e := ev.(*syscallsrec.Event); e.Nr == syscallsrec.NRExitGroup {
			exitGroups[e.Pid] = true
		}
	}
	if len(exited) < nExec+2 || !maps.Equal(exited, exitGroups) {
		t.Errorf("processes that exited %v, with exit_group %v: want the same, at least %d", slices.Sorted(maps.Keys(exited)), slices.Sorted(maps.Keys(exitGroups)), nExec+2)
	}
	rep, err := store.Verify(dir)
	if err != nil || !rep.OK() {
		t.Fatalf("verify: %v %+v", err, rep)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o755); err != nil {
		t.Fatal(err)
	}
}
