package bpf

import (
	"context"
	"sync"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
)

// This file holds this project's equivalents of the types that the seed API
// takes from packages ebpfrec does not have; doc.go lists the mapping.

// ProbeDesc describes the programs to attach at one probe point
// (ebpfcommon.ProbeDesc). Start runs at entry (kprobe, uprobe, tracepoint);
// End, if set, at return (kretprobe, uretprobe).
type ProbeDesc struct {
	// Required makes a failure to attach this probe fatal; otherwise the
	// failure is logged and the tracer goes on without the probe.
	Required bool
	Start    *ebpf.Program
	End      *ebpf.Program
}

// SockMsg is a BPF_PROG_TYPE_SK_MSG program and the sockmap it attaches to.
type SockMsg struct {
	Program  *ebpf.Program
	MapFD    int
	AttachAs ebpf.AttachType
}

// SockOps is a BPF_PROG_TYPE_SOCK_OPS program and the cgroup it attaches to.
type SockOps struct {
	Program  *ebpf.Program
	CgroupFD int
	AttachAs ebpf.AttachType
}

// Iter is a BPF iterator program (BPF_TRACE_ITER) and, once attached, its link.
type Iter struct {
	Program *ebpf.Program
	Link    *link.Iter
}

// EventContext is what a Tracer's Run needs beyond its own objects
// (ebpfcommon.EBPFEventContext): reader settings, logging and telemetry
// shared by every tracer of a process.
type EventContext struct {
	Ringbuf RingbufConfig
	Perfbuf PerfbufConfig
	Metrics *Metrics
}

// InstrumentableType says what kind of executable is instrumented
// (svc.InstrumentableType).
type InstrumentableType int

// Kinds of instrumentable executables.
const (
	InstrumentableGeneric InstrumentableType = iota
	InstrumentableGolang
)

// String names the type of executable.
func (t InstrumentableType) String() string {
	switch t {
	case InstrumentableGeneric:
		return "generic"
	case InstrumentableGolang:
		return "go"
	}
	return "unknown"
}

// ServiceAttrs are the attributes of the service a process belongs to
// (svc.Attrs). Child processes share the parent's *ServiceAttrs.
type ServiceAttrs struct {
	Name      string
	Namespace string
	Type      InstrumentableType
	ChildPIDs []uint32
	// Metadata holds free-form attributes (e.g. host, container).
	Metadata map[string]string
}

// FileInfo describes an executable of a running process (exec.FileInfo).
type FileInfo struct {
	Service    ServiceAttrs
	CmdExePath string // the path as the process was started
	ProExeLink string // /proc/PID/exe
	PID        int32
	PPID       int32
	Ino        uint64 // inode of the executable
	// Dev is the device of the executable (st_dev): with Ino, what
	// identifies the file (FileKey).
	Dev uint64
	NS  uint32 // PID namespace
}

// FuncOffsets are the offsets, in the executable file, of a function's entry
// and of each of its return instructions.
type FuncOffsets struct {
	Start   uint64
	Returns []uint64
}

// GoOffsets are what a Go executable needs for uprobes (goexec.Offsets):
// function offsets by symbol, and struct field offsets by name.
type GoOffsets struct {
	Funcs map[string]FuncOffsets
	Field map[string]uint64
}

// Span is one decoded event that a Tracer's Run emits (request.Span): which
// tracer and stream it came from, when, from which process, and its fields.
type Span struct {
	Tracer    string
	Stream    string
	Timestamp time.Time
	PID       uint32
	Comm      string
	Fields    map[string]any
}

// Queue is a small fan-out queue between a Tracer and its consumers
// (msg.Queue): every subscriber receives every item sent after it
// subscribed, in the order sent. Send blocks while a subscriber's channel is
// full, so a slow consumer applies back-pressure instead of losing items;
// the wait ends when the Send's context ends or the queue is closed. Close
// closes every subscriber's channel. All methods are safe for concurrent
// use.
type Queue[T any] struct {
	mu     sync.Mutex // serializes Sends, so all subscribers see one order
	subs   []chan T
	size   int
	closed bool

	doneOnce  sync.Once
	done      chan struct{} // closed by Close, to release a blocked Send
	closeOnce sync.Once
}

// NewQueue returns a queue whose subscribers have channels of capacity size.
func NewQueue[T any](size int) *Queue[T] {
	return &Queue[T]{size: max(size, 0)}
}

func (q *Queue[T]) doneCh() chan struct{} {
	q.doneOnce.Do(func() { q.done = make(chan struct{}) })
	return q.done
}

// Subscribe returns a channel that receives every later item. On a closed
// queue it returns a closed channel.
func (q *Queue[T]) Subscribe() <-chan T {
	q.mu.Lock()
	defer q.mu.Unlock()
	ch := make(chan T, q.size)
	if q.closed {
		close(ch)
		return ch
	}
	q.subs = append(q.subs, ch)
	return ch
}

// Send delivers item to every subscriber, or gives up when ctx ends or the
// queue is closed. It returns false if the item was not delivered to all.
func (q *Queue[T]) Send(ctx context.Context, item T) bool {
	done := q.doneCh()
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return false
	}
	for _, ch := range q.subs {
		select {
		case ch <- item:
		case <-ctx.Done():
			return false
		case <-done:
			return false
		}
	}
	return true
}

// Close closes every subscriber's channel, first releasing a Send blocked
// on a full subscriber. Later Sends return false. Close is idempotent.
func (q *Queue[T]) Close() {
	q.closeOnce.Do(func() { close(q.doneCh()) })
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return
	}
	q.closed = true
	for _, ch := range q.subs {
		close(ch)
	}
}
