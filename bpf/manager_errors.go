package bpf

import "errors"

// Sentinel errors of Manager and MapManager. Every error these return for
// one of these conditions wraps the sentinel (match with errors.Is); errors
// from the kernel or cilium/ebpf are wrapped too, so errors.Is(err,
// ebpf.ErrNotSupported), errors.Is(err, os.ErrNotExist) or errors.As(err,
// &verifierErr) keep working.
var (
	// ErrManagerStopped: the Manager was stopped; it accepts no more work.
	ErrManagerStopped = errors.New("manager stopped")
	// ErrClosed: the MapManager was closed.
	ErrClosed = errors.New("map manager closed")
	// ErrTracerClosed: the ProcessTracer was closed; it instruments
	// nothing more (what it would attach would be held by nothing).
	ErrTracerClosed = errors.New("process tracer closed")
	// ErrUnknownSpec: no spec was given to LoadSpec under that name.
	ErrUnknownSpec = errors.New("unknown spec")
	// ErrUnknownCollection: no collection is loaded under that name.
	ErrUnknownCollection = errors.New("unknown collection")
	// ErrNotLoaded is an alias of ErrUnknownCollection: the collection's
	// spec may be known, but LoadCollection has not (successfully) run.
	ErrNotLoaded = ErrUnknownCollection
	// ErrUnknownProgram: the collection has no program of that name.
	ErrUnknownProgram = errors.New("unknown program")
	// ErrUnknownLink: no link of that name is attached.
	ErrUnknownLink = errors.New("unknown link")
	// ErrUnknownMap: the MapManager has no map of that name.
	ErrUnknownMap = errors.New("unknown map")
	// ErrAlreadyExists: a spec, collection, link or map of that name exists
	// already (attaching the same program twice to the same point is
	// refused).
	ErrAlreadyExists = errors.New("already exists")
	// ErrWrongProgramType: the program cannot be attached that way (e.g. a
	// tracepoint program given to AttachUprobe).
	ErrWrongProgramType = errors.New("wrong program type for this attachment")
	// ErrInvalidName: a name is empty or cannot be used as a pin file name.
	ErrInvalidName = errors.New("invalid name")
	// ErrNotOwned: the map belongs to a collection, not to the MapManager.
	ErrNotOwned = errors.New("map not owned by the map manager")
	// ErrIncompatiblePin: a map pinned under that name differs from the spec.
	ErrIncompatiblePin = errors.New("incompatible pinned map")
)
