package dns

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"unsafe"

	"github.com/ebpfrec/ebpfrec/bpf"
	"github.com/ebpfrec/ebpfrec/bpf/tracers"
)

// Offsets of struct dns_event (dns.c).
const (
	offKtime    = 0
	offLatency  = 8
	offPID      = 16
	offTID      = 20
	offCPU      = 24
	offRet      = 28
	offNaddrs   = 32
	offMore     = 36
	offAddrs    = 40
	addrSize    = 24
	maxAddrs    = 8
	offHost     = 232
	hostLen     = 232
	familyInet  = 2
	familyInet6 = 10
	// EventSize is the size of struct dns_event.
	EventSize = 464
)

// LayoutSizes lists the sizes of every layout of struct dns_event that
// Decode reads.
var LayoutSizes = []int{EventSize}

func init() {
	var e bpfDnsEvent
	if unsafe.Sizeof(e) != EventSize || unsafe.Offsetof(e.Pid) != offPID || unsafe.Offsetof(e.Cpu) != offCPU ||
		unsafe.Offsetof(e.Ret) != offRet || unsafe.Offsetof(e.Naddrs) != offNaddrs || unsafe.Offsetof(e.More) != offMore ||
		unsafe.Offsetof(e.Addrs) != offAddrs || unsafe.Sizeof(e.Addrs[0]) != addrSize || len(e.Addrs) != maxAddrs ||
		unsafe.Offsetof(e.Host) != offHost || len(e.Host) != hostLen {
		panic("dns: decoder offsets do not match struct dns_event")
	}
}

// Event is one getaddrinfo call.
type Event struct {
	KtimeNs   uint64      `json:"ktime_ns" parquet:"ktime_ns" doc:"bpf_ktime_get_ns() at the call (CLOCK_MONOTONIC)"`
	LatencyNs uint64      `json:"latency_ns" parquet:"latency_ns" doc:"the call's duration, ns"`
	Pid       uint32      `json:"pid" parquet:"pid" doc:"process id (tgid)"`
	Tid       uint32      `json:"tid" parquet:"tid" doc:"thread id"`
	Host      string      `json:"host" parquet:"host" doc:"the name looked up (getaddrinfo's node; cut to 231 bytes)"`
	Ret       int32       `json:"ret" parquet:"ret" doc:"getaddrinfo's result: 0, or an EAI_ code (negative)"`
	Result    string      `json:"result" parquet:"result" doc:"ok, or the EAI_ code's name (EAI_NONAME, ...)"`
	Addrs     []string    `json:"addrs" parquet:"addrs" doc:"the addresses of the result list, each once, in order (of its first 8 entries)"`
	Truncated bool        `json:"addrs_truncated" parquet:"addrs_truncated" doc:"the result list had more than 8 entries"`
	CPU       tracers.CPU `json:"cpu" parquet:"cpu" doc:"CPU at the return"`
}

// Tracer returns "dns".
func (e *Event) Tracer() string { return Name }

// KernelTime returns the event's bpf_ktime_get_ns (at the call).
func (e *Event) KernelTime() uint64 { return e.KtimeNs }

// PID returns the process id.
func (e *Event) PID() uint32 { return e.Pid }

// EventCPU returns the CPU (tracers.CPUEvent).
func (e *Event) EventCPU() int { return int(e.CPU) }

// Comm returns "": dns events carry no comm (the process table has it).
func (e *Event) Comm() string { return "" }

// AppendText appends "host=example.com result=ok addrs=[10.0.0.1] latency=1.2ms".
func (e *Event) AppendText(dst []byte) []byte {
	dst = tracers.AppendStr(dst, "host", e.Host)
	dst = tracers.AppendStr(dst, "result", e.Result)
	dst = tracers.AppendList(dst, "addrs", e.Addrs, e.Truncated)
	return tracers.AppendDuration(dst, "latency", e.LatencyNs)
}

// eaiNames are glibc's EAI_ codes (netdb.h).
var eaiNames = map[int32]string{
	-1: "EAI_BADFLAGS", -2: "EAI_NONAME", -3: "EAI_AGAIN", -4: "EAI_FAIL", -5: "EAI_NODATA",
	-6: "EAI_FAMILY", -7: "EAI_SOCKTYPE", -8: "EAI_SERVICE", -9: "EAI_ADDRFAMILY",
	-10: "EAI_MEMORY", -11: "EAI_SYSTEM", -12: "EAI_OVERFLOW",
}

// ResultName returns "ok" for 0, the EAI_ name of a known code, else "EAI_N".
func ResultName(ret int32) string {
	if ret == 0 {
		return "ok"
	}
	if n, ok := eaiNames[ret]; ok {
		return n
	}
	return fmt.Sprintf("EAI_%d", ret)
}

// Decode decodes a raw struct dns_event into ev. It accepts trailing bytes
// after the layout and never panics.
func Decode(raw []byte, ev *Event) error {
	if len(raw) < EventSize {
		_, err := bpf.ReadBytes(raw, 0, EventSize)
		return fmt.Errorf("dns event: %d bytes, want %d: %w", len(raw), EventSize, err)
	}
	ev.KtimeNs, _ = bpf.ReadU64(raw, offKtime)
	ev.LatencyNs, _ = bpf.ReadU64(raw, offLatency)
	ev.Pid, _ = bpf.ReadU32(raw, offPID)
	ev.Tid, _ = bpf.ReadU32(raw, offTID)
	cpu, _ := bpf.ReadU32(raw, offCPU)
	ev.CPU = tracers.CPU(cpu)
	ret, _ := bpf.ReadU32(raw, offRet)
	ev.Ret = int32(ret)
	ev.Result = ResultName(ev.Ret)
	n, _ := bpf.ReadU32(raw, offNaddrs)
	more, _ := bpf.ReadU32(raw, offMore)
	ev.Truncated = more != 0
	ev.Addrs = ev.Addrs[:0]
	seen := map[netip.Addr]bool{}
	for i := 0; i < int(min(n, maxAddrs)); i++ {
		a := raw[offAddrs+i*addrSize : offAddrs+(i+1)*addrSize]
		var ip netip.Addr
		switch binary.NativeEndian.Uint16(a) {
		case familyInet:
			ip = netip.AddrFrom4([4]byte(a[8:12]))
		case familyInet6:
			ip = netip.AddrFrom16([16]byte(a[8:24]))
		default:
			continue
		}
		if !seen[ip] {
			seen[ip] = true
			ev.Addrs = append(ev.Addrs, ip.String())
		}
	}
	host, err := bpf.ReadCString(raw, offHost, hostLen)
	if err != nil {
		return fmt.Errorf("dns event: host: %w", err)
	}
	ev.Host = host
	return nil
}
