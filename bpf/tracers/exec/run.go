package exec

import (
	"context"

	"github.com/ebpfrec/ebpfrec/bpf"
	"github.com/ebpfrec/ebpfrec/bpf/tracers"
)

// Run reads and decodes the tracer's events into out until ctx ends.
func (t *Tracer) Run(ctx context.Context, ectx *bpf.EventContext, out *bpf.Queue[[]bpf.Span]) {
	tracers.Run(ctx, t, ectx, out)
}
