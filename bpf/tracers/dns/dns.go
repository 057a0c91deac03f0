// Package dns is the built-in tracer of name lookups through the C
// library's getaddrinfo: the host name, the result, the addresses and the
// latency of each call, in the processes that bpf.ProcessTracer
// instruments (a uprobe at the function's entry and a uretprobe at its
// return, in the libc the process maps; one attachment per library file,
// shared by every process that maps it).
package dns

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/ebpfrec/ebpfrec/bpf"
	"github.com/ebpfrec/ebpfrec/bpf/exeinfo"
	"github.com/ebpfrec/ebpfrec/bpf/tracers"
)

// Name is the tracer's name.
const Name = "dns"

// EventType names the layout of the tracer's events in recordings.
const EventType = "dns.Event"

// Stream name and maps.
const (
	StreamDNS  = "dns"
	MapEvents  = "dns_events"
	MapDrops   = "dns_drops"
	MapEmitted = "dns_emitted"
)

// Module and Function say where the probes go: getaddrinfo of the C
// library (a mapped file named libc.so or libc.so.N).
const (
	Module   = "libc.so"
	Function = "getaddrinfo"
)

// Tracer records getaddrinfo calls.
type Tracer struct {
	tracers.Base
	objs bpfObjects
	libs bpf.InstrumentedLibs
}

var _ tracers.ProcessInstrumenter = (*Tracer)(nil)

func init() {
	tracers.Register(Name, func(o tracers.Options) (tracers.Builtin, error) { return New(o), nil })
}

// New returns the dns tracer (nothing is loaded yet).
func New(opts tracers.Options) *Tracer {
	t := &Tracer{}
	t.Init(t, opts, &t.objs, loadBpf, []tracers.Stream{{
		Name:           StreamDNS,
		Map:            MapEvents,
		Kind:           tracers.Ringbuf,
		DropCounter:    MapDrops,
		EmittedCounter: MapEmitted,
		Struct:         "dns_event",
		EventType:      EventType,
		Event:          &Event{},
		Decode:         tracers.Decoder(Decode),
	}})
	return t
}

// Name returns "dns".
func (t *Tracer) Name() string { return Name }

// Description says what the tracer records.
func (t *Tracer) Description() string {
	return "name lookups through libc's getaddrinfo: host, result, addresses, latency, pid, tid, cpu (464-byte events)"
}

// AttachPoints lists where the tracer attaches.
func (t *Tracer) AttachPoints() []string {
	return []string{"uprobe/libc.so.6:getaddrinfo", "uretprobe/libc.so.6:getaddrinfo"}
}

// Supported checks for uprobes and for a C library with getaddrinfo on
// this host.
func (t *Tracer) Supported() error {
	if _, err := os.Stat("/sys/bus/event_source/devices/uprobe/type"); err != nil {
		return fmt.Errorf("the kernel has no uprobe PMU: %w", err)
	}
	lib, err := FindLibc()
	if err != nil {
		return err
	}
	f, err := exeinfo.Open(lib)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := f.Symbol(Function); err != nil {
		return err
	}
	return nil
}

// FindLibc returns the path of this host's C library (libc.so.6 in the
// usual directories), or an error saying none was found.
func FindLibc() (string, error) {
	for _, d := range []string{"/lib/x86_64-linux-gnu", "/lib/aarch64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/lib64", "/usr/lib64", "/lib", "/usr/lib"} {
		p := filepath.Join(d, "libc.so.6")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("no C library (libc.so.6) found in the usual directories")
}

// Tracepoints returns nil: the programs are attached to the C library of
// the processes bpf.ProcessTracer instruments (UProbes).
func (t *Tracer) Tracepoints() map[string]bpf.ProbeDesc { return nil }

// ProcessTracerType says that the tracer instruments any executable
// (through its C library).
func (t *Tracer) ProcessTracerType() bpf.ProcessTracerType { return bpf.Generic }

// GoFields returns nil.
func (t *Tracer) GoFields() []string { return nil }

// UProbes returns getaddrinfo's entry and return programs in libc.
func (t *Tracer) UProbes() map[string]map[string][]*bpf.ProbeDesc {
	return map[string]map[string][]*bpf.ProbeDesc{
		Module: {Function: {{Required: true, Start: t.objs.DnsEntry, End: t.objs.DnsReturn}}},
	}
}

// The library bookkeeping is bpf.InstrumentedLibs' (Base's keeps the
// links until Close): a library's probes are detached with its last user.

// RecordInstrumentedLib records a library's probes, by its first user.
func (t *Tracer) RecordInstrumentedLib(key uint64, closers []io.Closer) {
	t.libs.RecordInstrumentedLib(key, closers)
}

// AddInstrumentedLibRef counts one more user of a library.
func (t *Tracer) AddInstrumentedLibRef(key uint64) { t.libs.AddInstrumentedLibRef(key) }

// AlreadyInstrumentedLib reports whether a library is instrumented.
func (t *Tracer) AlreadyInstrumentedLib(key uint64) bool { return t.libs.AlreadyInstrumentedLib(key) }

// UnlinkInstrumentedLib counts one user of a library less, and detaches
// its probes with the last.
func (t *Tracer) UnlinkInstrumentedLib(key uint64) { t.libs.UnlinkInstrumentedLib(key) }

// LibRefs returns how many processes use the library key.
func (t *Tracer) LibRefs(key uint64) int { return t.libs.LibRefs(key) }

// Close detaches every library's probes and closes the tracer.
func (t *Tracer) Close() error {
	return errors.Join(t.libs.Close(), t.Base.Close())
}
