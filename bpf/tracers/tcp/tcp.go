// Package tcp is the built-in tracer of TCP state changes (IPv4 and IPv6),
// from the sock/inet_sock_set_state tracepoint. Each socket is attributed
// to its owner process (the one that connected or listened; for accepted
// sockets, the listener's process), since many transitions run in softirq
// context on behalf of no particular process.
package tcp

import (
	"github.com/ebpfrec/ebpfrec/bpf"
	"github.com/ebpfrec/ebpfrec/bpf/tracers"
)

// Name is the tracer's name.
const Name = "tcp"

// EventType names the layout of the tracer's events in recordings (see
// tracers.Stream.EventType): rename it when Event changes.
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
		Event:          &Event{},
		Decode:         tracers.Decoder(Decode),
	}})
	return t
}

// Name returns "tcp".
func (t *Tracer) Name() string { return Name }

// Description says what the tracer records.
func (t *Tracer) Description() string {
	return "TCP state changes (IPv4, IPv6): addresses, ports, old and new state, owner pid and comm"
}

// AttachPoints lists where the tracer attaches.
func (t *Tracer) AttachPoints() []string { return []string{"tracepoint/sock/inet_sock_set_state"} }

// Supported checks that the sock/inet_sock_set_state tracepoint exists.
func (t *Tracer) Supported() error { return tracers.CheckTracepoint("sock", "inet_sock_set_state") }

// Tracepoints returns the program to attach, keyed "sock/inet_sock_set_state".
func (t *Tracer) Tracepoints() map[string]bpf.ProbeDesc {
	return map[string]bpf.ProbeDesc{"sock/inet_sock_set_state": {Required: true, Start: t.objs.TcpSetState}}
}
