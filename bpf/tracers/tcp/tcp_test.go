package tcp_test

import (
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/ebpfrec/ebpfrec/bpf/tracers"
	"github.com/ebpfrec/ebpfrec/bpf/tracers/internal/tracertest"
	"github.com/ebpfrec/ebpfrec/bpf/tracers/tcp"
)

func TestMain(m *testing.M) {
	tracertest.Main(m, map[string]tracertest.Workload{
		// connects N times to each address, closing each connection
		"dial": func(args []string) int {
			n, _ := strconv.Atoi(args[0])
			for _, a := range args[1:] {
				for range n {
					c, err := net.Dial("tcp", a)
					if err != nil {
						fmt.Fprintln(os.Stderr, err)
						return 1
					}
					c.Close()
				}
			}
			return 0
		},
	})
}

type transition struct{ old, new uint8 }

// The life of a client socket that connects, closes first, and sees the
// server close.
var clientLife = []transition{
	{tcp.Close, tcp.SynSent},
	{tcp.SynSent, tcp.Established},
	{tcp.Established, tcp.FinWait1},
	{tcp.FinWait1, tcp.FinWait2},
	{tcp.FinWait2, tcp.Close},
}

// TestTCPKnownWorkload: a child connects K times to an IPv4 and an IPv6
// loopback listener of the test, which is not selected. Exactly the
// child's sockets' transitions are reported, attributed to the child even
// where they run in softirq context, and none of the server side's.
func TestTCPKnownWorkload(t *testing.T) {
	f := tracertest.NewFilter(t)
	tr := tracertest.Load(t, tcp.Name, tracers.Options{Filter: f})
	rd := tracertest.NewReader(t, tr, tcp.StreamTCP)

	const k = 4
	var wg sync.WaitGroup
	var listeners []net.Listener
	for _, addr := range []string{"127.0.0.1:0", "[::1]:0"} {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		listeners = append(listeners, ln)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range k {
				s, err := ln.Accept()
				if err != nil {
					t.Error(err)
					return
				}
				io.Copy(io.Discard, s) // until the client's FIN
				s.Close()
			}
		}()
	}
	args := []string{strconv.Itoa(k)}
	for _, ln := range listeners {
		args = append(args, ln.Addr().String())
	}
	child := tracertest.Start(t, "dial", args...)
	if err := f.AllowPID(child.PID); err != nil {
		t.Fatal(err)
	}
	if code := child.Run(t); code != 0 {
		t.Fatalf("workload exited %d", code)
	}
	wg.Wait()
	for _, ln := range listeners {
		ln.Close()
	}

	// The client's last transitions follow the server's close, in softirq.
	evs := rd.DrainAtLeast(t, 2*k*len(clientLife), 30*time.Second)
	// A socket's life starts with CLOSE->SYN_SENT and ends with ->CLOSE;
	// lives of different sockets interleave (the server's goroutines
	// acknowledge the FINs), and a closed socket's memory may be reused.
	var lives [][]*tcp.Event
	current := map[uint64]int{}
	for _, ev := range evs {
		e := ev.(*tcp.Event)
		t.Log(string(tracers.AppendLine(nil, e)))
		i, ok := current[e.Socket]
		if !ok {
			i = len(lives)
			lives = append(lives, nil)
			current[e.Socket] = i
		}
		lives[i] = append(lives[i], e)
		if e.New == tcp.Close {
			delete(current, e.Socket)
		}
	}
	if len(evs) != 2*k*len(clientLife) || len(lives) != 2*k {
		t.Fatalf("got %d events in %d socket lives, want %d in %d", len(evs), len(lives), 2*k*len(clientLife), 2*k)
	}
	for i, life := range lives {
		want := netip.MustParseAddrPort(listeners[i/k].Addr().String())
		if len(life) != len(clientLife) {
			t.Errorf("connection %d: %d transitions, want %d", i, len(life), len(clientLife))
			continue
		}
		for j, e := range life {
			if (transition{e.Old, e.New}) != clientLife[j] {
				t.Errorf("connection %d transition %d: %s->%s, want %s->%s", i, j, e.OldState, e.NewState,
					tcp.StateName(clientLife[j].old), tcp.StateName(clientLife[j].new))
			}
			if e.Pid != child.PID || e.Command != "tcp.test" {
				t.Errorf("connection %d transition %d: owner %d %q, want %d", i, j, e.Pid, e.Command, child.PID)
			}
			if e.DstAddr() != want || e.Daddr != want.Addr().String() || e.Saddr != want.Addr().String() {
				t.Errorf("connection %d transition %d: %v -> %v, want -> %v", i, j, e.SrcAddr(), e.DstAddr(), want)
			}
			wantFamily := "ipv4"
			if want.Addr().Is6() {
				wantFamily = "ipv6"
			}
			if e.Family != wantFamily {
				t.Errorf("family %s, want %s", e.Family, wantFamily)
			}
			if j > 0 && (e.Sport == 0 || e.Sport != life[1].Sport) {
				t.Errorf("connection %d transition %d: source port %d", i, j, e.Sport)
			}
		}
	}
	tracertest.CheckAccounting(t, tr, rd, len(evs))
}

func TestDecode(t *testing.T) {
	raw := make([]byte, tcp.EventSize)
	put := func(off int, v uint64, size int) {
		for i := 0; i < size; i++ {
			raw[off+i] = byte(v >> (8 * i))
		}
	}
	put(0, 1, 8)
	put(8, 0xffff0000, 8)
	put(16, 77, 4)
	put(20, tcp.AFInet, 2)
	put(22, 5000, 2)
	put(24, 80, 2)
	raw[26], raw[27] = tcp.SynSent, tcp.Established
	copy(raw[28:], []byte{10, 0, 0, 1})
	copy(raw[44:], []byte{192, 168, 1, 2})
	copy(raw[60:], "curl\x00")
	var e tcp.Event
	if err := tcp.Decode(raw, &e); err != nil {
		t.Fatal(err)
	}
	if e.Saddr != "10.0.0.1" || e.Daddr != "192.168.1.2" || e.Sport != 5000 || e.Dport != 80 || e.Pid != 77 ||
		e.OldState != "SYN_SENT" || e.NewState != "ESTABLISHED" || e.Family != "ipv4" || e.Command != "curl" || e.Socket != 0xffff0000 {
		t.Fatalf("%+v", e)
	}
	if got := string(e.AppendText(nil)); got != "src=10.0.0.1:5000 dst=192.168.1.2:80 state=SYN_SENT->ESTABLISHED sk=0xffff0000" {
		t.Fatalf("text %q", got)
	}
	put(20, tcp.AFInet6, 2)
	copy(raw[28:44], netip.MustParseAddr("2001:db8::1").AsSlice())
	copy(raw[44:60], netip.MustParseAddr("::ffff:1.2.3.4").AsSlice())
	if err := tcp.Decode(raw, &e); err != nil {
		t.Fatal(err)
	}
	if e.Saddr != "2001:db8::1" || e.Daddr != "::ffff:1.2.3.4" || e.Family != "ipv6" {
		t.Fatalf("%+v", e)
	}
	put(20, 1, 2)
	if err := tcp.Decode(raw, &e); err == nil {
		t.Fatal("AF_UNIX decoded")
	}
	for n := range tcp.EventSize {
		if err := tcp.Decode(raw[:n], &e); err == nil {
			t.Fatalf("decoded %d bytes", n)
		}
	}
	if tcp.StateName(200) != "STATE_200" || tcp.StateName(0) != "STATE_0" {
		t.Fatal("state names")
	}
}

func FuzzDecodeTCP(f *testing.F) {
	ok := make([]byte, tcp.EventSize)
	ok[20] = tcp.AFInet6
	f.Add(ok)
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, raw []byte) {
		var e tcp.Event
		if err := tcp.Decode(raw, &e); err == nil {
			_ = e.AppendText(nil)
		}
	})
}
