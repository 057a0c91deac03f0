// Package proctable loads the process table of a recording (its proc
// stream, bpf/tracers/proc) for replay, analyze and the commands: it needs
// no privileges and no cgo, only the recording.
package proctable

import (
	"errors"
	"fmt"
	"io"

	"github.com/ebpfrec/ebpfrec/bpf/tracers/proc"
	"github.com/ebpfrec/ebpfrec/store"
)

// Streams returns the names of the recording's proc streams
// (proc.IsStream; none for a recording made with NoProc or by an older
// build).
func Streams(meta store.Meta) []string {
	var out []string
	for _, s := range meta.Streams {
		if proc.IsStream(s.Tracer, s.Name, s.EventType, s.Object != nil) {
			out = append(out, s.Name)
		}
	}
	return out
}

// Load reads the proc streams of the recording in dir into a table, built
// (safe for concurrent Resolves). A
// recording without one gives an empty table. Damaged batches are passed
// over, as every reader of a recording does (the events they held are
// missing from the table too); an event that does not decode is skipped
// and counted in bad. Other read errors end the load.
func Load(dir string) (t *proc.Table, bad int, err error) {
	t, bad, _, err = LoadSeq(dir)
	return t, bad, err
}

// LoadSeq is Load that also returns the sequence number of the last batch
// of the proc streams it read (0: none), for a follower: the proc events
// of later batches are the ones to add to the table (proc.Table.Extend).
func LoadSeq(dir string) (t *proc.Table, bad int, last uint64, err error) {
	t = proc.NewTable()
	r, err := store.Open(dir, store.ReaderOptions{})
	if err != nil {
		return t, 0, 0, fmt.Errorf("proctable: %w", err)
	}
	names := Streams(r.Meta())
	r.Close()
	if len(names) == 0 {
		t.Len()
		return t, 0, 0, nil
	}
	r, err = store.Open(dir, store.ReaderOptions{Streams: names})
	if err != nil {
		return t, 0, 0, fmt.Errorf("proctable: %w", err)
	}
	defer r.Close()
	var ev proc.Event
	for {
		b, err := r.Next()
		if err == io.EOF {
			t.Len() // built here, so that its readers only read it
			return t, bad, last, nil
		}
		if err != nil {
			var ce *store.CorruptError
			if errors.As(err, &ce) {
				continue
			}
			return t, bad, last, fmt.Errorf("proctable: %w", err)
		}
		last = b.Seq
		for i := range b.Events {
			if err := proc.Decode(b.Events[i].Raw, &ev); err != nil {
				bad++
				continue
			}
			t.Add(&ev)
		}
	}
}
