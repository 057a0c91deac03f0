// Package tcp is the built-in tracer of TCP state changes (IPv4 and IPv6),
// from the sock/inet_sock_set_state tracepoint. Each socket is attributed
// to its owner process, since many transitions run in softirq context on
// behalf of no particular process: the one that connected or listened;
// for an accepted socket, the listener's owner until a process accepts it
// (sys_exit_accept4), then that process; listeners that existed before
// the load are found in /proc. An owner that cannot be known is pid 0 and
// comm "" (see tcp.c).
package tcp

import (
	"github.com/ebpfrec/ebpfrec/bpf"
	"github.com/ebpfrec/ebpfrec/bpf/tracers"
)

// Name is the tracer's name.
const Name = "tcp"

// EventType names the layout of the tracer's events in recordings (see
// tracers.Stream.EventType): rename it only for a change of the layout that
// its size does not tell (Decode reads the earlier layouts by size).
const EventType = "tcp.Event"

// Stream name and maps.
const (
	StreamTCP  = "tcp"
	MapEvents  = "tcp_events"
	MapDrops   = "tcp_drops"
	MapEmitted = "tcp_emitted"
)

// Tracer records TCP state changes.
type Tracer struct {
	tracers.Base
	objs bpfObjects
}

var _ tracers.Builtin = (*Tracer)(nil)

func init() {
	tracers.Register(Name, func(o tracers.Options) (tracers.Builtin, error) { return New(o), nil })
}

// New returns the tcp tracer (nothing is loaded yet).
func New(opts tracers.Options) *Tracer {
	t := &Tracer{}
	t.Init(t, opts, &t.objs, loadBpf, []tracers.Stream{{
		Name:           StreamTCP,
		Map:            MapEvents,
		Kind:           tracers.Ringbuf,
		DropCounter:    MapDrops,
		EmittedCounter: MapEmitted,
		EventType:      EventType,
		Struct:         "tcp_event",
		Event:          &Event{},
		Decode:         tracers.Decoder(Decode),
	}})
	t.SetAfterLoad(func() error { return seedListeners(t.objs.TcpListeners) })
	return t
}

// Name returns "tcp".
func (t *Tracer) Name() string { return Name }

// Description says what the tracer records.
func (t *Tracer) Description() string {
	return "TCP state changes (IPv4, IPv6): addresses, ports, old and new state, owner pid and comm"
}

// AttachPoints lists where the tracer attaches.
func (t *Tracer) AttachPoints() []string {
	return []string{"tracepoint/sock/inet_sock_set_state", "tracepoint/syscalls/sys_exit_{accept4,accept}"}
}

// Supported checks that the sock/inet_sock_set_state tracepoint exists.
func (t *Tracer) Supported() error { return tracers.CheckTracepoint("sock", "inet_sock_set_state") }

// Tracepoints returns the program to attach, keyed "sock/inet_sock_set_state".
func (t *Tracer) Tracepoints() map[string]bpf.ProbeDesc {
	return map[string]bpf.ProbeDesc{
		"sock/inet_sock_set_state": {Required: true, Start: t.objs.TcpSetState},
		// Without them (no syscall tracepoints), an accepted socket stays
		// its listener's owner's.
		"syscalls/sys_exit_accept4": {Start: t.objs.TcpExitAccept4},
		"syscalls/sys_exit_accept":  {Start: t.objs.TcpExitAccept},
	}
}
