package tracers

import (
	"errors"
	"fmt"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
)

// Variant is one build of a tracer's BPF programs. A tracer whose programs
// need a kernel feature that older kernels lack keeps one variant per gap,
// newest first, built from the same C source (bpf2go with a -D switch), so
// that every variant has the programs and maps its Go objects name; Load
// uses the first variant this kernel can run.
type Variant struct {
	// Name names the variant in `ebpfrec tracers`, errors and
	// Options.Variant, e.g. "tp_btf" or "hash-state".
	Name string
	// Spec loads the variant's collection spec (bpf2go's loadXxx).
	Spec func() (*ebpf.CollectionSpec, error)
	// Check returns nil if this kernel can run the variant, or an error
	// saying what it lacks. nil Check: any kernel that runs the tracer.
	Check func() error
	// Note says in a few words what the variant gives up, if anything.
	Note string
}

// VariantChoice is the variant Load uses on this kernel, and why.
type VariantChoice struct {
	// Name is the chosen variant's name ("" if none fits).
	Name string `json:"name"`
	// Note is the chosen variant's Note.
	Note string `json:"note,omitempty"`
	// PassedOver says, for each variant before it, why this kernel cannot
	// run it ("name: reason").
	PassedOver []string `json:"passed_over,omitempty"`
	// Err is non-nil when no variant fits (or Options.Variant names one
	// this kernel cannot run).
	Err  error `json:"-"`
	spec func() (*ebpf.CollectionSpec, error)
}

// ErrNoVariant is wrapped by the error of a tracer none of whose variants
// this kernel can run.
var ErrNoVariant = errors.New("no variant of the tracer runs on this kernel")

// chooseVariant picks the first variant whose Check passes, or the one
// named want (which must pass too).
func chooseVariant(tracer string, vs []Variant, want string) VariantChoice {
	var ch VariantChoice
	names := make([]string, len(vs))
	for i, v := range vs {
		names[i] = v.Name
	}
	for _, v := range vs {
		if want != "" && v.Name != want {
			continue
		}
		var err error
		if v.Check != nil {
			err = v.Check()
		}
		if err != nil {
			ch.PassedOver = append(ch.PassedOver, v.Name+": "+err.Error())
			continue
		}
		ch.Name, ch.Note, ch.spec = v.Name, v.Note, v.Spec
		return ch
	}
	switch {
	case want != "" && len(ch.PassedOver) == 0:
		ch.Err = fmt.Errorf("tracer %s has no variant %q (variants: %s)", tracer, want, strings.Join(names, ", "))
	default:
		ch.Err = fmt.Errorf("tracer %s: %w: %s", tracer, ErrNoVariant, strings.Join(ch.PassedOver, "; "))
	}
	return ch
}

// BTFTracepointArgs returns how many arguments the kernel passes to the BTF
// tracepoint name (tp_btf programs see them after the context), from the
// prototype of btf_trace_NAME in the kernel's BTF.
func BTFTracepointArgs(name string) (int, error) {
	spec, err := kernelBTF()
	if err != nil {
		return 0, err
	}
	var td *btf.Typedef
	if err := spec.TypeByName("btf_trace_"+name, &td); err != nil {
		return 0, fmt.Errorf("tracepoint %s is not in the kernel's BTF: %w", name, err)
	}
	ptr, ok := td.Type.(*btf.Pointer)
	if !ok {
		return 0, fmt.Errorf("btf_trace_%s is a %T, not a pointer to a function", name, td.Type)
	}
	proto, ok := ptr.Target.(*btf.FuncProto)
	if !ok {
		return 0, fmt.Errorf("btf_trace_%s points to a %T, not a function prototype", name, ptr.Target)
	}
	if len(proto.Params) == 0 {
		return 0, fmt.Errorf("btf_trace_%s takes no context argument", name)
	}
	return len(proto.Params) - 1, nil
}
