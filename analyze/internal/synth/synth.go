// Package synth makes recordings for the tests and benchmarks of analyze and
// of the export, query and summary commands: it encodes events exactly as
// the built-in tracers' BPF programs lay them out (see each tracer's
// event.go) and writes them with store.Writer, like the recorder does.
package synth

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"strconv"
	"time"

	"github.com/ebpfrec/ebpfrec/bpf/tracers"
	"github.com/ebpfrec/ebpfrec/bpf/tracers/exec"
	"github.com/ebpfrec/ebpfrec/bpf/tracers/exit"
	"github.com/ebpfrec/ebpfrec/bpf/tracers/open"
	"github.com/ebpfrec/ebpfrec/bpf/tracers/syscalls"
	"github.com/ebpfrec/ebpfrec/bpf/tracers/tcp"
	"github.com/ebpfrec/ebpfrec/store"
)

var le = binary.LittleEndian

func putStr(b []byte, s string) { copy(b, s) }

// Exec encodes a struct exec_event.
func Exec(ev *exec.Event) []byte {
	b := make([]byte, exec.EventSize)
	le.PutUint64(b[0:], ev.KtimeNs)
	le.PutUint32(b[8:], ev.Pid)
	le.PutUint32(b[12:], ev.Ppid)
	le.PutUint32(b[16:], ev.UID)
	le.PutUint32(b[20:], ev.OldPid)
	putStr(b[24:40], ev.Command)
	putStr(b[40:295], ev.Filename)
	if ev.FilenameTruncated {
		le.PutUint32(b[296:], 1)
	}
	var args []byte
	for _, a := range ev.Args {
		args = append(append(args, a...), 0)
	}
	le.PutUint32(b[300:], uint32(len(args)))
	copy(b[304:560], args)
	le.PutUint32(b[560:], uint32(ev.CPU))
	return b
}

// Exit encodes a struct exit_event (Status carries code, signal, core).
func Exit(ev *exit.Event) []byte {
	b := make([]byte, exit.EventSize)
	le.PutUint64(b[0:], ev.KtimeNs)
	le.PutUint64(b[8:], ev.LifetimeNs)
	le.PutUint32(b[16:], ev.Pid)
	le.PutUint32(b[20:], ev.Ppid)
	le.PutUint32(b[24:], ev.Tid)
	le.PutUint32(b[28:], ev.Status)
	putStr(b[32:47], ev.Command)
	return b
}

// Open encodes a struct open_event with syscall number nr.
func Open(ev *open.Event, nr uint32) []byte {
	b := make([]byte, open.EventSize)
	le.PutUint64(b[0:], ev.KtimeNs)
	le.PutUint64(b[8:], ev.LatencyNs)
	le.PutUint64(b[16:], ev.Flags)
	le.PutUint32(b[24:], ev.Pid)
	le.PutUint32(b[28:], ev.Tid)
	le.PutUint32(b[32:], uint32(ev.Ret))
	le.PutUint32(b[36:], uint32(ev.Dfd))
	le.PutUint32(b[40:], ev.Mode)
	le.PutUint32(b[44:], nr)
	putStr(b[48:63], ev.Command)
	putStr(b[64:319], ev.Path)
	le.PutUint32(b[320:], uint32(ev.CPU))
	return b
}

// TCP encodes a struct tcp_event from addresses and ports.
func TCP(ktime, sk uint64, pid uint32, comm string, src, dst netip.AddrPort, oldState, newState uint8) []byte {
	b := make([]byte, tcp.EventSize)
	le.PutUint64(b[0:], ktime)
	le.PutUint64(b[8:], sk)
	le.PutUint32(b[16:], pid)
	fam := uint16(tcp.AFInet)
	if src.Addr().Is6() {
		fam = tcp.AFInet6
	}
	le.PutUint16(b[20:], fam)
	le.PutUint16(b[22:], src.Port())
	le.PutUint16(b[24:], dst.Port())
	b[26], b[27] = oldState, newState
	s, d := src.Addr().AsSlice(), dst.Addr().AsSlice()
	copy(b[28:44], s)
	copy(b[44:60], d)
	putStr(b[60:75], comm)
	return b
}

// Syscall encodes a struct sys_event.
func Syscall(ktime, latency uint64, ret int64, pid, nr uint32) []byte {
	b := make([]byte, syscalls.EventSize)
	le.PutUint64(b[0:], ktime)
	le.PutUint64(b[8:], latency)
	le.PutUint64(b[16:], uint64(ret))
	le.PutUint32(b[24:], pid)
	le.PutUint32(b[28:], nr)
	return b
}

// Start is the wall time of ktime Boot in the synthetic recordings.
var Start = time.Date(2026, 11, 25, 8, 0, 0, 123456789, time.UTC)

// Boot is the kernel time (ns since boot) of the first event.
const Boot = 1_000_000_000_000

// Meta returns the metadata of a synthetic recording with the given streams.
func Meta(host string, streams ...store.StreamInfo) store.Meta {
	return store.Meta{
		RecordingID: "synthetic-" + host, Hostname: host, KernelRelease: "6.1.0-synthetic",
		BootID: "0b0e1d2c-0000-4000-8000-000000000001", MonoToWall: Start.UnixNano() - Boot,
		ToolVersion: "test", CommandLine: []string{"ebpfrec", "record", "--tracers", "all"},
		Started: Start, Streams: streams,
	}
}

// Builtin returns the stream info of the built-in tracer's (first)
// stream as the recorder declares it, from the tracer's Streams.
func Builtin(name string) store.StreamInfo {
	t, err := tracers.New(name, tracers.Options{})
	if err != nil || len(t.Streams()) == 0 {
		panic(fmt.Sprintf("synth: tracer %s: %v", name, err))
	}
	st := t.Streams()[0]
	kind := store.KindRingbuf
	if st.Kind == tracers.Perfbuf {
		kind = store.KindPerfbuf
	}
	return store.StreamInfo{Name: st.Name, Tracer: name, Map: st.Map, Kind: kind, EventType: st.EventType}
}

// Unknown is a stream without a known decoder.
var Unknown = store.StreamInfo{Name: "custom/events", Map: "events", Kind: store.KindRingbuf, EventType: "struct event"}

// Want is what a Mixed recording is known to contain.
type Want struct {
	Execs       map[string]int // by comm
	Exits       int
	Signaled    int              // exits by signal
	Opens       map[string]int32 // path -> ret
	OpenCount   int
	Peers       map[string]int // "daddr:dport" -> state changes
	TCP         int
	Syscalls    int
	Raw         int
	Events      int
	LossRing    uint64 // ring buffer drops of the exec stream
	PerfLost    uint64 // perf samples lost (exit stream)
	First, Last time.Time
}

// Mixed writes a recording into dir with every built-in tracer and an
// unknown stream: rounds rounds of a small workload (a few execs, exits,
// opens, TCP connections and syscalls each). It returns what it holds.
func Mixed(dir string, rounds int) (*Want, error) {
	streams := []store.StreamInfo{Builtin(exec.Name), Builtin(exit.Name), Builtin(open.Name), Builtin(tcp.Name), Builtin(syscalls.Name), Unknown}
	w, err := store.Create(dir, Meta("web-1", streams...), store.WriterOptions{Sync: store.SyncNever})
	if err != nil {
		return nil, err
	}
	want := &Want{Execs: map[string]int{}, Opens: map[string]int32{}, Peers: map[string]int{}}
	kt := uint64(Boot)
	read := func() time.Time { return Start.Add(time.Duration(kt - Boot)) }
	names := []string{"bash", "curl", "make", "curl"}
	paths := []struct {
		p   string
		ret int32
	}{{"/etc/passwd", 3}, {"/etc/hosts", 4}, {"/nonexistent", -2}, {"/root/secret", -13}}
	peers := []netip.AddrPort{netip.MustParseAddrPort("10.0.0.1:443"), netip.MustParseAddrPort("[2001:db8::1]:8080")}
	local4 := netip.MustParseAddrPort("192.168.1.10:40000")
	local6 := netip.MustParseAddrPort("[2001:db8::10]:40001")
	var ring, perfLost uint64
	for r := range rounds {
		pid := uint32(1000 + r)
		// exec
		var evs []store.Event
		for i, n := range names {
			kt += 1000
			ev := exec.Event{KtimeNs: kt, Pid: pid*10 + uint32(i), Ppid: pid, UID: 1000, OldPid: pid*10 + uint32(i), Command: n, Filename: "/usr/bin/" + n, Args: []string{n, "-v", fmt.Sprint(r)}}
			evs = append(evs, store.Event{Raw: Exec(&ev), Timestamp: read(), CPU: -1})
			want.Execs[n]++
		}
		if r%3 == 2 {
			ring++
		}
		if err := w.Append(&store.Batch{Stream: exec.StreamExec, Kind: store.KindRingbuf, Events: evs, Loss: store.Loss{RingbufDropped: ring}}); err != nil {
			return nil, err
		}
		// exit (perf, per CPU)
		evs = nil
		for i, n := range names {
			kt += 1000
			status := uint32(i) << 8
			if i == 3 {
				status = 9 // SIGKILL
				want.Signaled++
			}
			ev := exit.Event{KtimeNs: kt, Pid: pid*10 + uint32(i), Ppid: pid, Tid: pid*10 + uint32(i), Command: n, Status: status, LifetimeNs: 5000}
			e := store.Event{Raw: Exit(&ev), Timestamp: read(), CPU: i % 2}
			if r == 1 && i == 0 {
				e.Lost = 7
				perfLost += 7
			}
			evs = append(evs, e)
			want.Exits++
		}
		if err := w.Append(&store.Batch{Stream: exit.StreamExit, Kind: store.KindPerfbuf, Events: evs, Loss: store.Loss{KernelLost: perfLost}}); err != nil {
			return nil, err
		}
		// open
		evs = nil
		for _, p := range paths {
			kt += 1000
			ev := open.Event{KtimeNs: kt, LatencyNs: 1500, Pid: pid, Tid: pid, Command: "cat", Path: p.p, Dfd: open.AtFDCWD, Flags: 0o2000000, Ret: p.ret}
			evs = append(evs, store.Event{Raw: Open(&ev, open.NROpenat), Timestamp: read(), CPU: -1})
			want.Opens[p.p] = p.ret
			want.OpenCount++
		}
		if err := w.Append(&store.Batch{Stream: open.StreamOpen, Kind: store.KindRingbuf, Events: evs}); err != nil {
			return nil, err
		}
		// tcp: connect to each peer: CLOSE->SYN_SENT->ESTABLISHED
		evs = nil
		for i, peer := range peers {
			src := local4
			if i == 1 {
				src = local6
			}
			for _, st := range [][2]uint8{{tcp.Close, tcp.SynSent}, {tcp.SynSent, tcp.Established}} {
				kt += 1000
				evs = append(evs, store.Event{Raw: TCP(kt, 0xffff000000000000+uint64(r*2+i), pid, "curl", src, peer, st[0], st[1]), Timestamp: read(), CPU: -1})
				want.Peers[peer.String()]++
				want.TCP++
			}
		}
		if err := w.Append(&store.Batch{Stream: tcp.StreamTCP, Kind: store.KindRingbuf, Events: evs}); err != nil {
			return nil, err
		}
		// syscalls
		evs = nil
		for i := range 16 {
			kt += 100
			evs = append(evs, store.Event{Raw: Syscall(kt, 200, int64(i)-2, pid, uint32(i%4)), Timestamp: read(), CPU: -1})
			want.Syscalls++
		}
		if err := w.Append(&store.Batch{Stream: syscalls.StreamSyscalls, Kind: store.KindRingbuf, Events: evs}); err != nil {
			return nil, err
		}
		// unknown
		kt += 1000
		if err := w.Append(&store.Batch{Stream: Unknown.Name, Kind: store.KindRingbuf, Events: []store.Event{{Raw: []byte(fmt.Sprintf("opaque-%d", r)), Timestamp: read(), CPU: -1}}}); err != nil {
			return nil, err
		}
		want.Raw++
		if r%4 == 0 {
			if err := w.AppendLoss(exec.StreamExec, read(), store.Loss{RingbufDropped: ring}); err != nil {
				return nil, err
			}
		}
	}
	want.LossRing, want.PerfLost = ring, perfLost
	want.Events = len(names)*2*rounds + want.OpenCount + want.TCP + want.Syscalls + want.Raw
	want.First = Start.Add(1000)
	want.Last = Start.Add(time.Duration(kt - Boot))
	return want, w.Close()
}

// ExecOnly writes a recording of n exec events in batches of batch events
// (for benchmarks), with realistic, repetitive names.
func ExecOnly(dir string, n, batch int) error {
	w, err := store.Create(dir, Meta("bench", Builtin(exec.Name)), store.WriterOptions{Sync: store.SyncNever})
	if err != nil {
		return err
	}
	names := []string{"bash", "sh", "ls", "cat", "grep", "sed", "awk", "git", "go", "make", "gcc", "cc1", "as", "ld", "python3", "node"}
	kt := uint64(Boot)
	evs := make([]store.Event, 0, batch)
	for i := range n {
		kt += 2000 + uint64(i%7)*100
		name := names[(i*7+i/3)%len(names)]
		ev := exec.Event{KtimeNs: kt, Pid: uint32(10000 + i), Ppid: uint32(9000 + i/16), UID: uint32(i % 3 * 1000), OldPid: uint32(10000 + i), Command: name, Filename: "/usr/bin/" + name, Args: []string{name, "--color=auto", "file" + strconv.Itoa(i%100)}}
		evs = append(evs, store.Event{Raw: Exec(&ev), Timestamp: Start.Add(time.Duration(kt - Boot)), CPU: -1})
		if len(evs) == batch || i == n-1 {
			if err := w.Append(&store.Batch{Stream: exec.StreamExec, Kind: store.KindRingbuf, Events: evs}); err != nil {
				return err
			}
			evs = evs[:0]
		}
	}
	return w.Close()
}
