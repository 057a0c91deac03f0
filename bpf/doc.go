// Package bpf manages the lifecycle of eBPF programs and reads their events.
//
// It is the seed API of ebpfrec (see docs/architecture.md): a
// Manager loads collection specs (usually from bpf2go), attaches their
// programs to tracepoints, raw and BTF tracepoints, uprobes and kprobes, and
// releases everything in Stop; a MapManager creates, pins and looks up maps;
// RingbufReader and PerfbufReader read events in batches and hand them to an
// EventHandler / PerfEventHandler; the Read* decoders and
// ParsePerfEventHeader take events apart; the Tracer interfaces,
// ProcessTracer and Instrumentable describe tracers. The package knows
// nothing about storage.
//
// # Ownership
//
// What the Manager returns (collections, programs, links, the MapManager)
// stays owned by it: callers must not Close those objects. DetachLink
// releases one link; Stop releases everything — links, then collections,
// then the io.Closers given to AddCloser, each in reverse order of
// creation, then the MapManager. Maps created by, registered with, or
// loaded from a pin by a MapManager are owned by it and closed by DeleteMap
// or Close; a collection's maps are listed in its Manager's MapManager as
// "collection/map" but belong to the collection. Pins outlive Close: only
// DeleteMap removes a pin, and only one the manager created itself.
//
// Event bytes handed to handlers (RingbufEvent.Raw, PerfbufEvent.Raw) belong
// to the reader again once the handler returns; a handler that keeps them
// must copy them. Slices returned by ReadBytes alias the event.
//
// # Instrumenting processes
//
// ProcessTracer.Instrument instruments one process for its programs (the
// Tracers): its executable once per file, identified by FileKey (device
// and inode), and the shared libraries its programs' UProbes name, once
// per library and program, reference-counted through the Tracer's
// *InstrumentedLib methods (InstrumentedLibs implements them for
// embedding). Go functions, from GoProbes, are probed at their entry and
// at each of their return instructions, never with uretprobes: Go copies
// its stacks when they grow and walks them to collect garbage, and a
// return probe's changed return address on a stack makes it die. The
// offsets come from InspectGo (package exeinfo); Manager.AttachGoFunc
// attaches the same way through a Manager. Release undoes Instrument; the
// last process of a file or library detaches its probes. GoOffsets.Field
// keys are "TYPE.FIELD" ("runtime.g.goid").
//
// # Names
//
// Links are named "collection/program@point": "coll/prog@do_sys_openat2"
// for a kprobe, "coll/prog@syscalls/sys_enter_getppid" for a tracepoint
// ("coll/prog@sched_switch" for a raw or BTF tracepoint given without a
// group), "coll/prog@/usr/bin/app:0x4a2f0" for a uprobe at that file
// offset. DetachLink takes that name and ProgramInfo.AttachPoint shows it.
// ProgramInfo.Name is "collection/program". AttachTracing (an addition to
// the seed) attaches fentry/fexit/tp_btf programs as "coll/prog@AttachTo".
//
// # Lifecycle
//
// NewManager, then LoadSpec and LoadCollection per collection, then the
// Attach* calls. Start(ctx) is optional: it makes the manager stop itself
// when ctx ends. Stop is idempotent and may be called from any goroutine.
//
// # Byte order
//
// BPF programs write integers in the byte order of the machine they run
// on. The decoders (ReadU32, ReadU64, ParsePerfEventHeader) read in the
// host's byte order (binary.NativeEndian): decode events on the machine that
// recorded them, or on one of the same byte order.
//
// # Errors
//
// Every error condition this package detects itself wraps an exported
// sentinel, so callers use errors.Is: ErrManagerStopped, ErrUnknownSpec,
// ErrUnknownCollection (alias ErrNotLoaded), ErrUnknownProgram,
// ErrUnknownLink, ErrUnknownMap, ErrAlreadyExists, ErrWrongProgramType,
// ErrInvalidName, ErrNotOwned, ErrIncompatiblePin, ErrClosed for the
// managers; ErrTracerClosed for a closed ProcessTracer; ErrOutOfBounds,
// ErrUnterminatedString, ErrBadHeader for the decoders (whose errors are *DecodeError values naming the field).
// Errors from the kernel and cilium/ebpf stay wrapped: a verifier rejection
// from LoadCollection is an *ebpf.VerifierError for errors.As and carries
// the whole verifier log in its message; AttachKprobe on a kernel without
// kprobes satisfies errors.Is(err, ebpf.ErrNotSupported).
//
// # Kernel requirements
//
// Manager.AttachTracepoint needs tracefs mounted (mount -t tracefs tracefs
// /sys/kernel/tracing); pinning needs bpffs (mount -t bpf bpf /sys/fs/bpf).
// With ManagerConfig.RemoveRlimit, NewManager calls cilium/ebpf's
// rlimit.RemoveMemlock, which probes at program start whether BPF memory is
// charged to the memory cgroup (Linux 5.11+); where it is, RemoveMemlock
// changes nothing and so works without CAP_SYS_RESOURCE.
//
// # The seed's foreign types
//
// The seed API refers to types of packages this project does not have.
// Each has a small equivalent here:
//
//	seed type                        this package
//	------------------------------   ---------------------------------------
//	ebpfcommon.ProbeDesc             ProbeDesc
//	ebpfcommon.SockMsg               SockMsg
//	ebpfcommon.SockOps               SockOps
//	ebpfcommon.Iter                  Iter
//	ebpfcommon.EBPFEventContext      EventContext
//	svc.Attrs                        ServiceAttrs
//	svc.InstrumentableType           InstrumentableType
//	exec.FileInfo                    FileInfo
//	goexec.Offsets                   GoOffsets (with FuncOffsets)
//	request.Span                     Span
//	msg.Queue[T]                     Queue[T]
//	selftelemetry.Metrics            Metrics (Prometheus; nil disables)
package bpf
