package proc

import "testing"

// TestIsStream: the proc stream is recognized by the registry's decision
// (tracers.DecoderOf), for the recorder and the readers alike; another
// tracer's stream, a user object's and the proc tracer's stream of an
// event type this build does not decode are not proc streams.
func TestIsStream(t *testing.T) {
	for _, c := range []struct {
		tracer, stream, eventType string
		fromObject                bool
		want                      bool
	}{
		{Name, StreamProc, EventType, false, true},
		{Name, "proc-renamed", EventType, false, true}, // a stream renamed when recorded
		{Name, StreamProc, "", false, true},            // recorded before event types were stored
		{Name, StreamProc, "proc.Event/0", false, false},
		{"exec", "exec", EventType, false, false},
		{"", StreamProc, EventType, false, false}, // a user object's stream
		{"", "custom", "struct event", false, false},
		{Name, StreamProc, EventType, true, false}, // a user object whose collection is called proc
	} {
		if got := IsStream(c.tracer, c.stream, c.eventType, c.fromObject); got != c.want {
			t.Errorf("IsStream(%q, %q, %q, %v) = %v, want %v", c.tracer, c.stream, c.eventType, c.fromObject, got, c.want)
		}
	}
}
