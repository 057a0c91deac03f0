package analyze

import "github.com/ebpfrec/ebpfrec/internal/safetext"

// forTerminal returns a copy of s whose text (names from the traced host:
// process and file names, stream and tracer names, host and kernel) is
// escaped for a terminal by safetext; WriteText prints the copy. JSON
// output keeps the exact values.
func (s *Summary) forTerminal() *Summary {
	c := *s
	f := safetext.Field
	c.Recording, c.RecordingID, c.Host, c.Kernel = f(s.Recording), f(s.RecordingID), f(s.Host), f(s.Kernel)
	c.Streams = mapSlice(s.Streams, func(v StreamCount) StreamCount { v.Stream, v.Tracer = f(v.Stream), f(v.Tracer); return v })
	c.TopProcesses = mapSlice(s.TopProcesses, func(v ProcessCount) ProcessCount { v.Comm = f(v.Comm); return v })
	c.TopExecs = mapSlice(s.TopExecs, func(v NameCount) NameCount { v.Name = f(v.Name); return v })
	c.TopFiles = mapSlice(s.TopFiles, func(v FileCount) FileCount { v.Path, v.Errors = f(v.Path), mapSlice(v.Errors, f); return v })
	c.TCPPeers = mapSlice(s.TCPPeers, func(v PeerCount) PeerCount { v.Peer, v.Comms = f(v.Peer), mapSlice(v.Comms, f); return v })
	c.Loss = mapSlice(s.Loss, func(v StreamLoss) StreamLoss { v.Stream = f(v.Stream); return v })
	c.KernelMissedUncounted = mapSlice(s.KernelMissedUncounted, f)
	c.Warnings = mapSlice(s.Warnings, f)
	return &c
}

// mapSlice returns fn applied to each element of in, in a new slice (nil
// for nil).
func mapSlice[T any](in []T, fn func(T) T) []T {
	if in == nil {
		return nil
	}
	out := make([]T, len(in))
	for i, v := range in {
		out[i] = fn(v)
	}
	return out
}
