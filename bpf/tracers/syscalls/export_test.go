package syscalls

import "github.com/ebpfrec/ebpfrec/bpf/tracers"

// VariantNoCPU is a test-only build of the programs that writes the
// earlier 32-byte event, without the cpu field (SYS_NO_CPU), for the
// benchmark that measures what the field costs.
const VariantNoCPU = "test-no-cpu"

// NewWithNoCPU returns the tracer with, after its own variants, the
// test-only VariantNoCPU (select it with Options.Variant).
func NewWithNoCPU(opts tracers.Options) *Tracer {
	t := New(opts)
	t.SetVariants(
		tracers.Variant{Name: VariantTaskStorage, Spec: loadBpf, Check: checkTaskStorage},
		tracers.Variant{Name: VariantHash, Spec: loadBpfHash},
		tracers.Variant{Name: VariantNoCPU, Spec: loadBpfNoCPU, Check: checkTaskStorage},
	)
	return t
}
