package btflayout

import (
	"bytes"
	"encoding/binary"
	"fmt"

	"github.com/cilium/ebpf/btf"
)

// A marshalled layout: magic, version, byte order ('l' or 'b'), the
// struct's name (uint16 length, big endian, then the bytes) and the raw BTF
// of the struct and every type it uses (uint32 length, then the bytes, in
// the layout's byte order), pointers marshalled as pointers to void so that
// a pointer member does not pull in the types it points to.
const (
	magic   = "EBTL"
	version = 1
)

// Marshal returns the layout as bytes, for Unmarshal.
func (l *Layout) Marshal() ([]byte, error) {
	st := btf.Copy(l.st).(*btf.Struct)
	voidPointers(st, 0)
	bld, err := btf.NewBuilder([]btf.Type{st}, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: struct %s: %w", ErrLayout, l.Name, err)
	}
	raw, err := bld.Marshal(nil, &btf.MarshalOptions{Order: l.Order})
	if err != nil {
		return nil, fmt.Errorf("%w: struct %s: %w", ErrLayout, l.Name, err)
	}
	if len(l.Name) > 0xffff {
		return nil, fmt.Errorf("%w: struct name of %d bytes", ErrLayout, len(l.Name))
	}
	out := make([]byte, 0, len(magic)+2+2+len(l.Name)+4+len(raw))
	out = append(out, magic...)
	out = append(out, version, orderByte(l.Order))
	out = binary.BigEndian.AppendUint16(out, uint16(len(l.Name)))
	out = append(out, l.Name...)
	out = binary.BigEndian.AppendUint32(out, uint32(len(raw)))
	out = append(out, raw...)
	if len(out) > MaxSize {
		return nil, fmt.Errorf("%w: struct %s: layout of %d bytes, more than %d", ErrLayout, l.Name, len(out), MaxSize)
	}
	return out, nil
}

func orderByte(o binary.ByteOrder) byte {
	if o == binary.BigEndian {
		return 'b'
	}
	return 'l'
}

// voidPointers makes every pointer reachable from t through members,
// arrays, typedefs and qualifiers point to void.
func voidPointers(t btf.Type, depth int) {
	if depth > maxDepth {
		return
	}
	switch t := t.(type) {
	case *btf.Pointer:
		t.Target = &btf.Void{}
	case *btf.Struct:
		for i := range t.Members {
			voidPointers(t.Members[i].Type, depth+1)
		}
	case *btf.Union:
		for i := range t.Members {
			voidPointers(t.Members[i].Type, depth+1)
		}
	case *btf.Array:
		voidPointers(t.Type, depth+1)
	case *btf.Typedef:
		voidPointers(t.Type, depth+1)
	case *btf.Const:
		voidPointers(t.Type, depth+1)
	case *btf.Volatile:
		voidPointers(t.Type, depth+1)
	case *btf.Restrict:
		voidPointers(t.Type, depth+1)
	case *btf.TypeTag:
		voidPointers(t.Type, depth+1)
	}
}

// Unmarshal reads a layout that Marshal wrote. Damaged or hostile bytes
// give an error wrapping ErrLayout.
func Unmarshal(b []byte) (*Layout, error) {
	if len(b) > MaxSize {
		return nil, fmt.Errorf("%w: layout of %d bytes, more than %d", ErrLayout, len(b), MaxSize)
	}
	if len(b) < len(magic)+4 || string(b[:len(magic)]) != magic {
		return nil, fmt.Errorf("%w: not a layout (no %q header)", ErrLayout, magic)
	}
	b = b[len(magic):]
	if b[0] != version {
		return nil, fmt.Errorf("%w: layout version %d, this build reads %d", ErrLayout, b[0], version)
	}
	var order binary.ByteOrder
	switch b[1] {
	case 'l':
		order = binary.LittleEndian
	case 'b':
		order = binary.BigEndian
	default:
		return nil, fmt.Errorf("%w: byte order %q is neither 'l' nor 'b'", ErrLayout, b[1])
	}
	n := int(binary.BigEndian.Uint16(b[2:]))
	b = b[4:]
	if len(b) < n+4 {
		return nil, fmt.Errorf("%w: layout truncated in the struct's name", ErrLayout)
	}
	name := string(b[:n])
	b = b[n:]
	m := binary.BigEndian.Uint32(b)
	b = b[4:]
	if uint64(len(b)) != uint64(m) {
		return nil, fmt.Errorf("%w: struct %s: BTF of %d bytes, %d follow", ErrLayout, name, m, len(b))
	}
	// Only raw BTF, in the stated order: an ELF file would reach the ELF
	// parser, which a layout has no use for.
	if len(b) < 2 || order.Uint16(b) != 0xeb9f {
		return nil, fmt.Errorf("%w: struct %s: no BTF header in the layout's byte order", ErrLayout, name)
	}
	spec, err := loadBTF(b)
	if err != nil {
		return nil, fmt.Errorf("%w: struct %s: BTF: %w", ErrLayout, name, err)
	}
	var st *btf.Struct
	for t, err := range spec.All() {
		if err != nil {
			return nil, fmt.Errorf("%w: struct %s: BTF: %w", ErrLayout, name, err)
		}
		if s, ok := t.(*btf.Struct); ok && s.Name == name {
			st = s
			break
		}
	}
	if st == nil {
		return nil, fmt.Errorf("%w: struct %s is not in the layout's BTF", ErrLayout, name)
	}
	return New(st, order)
}

// loadBTF parses raw BTF; the parser is cilium/ebpf's, which this package
// does not trust to reject every hostile input without a panic.
func loadBTF(b []byte) (spec *btf.Spec, err error) {
	defer func() {
		if r := recover(); r != nil {
			spec, err = nil, fmt.Errorf("malformed (the parser panicked: %v)", r)
		}
	}()
	return btf.LoadSpecFromReader(bytes.NewReader(b))
}
