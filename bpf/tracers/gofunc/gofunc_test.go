package gofunc_test

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ebpfrec/ebpfrec/bpf"
	"github.com/ebpfrec/ebpfrec/bpf/exeinfo"
	"github.com/ebpfrec/ebpfrec/bpf/testdata"
	"github.com/ebpfrec/ebpfrec/bpf/tracers"
	"github.com/ebpfrec/ebpfrec/bpf/tracers/gofunc"
	"github.com/ebpfrec/ebpfrec/bpf/tracers/gofunc/gofunctest"
	"github.com/ebpfrec/ebpfrec/bpf/tracers/internal/tracertest"
)

func TestMain(m *testing.M) { tracertest.Main(m, nil) }

// Server returns the path of the test server (gofunctest.Server).
func Server(tb testing.TB) string { return gofunctest.Server(tb, "testdata") }

// startServer starts the server at path and returns it and its port; it
// is stopped at the end of the test.
func startServer(t *testing.T, path string) (*exec.Cmd, int) {
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
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close()
		cmd.Wait()
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("reading the server's port: %v", err)
	}
	port, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil {
		t.Fatalf("server's port %q: %v", line, err)
	}
	return cmd, port
}

// TestHTTPServer instruments the test server's handlers (main.handle*),
// makes a known number of requests, each on its own connection (so its
// own goroutine), and checks that exactly those calls were recorded: one
// entry and one exit per request, in order, on the goroutine the handler
// reported, with latency = exit time - entry time; add, which handleSum
// calls, is not matched and not recorded.
func TestHTTPServer(t *testing.T) {
	f := tracertest.NewFilter(t)
	tr := gofunc.New(tracers.Options{Filter: f, WakeupEvery: 1})
	tr.SetFuncs([]string{"main.handle*"})
	tracertest.LoadTracer(t, tr)
	r := tracertest.NewReader(t, tr, gofunc.StreamGofunc)

	srv, port := startServer(t, Server(t))
	pt := bpf.NewProcessTracer(bpf.Go, nil, tr)
	pt.GoFields = tr.GoFields()
	t.Cleanup(func() { pt.Close() })
	ie := &bpf.Instrumentable{FileInfo: &bpf.FileInfo{PID: int32(srv.Process.Pid)}}
	if err := pt.Instrument(ie); err != nil {
		t.Fatalf("Instrument: %v", err)
	}
	if n := len(ie.Offsets.Funcs); n != 2 {
		t.Fatalf("Instrument found %d functions, want handleHello and handleSum: %v", n, ie.Offsets.Funcs)
	}

	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: time.Minute}
	const requests = 20
	type call struct{ fn, goid string }
	var want []call
	for i := range requests {
		var url, wantBody, fn string
		if i%2 == 0 {
			url = fmt.Sprintf("http://127.0.0.1:%d/hello?n=%d", port, i)
			wantBody, fn = fmt.Sprintf("hello %d goid=", i), "main.handleHello"
		} else {
			url = fmt.Sprintf("http://127.0.0.1:%d/sum?a=%d&b=%d", port, i, 3*i)
			wantBody, fn = fmt.Sprintf("sum %d+%d=%d goid=", i, 3*i, 4*i), "main.handleSum"
		}
		resp, err := client.Get(url)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK || !strings.HasPrefix(string(body), wantBody) {
			t.Fatalf("request %d: status %d, body %q, error %v; want %q...", i, resp.StatusCode, body, err, wantBody)
		}
		want = append(want, call{fn, strings.TrimPrefix(string(body), wantBody)})
	}

	evs := r.DrainAtLeast(t, 2*requests, 30*time.Second)
	tracertest.CheckAccounting(t, tr, r, len(evs))
	if len(evs) != 2*requests {
		for _, e := range evs {
			t.Logf("%s", tracers.AppendLine(nil, e))
		}
		t.Fatalf("%d events, want %d (an entry and an exit per request)", len(evs), 2*requests)
	}
	var ge []*gofunc.Event
	for _, e := range evs {
		ge = append(ge, e.(*gofunc.Event))
	}
	sort.SliceStable(ge, func(i, j int) bool { return ge[i].KtimeNs < ge[j].KtimeNs })
	for i, w := range want {
		in, out := ge[2*i], ge[2*i+1]
		if in.Kind != "entry" || out.Kind != "exit" {
			t.Fatalf("request %d: events %s, %s; want an entry then an exit", i, in.Kind, out.Kind)
		}
		if in.Func != w.fn || out.Func != w.fn || in.FuncID != out.FuncID {
			t.Errorf("request %d: functions %s (%d), %s (%d); want %s", i, in.Func, in.FuncID, out.Func, out.FuncID, w.fn)
		}
		if g := strconv.FormatUint(in.Goid, 10); g != w.goid || out.Goid != in.Goid {
			t.Errorf("request %d: goroutines %d, %d; the handler ran on %s", i, in.Goid, out.Goid, w.goid)
		}
		if in.Pid != uint32(srv.Process.Pid) || out.Pid != in.Pid {
			t.Errorf("request %d: pids %d, %d; want %d", i, in.Pid, out.Pid, srv.Process.Pid)
		}
		if in.Tid == 0 || out.Tid == 0 {
			t.Errorf("request %d: tids %d, %d", i, in.Tid, out.Tid)
		}
		if !out.EntrySeen || out.LatencyNs != out.KtimeNs-in.KtimeNs || in.LatencyNs != 0 {
			t.Errorf("request %d: exit latency %d (entry seen %v), want exit - entry = %d; entry latency %d",
				i, out.LatencyNs, out.EntrySeen, out.KtimeNs-in.KtimeNs, in.LatencyNs)
		}
	}

	// Released, the server's calls are no longer recorded; it still answers.
	if err := pt.Release(int32(srv.Process.Pid)); err != nil {
		t.Fatal(err)
	}
	resp, err := client.Get(fmt.Sprintf("http://127.0.0.1:%d/hello?n=x", port))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if evs := r.Drain(t); len(evs) != 0 {
		t.Errorf("%d events after Release, want none", len(evs))
	}
}

// TestNotInstrumentable: a Go binary with neither symbols nor a Go
// function table, and a file that is not ELF, give their errors in the
// Instrumentable.
func TestNotInstrumentable(t *testing.T) {
	f := tracertest.NewFilter(t)
	tr := gofunc.New(tracers.Options{Filter: f})
	tr.SetFuncs([]string{"main.handle*"})
	tracertest.LoadTracer(t, tr)
	pt := bpf.NewProcessTracer(bpf.Go, nil, tr)
	pt.GoFields = tr.GoFields()
	t.Cleanup(func() { pt.Close() })

	// A shell script (not ELF): /proc/PID/exe is the interpreter, so
	// check the file directly.
	script := filepath.Join(t.TempDir(), "script")
	if err := os.WriteFile(script, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	ie := &bpf.Instrumentable{FileInfo: &bpf.FileInfo{PID: 1, CmdExePath: script, Ino: 1}}
	if err := pt.Instrument(ie); err == nil || ie.InstrumentationError == nil || !strings.Contains(err.Error(), script) {
		t.Errorf("Instrument of a script: %v; want an error naming it", err)
	}
	// A stripped Go binary (-ldflags='-s -w') whose Go function table
	// cannot be found either: no function has a name.
	stripped := exec.Command(testdata.GoTargetNoFuncTable(t, "../../testdata", runtime.GOARCH), "calls", "1")
	sin, err := stripped.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := stripped.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sin.Close(); stripped.Wait() })
	ie = &bpf.Instrumentable{FileInfo: &bpf.FileInfo{PID: int32(stripped.Process.Pid)}}
	err = pt.Instrument(ie)
	if !errors.Is(err, exeinfo.ErrNoSymbols) || !strings.Contains(err.Error(), "no Go function table") || ie.InstrumentationError != err {
		t.Errorf("Instrument of a stripped Go binary without its function table: %v; want exeinfo.ErrNoSymbols saying so", err)
	}
	// The server, with a glob that matches none of its functions.
	other := gofunc.New(tracers.Options{Filter: f})
	other.SetFuncs([]string{"main.nosuch*"})
	tracertest.LoadTracer(t, other)
	pt2 := bpf.NewProcessTracer(bpf.Go, nil, other)
	pt2.GoFields = other.GoFields()
	t.Cleanup(func() { pt2.Close() })
	srv, _ := startServer(t, Server(t))
	ie = &bpf.Instrumentable{FileInfo: &bpf.FileInfo{PID: int32(srv.Process.Pid)}}
	if err := pt2.Instrument(ie); !errors.Is(err, exeinfo.ErrNoSymbol) || !strings.Contains(err.Error(), "main.nosuch*") {
		t.Errorf("Instrument with a glob matching nothing: %v; want exeinfo.ErrNoSymbol naming the glob", err)
	}
}

func FuzzDecode(f *testing.F) {
	raw := make([]byte, gofunc.EventSize)
	raw[36] = gofunc.KindExit
	copy(raw[48:], "main.handle")
	f.Add(raw)
	f.Add(raw[:10])
	f.Fuzz(func(t *testing.T, b []byte) {
		var ev gofunc.Event
		if err := gofunc.Decode(b, &ev); err == nil {
			_ = tracers.AppendLine(nil, &ev)
		}
	})
}
