package tcp

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"strconv"
	"unsafe"

	"github.com/ebpfrec/ebpfrec/bpf"
	"github.com/ebpfrec/ebpfrec/bpf/tracers"
)

// Offsets of struct tcp_event (tcp.c).
const (
	offKtime    = 0
	offSkaddr   = 8
	offPID      = 16
	offFamily   = 20
	offSport    = 22
	offDport    = 24
	offOldstate = 26
	offNewstate = 27
	offSaddr    = 28
	offDaddr    = 44
	offComm     = 60
	offCPU      = 80
	// EventSize is the size of struct tcp_event.
	EventSize = 88

	// sizeNoCPU is the earlier layout (before cpu), which Decode still
	// reads: the current one cut short, its CPU unknown.
	sizeNoCPU = 80

	commLen = 16
)

func init() {
	var e bpfTcpEvent
	if unsafe.Sizeof(e) != EventSize || unsafe.Offsetof(e.Sport) != offSport || unsafe.Offsetof(e.Oldstate) != offOldstate ||
		unsafe.Offsetof(e.Saddr) != offSaddr || unsafe.Offsetof(e.Daddr) != offDaddr || unsafe.Offsetof(e.Comm) != offComm ||
		unsafe.Offsetof(e.Cpu) != offCPU {
		panic("tcp: decoder offsets do not match struct tcp_event")
	}
}

// Address families.
const (
	AFInet  = 2
	AFInet6 = 10
)

// TCP states (include/net/tcp_states.h).
const (
	Established = 1
	SynSent     = 2
	SynRecv     = 3
	FinWait1    = 4
	FinWait2    = 5
	TimeWait    = 6
	Close       = 7
	CloseWait   = 8
	LastAck     = 9
	Listen      = 10
	Closing     = 11
	NewSynRecv  = 12
)

var stateNames = [...]string{
	Established: "ESTABLISHED", SynSent: "SYN_SENT", SynRecv: "SYN_RECV", FinWait1: "FIN_WAIT1",
	FinWait2: "FIN_WAIT2", TimeWait: "TIME_WAIT", Close: "CLOSE", CloseWait: "CLOSE_WAIT",
	LastAck: "LAST_ACK", Listen: "LISTEN", Closing: "CLOSING", NewSynRecv: "NEW_SYN_RECV",
}

// StateName names a TCP state, e.g. "ESTABLISHED".
func StateName(s uint8) string {
	if int(s) < len(stateNames) && stateNames[s] != "" {
		return stateNames[s]
	}
	return "STATE_" + strconv.Itoa(int(s))
}

// Event is one TCP state change. Addresses are strings that DuckDB casts to
// INET ("127.0.0.1", "::1"); SrcAddr and DstAddr give them as netip.
type Event struct {
	KtimeNs  uint64      `json:"ktime_ns" parquet:"ktime_ns" doc:"bpf_ktime_get_ns() at the change (CLOCK_MONOTONIC)"`
	Pid      uint32      `json:"pid" parquet:"pid" doc:"the socket's owner process; 0 if the tracer could not know it (see the package doc)"`
	Command  string      `json:"comm" parquet:"comm" doc:"the owner's command name; empty if unknown"`
	Socket   uint64      `json:"socket,string" parquet:"socket" doc:"the socket's kernel address: an id for its lifetime (a string in JSON: above 2^53)"`
	Family   string      `json:"family" parquet:"family" doc:"ipv4 or ipv6"`
	Saddr    string      `json:"saddr" parquet:"saddr" doc:"local address"`
	Sport    uint16      `json:"sport" parquet:"sport" doc:"local port"`
	Daddr    string      `json:"daddr" parquet:"daddr" doc:"remote address"`
	Dport    uint16      `json:"dport" parquet:"dport" doc:"remote port"`
	OldState string      `json:"old_state" parquet:"old_state" doc:"state before, e.g. SYN_SENT"`
	NewState string      `json:"new_state" parquet:"new_state" doc:"state after, e.g. ESTABLISHED"`
	Old      uint8       `json:"old_state_code" parquet:"old_state_code" doc:"state before, as a number"`
	New      uint8       `json:"new_state_code" parquet:"new_state_code" doc:"state after, as a number"`
	CPU      tracers.CPU `json:"cpu" parquet:"cpu" doc:"CPU of the change (null in recordings made before events carried it)"`
}

// Tracer returns "tcp".
func (e *Event) Tracer() string { return Name }

// KernelTime returns the event's bpf_ktime_get_ns.
func (e *Event) KernelTime() uint64 { return e.KtimeNs }

// PID returns the owner process id.
func (e *Event) PID() uint32 { return e.Pid }

// Comm returns the owner's command name.
func (e *Event) Comm() string { return e.Command }

// EventCPU returns the CPU, -1 if unknown (tracers.CPUEvent).
func (e *Event) EventCPU() int { return int(e.CPU) }

// SrcAddr returns the local address and port (invalid if Saddr is not an
// address, e.g. in a zero Event).
func (e *Event) SrcAddr() netip.AddrPort {
	a, _ := netip.ParseAddr(e.Saddr)
	return netip.AddrPortFrom(a, e.Sport)
}

// DstAddr returns the remote address and port.
func (e *Event) DstAddr() netip.AddrPort {
	a, _ := netip.ParseAddr(e.Daddr)
	return netip.AddrPortFrom(a, e.Dport)
}

// AppendText appends "saddr=... daddr=... state=OLD->NEW".
func (e *Event) AppendText(dst []byte) []byte {
	dst = tracers.AppendStr(dst, "src", e.SrcAddr().String())
	dst = tracers.AppendStr(dst, "dst", e.DstAddr().String())
	dst = tracers.AppendStr(dst, "state", e.OldState+"->"+e.NewState)
	return tracers.AppendHex(dst, "sk", e.Socket)
}

// LayoutSizes lists the sizes of every layout of struct tcp_event that
// Decode reads, the current one (EventSize) first: a raw event is read by
// the layout of its size (anything longer than EventSize as EventSize).
var LayoutSizes = []int{EventSize, sizeNoCPU}

// Decode decodes a raw struct tcp_event into ev, of the current layout or
// an earlier one (LayoutSizes). It accepts trailing bytes after the current
// layout and never panics; an unknown family gives an error.
func Decode(raw []byte, ev *Event) error {
	switch n := len(raw); {
	case n >= EventSize:
		cpu, _ := bpf.ReadU32(raw, offCPU)
		ev.CPU = tracers.CPU(cpu)
	case n == sizeNoCPU:
		ev.CPU = tracers.UnknownCPU
	default:
		_, err := bpf.ReadBytes(raw, 0, EventSize)
		return fmt.Errorf("tcp event: %d bytes, not of a known layout (%d or %d bytes): %w", n, EventSize, sizeNoCPU, err)
	}
	ev.KtimeNs, _ = bpf.ReadU64(raw, offKtime)
	ev.Socket, _ = bpf.ReadU64(raw, offSkaddr)
	ev.Pid, _ = bpf.ReadU32(raw, offPID)
	// There is no bpf.ReadU16: read the small fields as bytes, host order.
	b, _ := bpf.ReadBytes(raw, offFamily, offSaddr-offFamily)
	family := binary.NativeEndian.Uint16(b[0:])
	ev.Sport = binary.NativeEndian.Uint16(b[offSport-offFamily:])
	ev.Dport = binary.NativeEndian.Uint16(b[offDport-offFamily:])
	ev.Old, ev.New = b[offOldstate-offFamily], b[offNewstate-offFamily]
	ev.OldState, ev.NewState = StateName(ev.Old), StateName(ev.New)
	s, _ := bpf.ReadBytes(raw, offSaddr, 16)
	d, _ := bpf.ReadBytes(raw, offDaddr, 16)
	var src, dst netip.Addr
	switch family {
	case AFInet:
		ev.Family = "ipv4"
		src, dst = netip.AddrFrom4([4]byte(s[:4])), netip.AddrFrom4([4]byte(d[:4]))
	case AFInet6:
		ev.Family = "ipv6"
		src, dst = netip.AddrFrom16([16]byte(s)), netip.AddrFrom16([16]byte(d))
	default:
		return fmt.Errorf("tcp event: unknown address family %d", family)
	}
	ev.Saddr, ev.Daddr = src.String(), dst.String()
	var err error
	if ev.Command, err = bpf.ReadCString(raw, offComm, commLen); err != nil {
		return fmt.Errorf("tcp event: comm: %w", err)
	}
	return nil
}
