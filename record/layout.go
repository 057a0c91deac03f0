package record

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"

	"github.com/ebpfrec/ebpfrec/bpf/btflayout"
)

// ErrUnknownStruct is returned for a stream's struct that is not in its
// collection's BTF.
var ErrUnknownStruct = errors.New("struct not in the object's BTF")

// StructLayout returns the marshalled layout (bpf/btflayout) of the struct
// called name in spec's BTF, in spec's byte order: what a stream stores so
// that its events decode by their fields. A struct that is not there is an
// error listing the structs that are (the compiler keeps a struct in the
// BTF only if something uses it: bpf2go's -type needs the same, e.g. an
// unused global pointer to it).
func StructLayout(spec *ebpf.CollectionSpec, name string) ([]byte, error) {
	if spec.Types == nil {
		return nil, fmt.Errorf("struct %s: %w (the object has no BTF: compile it with -g)", name, ErrUnknownStruct)
	}
	var st *btf.Struct
	if err := spec.Types.TypeByName(name, &st); err != nil {
		return nil, fmt.Errorf("struct %s: %w (structs: %s)", name, ErrUnknownStruct, structNames(spec.Types))
	}
	l, err := btflayout.New(st, spec.ByteOrder)
	if err != nil {
		return nil, err
	}
	return l.Marshal()
}

// structNames lists the named structs of a BTF spec.
func structNames(s *btf.Spec) string {
	var names []string
	for t, err := range s.All() {
		if err != nil {
			break
		}
		if st, ok := t.(*btf.Struct); ok && st.Name != "" {
			names = append(names, st.Name)
		}
	}
	sort.Strings(names)
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}
