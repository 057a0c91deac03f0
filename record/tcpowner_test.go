package record

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	tcprec "github.com/ebpfrec/ebpfrec/bpf/tracers/tcp"
	"github.com/ebpfrec/ebpfrec/internal/kerneltest"
	"github.com/ebpfrec/ebpfrec/store"
)

// envServe makes the test binary a TCP server (see TestMain): it listens on
// 127.0.0.1, writes its address to the file named by the variable, serves
// envServeN connections (reading each to its end) and exits.
const (
	envServe  = "EBPFREC_TEST_TCP_SERVE"
	envServeN = "EBPFREC_TEST_TCP_SERVE_N"
)

func serveChild(addrFile string) {
	n, _ := strconv.Atoi(os.Getenv(envServeN))
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err == nil {
		err = os.WriteFile(addrFile+".tmp", []byte(ln.Addr().String()), 0o644)
	}
	if err == nil {
		err = os.Rename(addrFile+".tmp", addrFile)
	}
	for i := 0; err == nil && i < n; i++ {
		var c net.Conn
		if c, err = ln.Accept(); err == nil {
			io.Copy(io.Discard, c)
			c.Close()
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(0)
}

// TestRecordTCPListenerBeforeRecording: a server process listens before
// the recording starts; the recorded command connects to it. The recorder
// loads the tcp tracer through its own collection path, which must still
// seed the tracer with the listeners that exist (issue 14): the server
// side's transitions, which run in softirq while the command's task is
// current, are the server's, and are recorded because --pid selects it.
func TestRecordTCPListenerBeforeRecording(t *testing.T) {
	kerneltest.Require(t)
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("bash is needed for /dev/tcp")
	}
	const nTCP = 3
	addrFile := filepath.Join(t.TempDir(), "addr")
	srv := exec.Command(os.Args[0])
	srv.Env = append(os.Environ(), envServe+"="+addrFile, envServeN+"="+strconv.Itoa(nTCP))
	srv.Stderr = os.Stderr
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer srv.Process.Kill()
	var addr netip.AddrPort
	for deadline := time.Now().Add(30 * time.Second); ; {
		if b, err := os.ReadFile(addrFile); err == nil {
			addr = netip.MustParseAddrPort(string(b))
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the server did not listen")
		}
		time.Sleep(10 * time.Millisecond)
	}
	script := fmt.Sprintf(`for i in $(seq 1 %d); do exec 3<>/dev/tcp/127.0.0.1/%d; exec 3>&-; done`, nTCP, addr.Port())
	dir := filepath.Join(t.TempDir(), "rec")
	rec, err := New(Options{Dir: dir, Command: []string{"bash", "-c", script}, PIDs: []uint32{uint32(srv.Process.Pid)},
		CommandStdout: io.Discard, CommandStderr: io.Discard, Store: store.WriterOptions{FlushInterval: 50 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	if err := rec.AddBuiltin(tcprec.Name); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// Each accepted socket's LISTEN->SYN_RECV happens within the command's
	// connect (loopback), so before the recording stops with the command.
	if _, err := rec.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if err := srv.Wait(); err != nil {
		t.Errorf("server: %v", err)
	}
	// Connections accepted: each accepted socket's LISTEN->SYN_RECV, or
	// its SYN_RECV->ESTABLISHED where the kernel missed the first (it runs
	// no tracing program on a CPU where one runs already, and both run in
	// softirq; missing both is not expected).
	accepted := 0
	last := map[uint64]*tcprec.Event{}
	for _, ev := range decodeAll(t, dir)["tcp"] {
		e := ev.(*tcprec.Event)
		if e.Sport != addr.Port() {
			continue
		}
		t.Logf("%s->%s pid %d %q", e.OldState, e.NewState, e.Pid, e.Command)
		if e.Pid != uint32(srv.Process.Pid) {
			t.Errorf("server side %s->%s attributed to %d %q, want the server %d", e.OldState, e.NewState, e.Pid, e.Command, srv.Process.Pid)
		}
		prev := last[e.Socket]
		if e.Old == tcprec.Listen && e.New == tcprec.SynRecv ||
			e.Old == tcprec.SynRecv && e.New == tcprec.Established && (prev == nil || prev.New != tcprec.SynRecv) {
			accepted++
		}
		last[e.Socket] = e
	}
	if accepted != nTCP {
		t.Errorf("%d connections accepted by the server, want %d", accepted, nTCP)
	}
}
