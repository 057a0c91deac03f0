package record

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ebpfrec/ebpfrec/bpf/exeinfo"
	"github.com/ebpfrec/ebpfrec/bpf/testdata"
	"github.com/ebpfrec/ebpfrec/bpf/tracers/gofunc"
	"github.com/ebpfrec/ebpfrec/bpf/tracers/gofunc/gofunctest"
	"github.com/ebpfrec/ebpfrec/internal/kerneltest"
)

// goServer starts the gofunc test server and returns its port and the
// pipe that stops it (closed at the end of the test).
func goServer(t *testing.T, path string) (*exec.Cmd, int, io.Closer) {
	t.Helper()
	cmd := exec.Command(path)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stdin.Close(); cmd.Wait() })
	return cmd, readPort(t, stdout), stdin
}

func readPort(t *testing.T, r io.Reader) int {
	t.Helper()
	line, err := bufio.NewReader(r).ReadString('\n')
	if err != nil {
		t.Fatalf("reading the server's port: %v", err)
	}
	port, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil {
		t.Fatalf("server's port %q: %v", line, err)
	}
	return port
}

// hello makes n requests to /hello, each on its own connection, and
// checks the answers.
func hello(t *testing.T, port, n int) {
	t.Helper()
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: time.Minute}
	for i := range n {
		resp, err := client.Get(fmt.Sprintf("http://127.0.0.1:%d/hello?n=%d", port, i))
		if err != nil {
			t.Errorf("request %d: %v", i, err)
			return
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if want := fmt.Sprintf("hello %d goid=", i); err != nil || !strings.HasPrefix(string(body), want) {
			t.Errorf("request %d: %q, %v; want %q...", i, body, err, want)
		}
	}
}

// checkGofunc checks that the recording in dir holds exactly n calls of
// main.handleHello by pid, each an entry and an exit.
func checkGofunc(t *testing.T, dir string, pid, n int) {
	t.Helper()
	evs := decodeAll(t, dir)[gofunc.StreamGofunc]
	entries, exits := 0, 0
	for _, e := range evs {
		g := e.(*gofunc.Event)
		if g.Func != "main.handleHello" || g.Pid != uint32(pid) {
			t.Errorf("unexpected event %+v", g)
			continue
		}
		switch g.Kind {
		case "entry":
			entries++
		case "exit":
			exits++
			if !g.EntrySeen {
				t.Errorf("exit without its entry: %+v", g)
			}
		}
	}
	if entries != n || exits != n {
		t.Errorf("recorded %d entries and %d exits, want %d of each", entries, exits, n)
	}
}

// TestRecordGofuncExec records the test server chosen by its executable
// (Options.Exec), beside a stripped Go program without its function table
// chosen by its comm, that cannot be instrumented: the summary lists that process with its error, and the
// recording holds exactly the server's calls.
func TestRecordGofuncExec(t *testing.T) {
	kerneltest.Require(t)
	path := gofunctest.Server(t, "../bpf/tracers/gofunc/testdata")
	srv, port, _ := goServer(t, path)
	stripped := exec.Command(testdata.GoTargetNoFuncTable(t, "../bpf/testdata", runtime.GOARCH), "calls", "1")
	sin, err := stripped.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := stripped.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sin.Close(); stripped.Wait() })

	const n = 12
	dir := filepath.Join(t.TempDir(), "rec")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rec, err := New(Options{Dir: dir, Exec: []string{path}, Funcs: []string{"main.handle*"}, WakeupEvery: 1,
		// Not PIDs: a recording of PIDs would end when they exit.
		Comms:   []string{"gotarget-stripp"}, // its comm: 15 bytes
		Started: func() { hello(t, port, n); cancel() }})
	if err != nil {
		t.Fatal(err)
	}
	if err := rec.AddBuiltin(gofunc.Name); err != nil {
		t.Fatal(err)
	}
	sum, err := rec.Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var ok, failed, file int
	for _, r := range sum.Instrumented {
		switch {
		case r.Err == nil && r.PID == 0 && r.Exe == path: // the file, for processes started later
			file++
		case r.Err == nil && int(r.PID) == srv.Process.Pid:
			ok++
		case int(r.PID) == stripped.Process.Pid && errors.Is(r.Err, exeinfo.ErrNoSymbols):
			failed++
		default:
			t.Errorf("unexpected instrumentation result %+v", r)
		}
	}
	if ok != 1 || failed != 1 || file != 1 {
		t.Errorf("instrumented %+v; want the server, and the stripped program with its error", sum.Instrumented)
	}
	checkGofunc(t, dir, srv.Process.Pid, n)
}

// TestRecordGofuncCommand records the test server as the Command: its
// executable is instrumented before it runs; the recording ends when it
// exits (its stdin closed).
func TestRecordGofuncCommand(t *testing.T) {
	kerneltest.Require(t)
	path := gofunctest.Server(t, "../bpf/tracers/gofunc/testdata")
	pr, pw := io.Pipe()
	inR, inW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer inW.Close()
	defer inR.Close()
	const n = 7
	dir := filepath.Join(t.TempDir(), "rec")
	rec, err := New(Options{Dir: dir, Command: []string{path}, Funcs: []string{"main.handleHello"}, WakeupEvery: 1,
		CommandStdin: inR, CommandStdout: pw,
		Started: func() {
			go func() {
				hello(t, readPort(t, pr), n)
				inW.Close() // the server exits
				io.Copy(io.Discard, pr)
			}()
		}})
	if err != nil {
		t.Fatal(err)
	}
	if err := rec.AddBuiltin(gofunc.Name); err != nil {
		t.Fatal(err)
	}
	sum, err := rec.Run(context.Background())
	pw.Close()
	if err != nil {
		t.Fatal(err)
	}
	if len(sum.Instrumented) != 1 || sum.Instrumented[0].Err != nil {
		t.Fatalf("instrumented %+v; want the command", sum.Instrumented)
	}
	checkGofunc(t, dir, int(sum.Instrumented[0].PID), n)
}

// TestRecordGofuncNeedsTargets: gofunc without functions, or without
// processes to instrument, is refused at once.
func TestRecordGofuncNeedsTargets(t *testing.T) {
	rec, err := New(Options{Dir: filepath.Join(t.TempDir(), "a"), Exec: []string{"/bin/true"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := rec.AddBuiltin(gofunc.Name); err == nil || !strings.Contains(err.Error(), "--func") {
		t.Errorf("gofunc without functions: %v", err)
	}
	rec, err = New(Options{Dir: filepath.Join(t.TempDir(), "b"), Funcs: []string{"main.x"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := rec.AddBuiltin(gofunc.Name); !errors.Is(err, ErrNoTargets) {
		t.Errorf("gofunc without processes: %v; want ErrNoTargets", err)
	}
}

// TestRecordGofuncLaterProcess: a process started after the recording
// began, whose comm --comm chooses, is instrumented when its exec shows in
// the proc stream; its calls from then on are recorded, exactly.
func TestRecordGofuncLaterProcess(t *testing.T) {
	kerneltest.Require(t)
	path := gofunctest.Server(t, "../bpf/tracers/gofunc/testdata")
	const n = 9
	dir := filepath.Join(t.TempDir(), "rec")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	instrumented := make(chan InstrumentResult, 16)
	var srv *exec.Cmd
	rec, err := New(Options{Dir: dir, Comms: []string{"server"}, Funcs: []string{"main.handle*"}, WakeupEvery: 1,
		Instrumented: func(r InstrumentResult) { instrumented <- r },
		Started: func() {
			srv = exec.Command(path)
			go func() {
				defer cancel()
				stdin, err := srv.StdinPipe()
				if err != nil {
					t.Error(err)
					return
				}
				defer stdin.Close()
				stdout, err := srv.StdoutPipe()
				if err != nil {
					t.Error(err)
					return
				}
				if err := srv.Start(); err != nil {
					t.Error(err)
					return
				}
				port := readPort(t, stdout)
			wait:
				for {
					select {
					case r := <-instrumented:
						if int(r.PID) != srv.Process.Pid {
							continue
						}
						if r.Err != nil {
							t.Errorf("instrumenting the server: %v", r.Err)
							return
						}
						break wait
					case <-time.After(time.Minute):
						t.Error("the server started after the recording was never instrumented")
						return
					}
				}
				hello(t, port, n)
			}()
		}})
	if err != nil {
		t.Fatal(err)
	}
	if err := rec.AddBuiltin(gofunc.Name); err != nil {
		t.Fatal(err)
	}
	if _, err := rec.Run(ctx); err != nil {
		t.Fatal(err)
	}
	srv.Wait()
	checkGofunc(t, dir, srv.Process.Pid, n)
}
