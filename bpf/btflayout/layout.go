// Package btflayout decodes the events of a BPF program from the BTF of the
// C struct it writes: a Layout is built from a btf.Struct and a byte order,
// lists the struct's members as typed fields (nested structs and anonymous
// members flattened with dotted names) and decodes an event's bytes into
// their values. A Layout marshals to bytes (the struct's BTF with its
// dependencies, the byte order and the struct's name) and back, so that a
// recording can carry the layouts of its streams.
//
// The bytes a layout is read from are untrusted (a recording may be
// damaged or hostile): Unmarshal and New bound what they accept (MaxSize,
// MaxFields, maxDepth) and return errors, never panic.
package btflayout

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"

	"github.com/cilium/ebpf/btf"
)

// Kind is how a field's bytes are typed.
type Kind uint8

// The kinds of fields.
const (
	// Int is a signed integer of 1, 2, 4 or 8 bytes, or a signed bitfield.
	Int Kind = iota + 1
	// Uint is an unsigned integer, an unsigned bitfield or a pointer.
	Uint
	// Bool is a C _Bool.
	Bool
	// Enum is an enum: its value and, if the enum names it, its name.
	Enum
	// Text is a char array, up to its first NUL.
	Text
	// List is a fixed array of Elem.
	List
	// Bytes is anything the layout does not type (unions, floats, arrays of
	// structs, 128-bit integers): the member's bytes as they are.
	Bytes
)

var kindNames = [...]string{Int: "int", Uint: "uint", Bool: "bool", Enum: "enum", Text: "text", List: "list", Bytes: "bytes"}

// String names the kind ("int", "text", ...), as layouts print it.
func (k Kind) String() string {
	if int(k) < len(kindNames) && kindNames[k] != "" {
		return kindNames[k]
	}
	return fmt.Sprintf("Kind(%d)", k)
}

// Limits on what a layout accepts, so that hostile BTF cannot make the
// decoder allocate or work without bound.
const (
	// MaxSize bounds a marshalled layout, and a struct's size, in bytes.
	MaxSize = 1 << 20
	// MaxFields bounds the fields of a layout, counting those of lists'
	// elements once.
	MaxFields = 4096
	// maxDepth bounds the nesting of structs and of type qualifiers.
	maxDepth = 32
)

// ErrLayout is wrapped by every error about a struct or marshalled layout
// that cannot be decoded.
var ErrLayout = errors.New("btflayout")

// Field is one typed member of a layout.
type Field struct {
	// Name is the member's name, nested and anonymous members flattened
	// with dots (in.a, and x for a member of an anonymous struct).
	Name string
	// Kind says how its bytes are typed.
	Kind Kind
	// Offset is the field's first byte in the event; Size the bytes it
	// covers (for a bitfield, the bytes its bits touch).
	Offset, Size uint32
	// BitOffset (within the byte at Offset) and Bits describe a bitfield;
	// Bits is 0 for a whole member.
	BitOffset, Bits uint8
	// Type is the C type's name, as the BTF names it (empty for anonymous
	// types).
	Type string
	// Len and Elem describe a List (Len elements of Elem, whose Offset is
	// relative to the element) and a Text (Len bytes).
	Len  uint32
	Elem *Field
	// Names maps an Enum's values to their names; Signed says the enum is
	// signed (the BTF says so, or it names a negative value).
	Names  map[uint64]string
	Signed bool
}

// Layout is a struct's fields, typed from its BTF.
type Layout struct {
	// Name is the struct's name.
	Name string
	// Order is the byte order of the events (the host's that recorded them).
	Order binary.ByteOrder
	// Size is the struct's size: the least bytes an event must have.
	Size uint32
	// Fields are the struct's members in order.
	Fields []Field
	// Warnings say which members stay Bytes and why (once per layout, so
	// that a stream warns once).
	Warnings []string

	st  *btf.Struct
	ops []op
}

// New builds the layout of struct s whose events are in byte order order.
func New(s *btf.Struct, order binary.ByteOrder) (*Layout, error) {
	if s == nil {
		return nil, fmt.Errorf("%w: no struct", ErrLayout)
	}
	if order != binary.LittleEndian && order != binary.BigEndian {
		return nil, fmt.Errorf("%w: struct %s: byte order %v is neither little nor big endian", ErrLayout, s.Name, order)
	}
	if s.Size > MaxSize {
		return nil, fmt.Errorf("%w: struct %s: %d bytes, more than %d", ErrLayout, s.Name, s.Size, MaxSize)
	}
	l := &Layout{Name: s.Name, Order: order, Size: s.Size, st: s}
	b := &builder{l: l}
	if err := b.members("", s.Members, 0, s.Size, 0); err != nil {
		return nil, fmt.Errorf("%w: struct %s: %w", ErrLayout, s.Name, err)
	}
	uniqueNames(l.Fields)
	l.compile()
	return l, nil
}

// builder walks a struct's members into a layout's fields.
type builder struct {
	l      *Layout
	fields int
}

func (b *builder) warn(name, format string, args ...any) {
	b.l.Warnings = append(b.l.Warnings, fmt.Sprintf("member %s: ", name)+fmt.Sprintf(format, args...)+"; kept as bytes")
}

// members adds the members of a struct at byte offset base, size bytes.
func (b *builder) members(prefix string, ms []btf.Member, base, size uint32, depth int) error {
	if depth > maxDepth {
		return fmt.Errorf("structs nested deeper than %d", maxDepth)
	}
	for i := range ms {
		m := &ms[i]
		name := prefix + m.Name
		if uint64(m.Offset)+uint64(m.BitfieldSize) > uint64(size)*8 {
			return fmt.Errorf("member %s: bits %d+%d beyond the struct's %d bytes", name, m.Offset, m.BitfieldSize, size)
		}
		off := base + uint32(m.Offset/8)
		if m.BitfieldSize > 0 || m.Offset%8 != 0 {
			if err := b.bitfield(name, m, off, depth); err != nil {
				return err
			}
			continue
		}
		t, err := resolve(m.Type)
		if err != nil {
			return fmt.Errorf("member %s: %w", name, err)
		}
		if st, ok := t.(*btf.Struct); ok {
			p := name + "."
			if m.Name == "" {
				p = prefix
			}
			if uint64(m.Offset/8)+uint64(st.Size) > uint64(size) {
				return fmt.Errorf("member %s: %d bytes at %d beyond the struct's %d", name, st.Size, m.Offset/8, size)
			}
			if err := b.members(p, st.Members, off, st.Size, depth+1); err != nil {
				return err
			}
			continue
		}
		if m.Name == "" {
			name = fmt.Sprintf("%s_%d", prefix, m.Offset/8)
		}
		f, err := b.field(name, t, size-uint32(m.Offset/8))
		if err != nil {
			return err
		}
		f.Offset = off
		if err := b.add(f); err != nil {
			return err
		}
	}
	return nil
}

// uniqueNames renames fields whose name an earlier field has (BTF allows
// it, and flattening can make it) with a suffix _2, _3, ..., so that a
// name identifies a field in replay's JSON and export's columns.
func uniqueNames(fs []Field) {
	seen := make(map[string]bool, len(fs))
	for i := range fs {
		n := fs[i].Name
		for k := 2; seen[n]; k++ {
			n = fs[i].Name + "_" + strconv.Itoa(k)
		}
		seen[n] = true
		fs[i].Name = n
	}
}

func (b *builder) add(f Field) error {
	b.fields++
	if f.Elem != nil {
		b.fields++
	}
	if b.fields > MaxFields {
		return fmt.Errorf("more than %d fields", MaxFields)
	}
	b.l.Fields = append(b.l.Fields, f)
	return nil
}

// field types a member of type t (resolved) with at most room bytes left in
// its struct.
func (b *builder) field(name string, t btf.Type, room uint32) (Field, error) {
	f := Field{Name: name, Type: t.TypeName()}
	switch t := t.(type) {
	case *btf.Int:
		if k, ok := intKind(t); ok {
			f.Kind, f.Size = k, t.Size
		} else {
			b.warn(name, "%d-byte integer", t.Size)
			f.Kind, f.Size = Bytes, t.Size
		}
	case *btf.Enum:
		if !scalarSize(t.Size) {
			return f, fmt.Errorf("member %s: enum of %d bytes", name, t.Size)
		}
		f.Kind, f.Size = Enum, t.Size
		enumNames(&f, t)
	case *btf.Pointer:
		f.Kind, f.Size = Uint, 8
	case *btf.Array:
		et, err := resolve(t.Type)
		if err != nil {
			return f, fmt.Errorf("member %s: %w", name, err)
		}
		es, err := btf.Sizeof(et)
		if err != nil || es <= 0 {
			return f, fmt.Errorf("member %s: array of elements without a size", name)
		}
		if uint64(es)*uint64(t.Nelems) > uint64(room) {
			return f, fmt.Errorf("member %s: %d elements of %d bytes beyond the struct", name, t.Nelems, es)
		}
		f.Size, f.Len = uint32(es)*t.Nelems, t.Nelems
		if it, ok := et.(*btf.Int); ok && it.Size == 1 && (it.Encoding&btf.Char != 0 || it.Name == "char") {
			f.Kind = Text
			break
		}
		switch et.(type) {
		case *btf.Int, *btf.Enum, *btf.Pointer:
			e, err := b.field(name, et, uint32(es))
			if err != nil {
				return f, err
			}
			if e.Kind == Bytes {
				f.Kind = Bytes
				break
			}
			f.Kind, f.Elem = List, &e
		default:
			b.warn(name, "array of %s", kindOf(et))
			f.Kind = Bytes
		}
	default:
		sz, err := btf.Sizeof(t)
		if err != nil || sz < 0 {
			return f, fmt.Errorf("member %s: %s without a size", name, kindOf(t))
		}
		b.warn(name, "%s", kindOf(t))
		f.Kind, f.Size = Bytes, uint32(sz)
	}
	if f.Size > room {
		return f, fmt.Errorf("member %s: %d bytes beyond the struct", name, f.Size)
	}
	return f, nil
}

// bitfield adds a bitfield member at byte off.
func (b *builder) bitfield(name string, m *btf.Member, off uint32, depth int) error {
	t, err := resolve(m.Type)
	if err != nil {
		return fmt.Errorf("member %s: %w", name, err)
	}
	bits := uint32(m.BitfieldSize)
	f := Field{Name: name, Type: t.TypeName(), Offset: off, BitOffset: uint8(m.Offset % 8)}
	switch t := t.(type) {
	case *btf.Int:
		k, ok := intKind(t)
		if !ok {
			return fmt.Errorf("member %s: bitfield of a %d-byte integer", name, t.Size)
		}
		f.Kind = k
		if bits == 0 {
			bits = t.Size * 8
		}
	case *btf.Enum:
		f.Kind = Enum
		enumNames(&f, t)
		if bits == 0 {
			bits = t.Size * 8
		}
	default:
		return fmt.Errorf("member %s: bitfield of %s", name, kindOf(t))
	}
	if bits == 0 || bits > 64 || uint32(f.BitOffset)+bits > 64 {
		return fmt.Errorf("member %s: bitfield of %d bits at bit %d", name, bits, f.BitOffset)
	}
	f.Bits = uint8(bits)
	f.Size = (uint32(f.BitOffset) + bits + 7) / 8
	return b.add(f)
}

// enumNames fills f's names from t, keyed by the value as decoded (the
// bytes zero-extended); a value named twice keeps its first name.
func enumNames(f *Field, t *btf.Enum) {
	f.Signed = t.Signed
	f.Names = make(map[uint64]string, len(t.Values))
	for _, v := range t.Values {
		u := v.Value
		if t.Size < 8 {
			// clang's BTF flags no enum signed: C's enums are int unless
			// a value does not fit, so a 4-byte enum naming a value with
			// its top bit set most likely named a negative one.
			if int64(u) < 0 || t.Size == 4 && u >= 1<<31 {
				f.Signed = true
			}
			u &= 1<<(t.Size*8) - 1
		}
		if _, dup := f.Names[u]; !dup {
			f.Names[u] = v.Name
		}
	}
}

func scalarSize(n uint32) bool { return n == 1 || n == 2 || n == 4 || n == 8 }

func intKind(t *btf.Int) (Kind, bool) {
	if !scalarSize(t.Size) {
		return 0, false
	}
	switch {
	case t.Encoding&btf.Bool != 0:
		return Bool, true
	case t.Encoding&btf.Signed != 0:
		return Int, true
	}
	return Uint, true
}

// resolve skips typedefs and qualifiers, a bounded number of them.
func resolve(t btf.Type) (btf.Type, error) {
	for range maxDepth {
		switch q := t.(type) {
		case *btf.Typedef:
			t = q.Type
		case *btf.Const:
			t = q.Type
		case *btf.Volatile:
			t = q.Type
		case *btf.Restrict:
			t = q.Type
		case *btf.TypeTag:
			t = q.Type
		case nil:
			return nil, errors.New("no type")
		default:
			return t, nil
		}
	}
	return nil, fmt.Errorf("more than %d typedefs and qualifiers", maxDepth)
}

func kindOf(t btf.Type) string {
	switch t.(type) {
	case *btf.Union:
		return "union"
	case *btf.Struct:
		return "struct"
	case *btf.Float:
		return "float"
	case *btf.Array:
		return "array"
	case *btf.Void:
		return "void"
	}
	return fmt.Sprintf("%T", t)
}
