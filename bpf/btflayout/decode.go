package btflayout

import (
	"bytes"
	"encoding/binary"
	"fmt"
)

// Value is a decoded field. Which part holds the value depends on the
// field's Kind.
type Value struct {
	// Bits is the value of an Int (two's complement: see Int), Uint, Bool
	// (0 or 1... or whatever byte the program wrote) and Enum.
	Bits uint64
	// Text is a Text's characters up to the first NUL, and an Enum's name
	// (empty when the enum does not name the value).
	Text string
	// Truncated is set on a Text whose array holds no NUL: the program's
	// text may have been longer.
	Truncated bool
	// Raw is a Bytes field's bytes; it aliases the event.
	Raw []byte
	// List is a List's elements.
	List []Value
}

// Int returns an Int's value.
func (v *Value) Int() int64 { return int64(v.Bits) }

// Decode decodes the event raw into one value per field of l (vals[i] for
// l.Fields[i]), reusing vals (and the lists in it) when it has room. An
// event shorter than the struct is an error; bytes after it (a perf
// sample's padding) are ignored. Raw values alias raw.
func (l *Layout) Decode(raw []byte, vals []Value) ([]Value, error) {
	if uint64(len(raw)) < uint64(l.Size) {
		return vals, fmt.Errorf("%w: struct %s: event of %d bytes, the struct has %d", ErrLayout, l.Name, len(raw), l.Size)
	}
	if cap(vals) < len(l.Fields) {
		vals = make([]Value, len(l.Fields))
	}
	vals = vals[:len(l.Fields)]
	le := l.Order == binary.LittleEndian
	for i := range l.ops {
		p := &l.ops[i]
		v := &vals[i]
		o := p.off
		switch p.code {
		case opU8:
			v.Bits = uint64(raw[o])
		case opI8:
			v.Bits = uint64(int64(int8(raw[o])))
		case opU16:
			v.Bits = uint64(binary.LittleEndian.Uint16(raw[o:]))
		case opI16:
			v.Bits = uint64(int64(int16(binary.LittleEndian.Uint16(raw[o:]))))
		case opU32:
			v.Bits = uint64(binary.LittleEndian.Uint32(raw[o:]))
		case opI32:
			v.Bits = uint64(int64(int32(binary.LittleEndian.Uint32(raw[o:]))))
		case opU64:
			v.Bits = binary.LittleEndian.Uint64(raw[o:])
		case opText:
			b := raw[o : o+p.size]
			n := bytes.IndexByte(b, 0)
			v.Truncated = n < 0
			if n < 0 {
				n = len(b)
			}
			v.Text = string(b[:n])
		case opList:
			f := &l.Fields[i]
			b := raw[o : o+p.size]
			n := int(f.Len)
			if cap(v.List) < n {
				v.List = make([]Value, n)
			}
			v.List = v.List[:n]
			es := f.Elem.Size
			switch p.elem {
			case opU32:
				for j := range v.List {
					v.List[j].Bits = uint64(binary.LittleEndian.Uint32(b[uint32(j)*4:]))
				}
			case opU8:
				for j := range v.List {
					v.List[j].Bits = uint64(b[j])
				}
			case opI8:
				for j := range v.List {
					v.List[j].Bits = uint64(int64(int8(b[j])))
				}
			default:
				for j := range v.List {
					scalar(f.Elem, b[uint32(j)*es:uint32(j+1)*es], le, &v.List[j])
				}
			}
		case opEnum32:
			u := uint64(binary.LittleEndian.Uint32(raw[o:]))
			v.Bits = u
			name := ""
			for j, k := range p.keys {
				if k == u {
					name = p.names[j]
					break
				}
			}
			// Written only when it changes: a pointer write costs a write
			// barrier while the collector runs.
			if v.Text != name {
				v.Text = name
			}
		case opBytes:
			if p.size == 0 || len(v.Raw) != int(p.size) || &v.Raw[0] != &raw[o] {
				v.Raw = raw[o : o+p.size]
			}
		case opBitfieldLE:
			// Little endian: the bytes as one number, shifted and masked.
			var u uint64
			for j := int(p.size) - 1; j >= 0; j-- {
				u = u<<8 | uint64(raw[o+uint32(j)])
			}
			u = u >> p.shift & p.mask
			if p.signed {
				u = signExtend(u, uint(p.bits))
			}
			v.Bits = u
		case opBitfield:
			bitfield(&l.Fields[i], raw[o:o+p.size], le, v)
		default:
			scalar(&l.Fields[i], raw[o:o+p.size], le, v)
		}
	}
	return vals, nil
}

// An op is how Decode decodes a field: the common cases inline, in a
// compact array that one loop walks.
type op struct {
	code        uint8
	shift, bits uint8 // opBitfieldLE
	signed      bool  // opBitfieldLE
	off, size   uint32
	mask        uint64 // opBitfieldLE
	elem        uint8  // opList: opU32, opU8, opI8 or opScalar
	// opEnum32: an enum's names, few enough to search in order.
	keys  []uint64
	names []string
}

const (
	opScalar = iota // scalar(): big-endian integers, enums, bools
	opU8
	opI8
	opU16
	opI16
	opU32
	opI32
	opU64
	opText
	opList
	opBytes
	opBitfield
	opBitfieldLE
	opEnum32
)

// compile sets l.ops from l.Fields.
func (l *Layout) compile() {
	l.ops = make([]op, len(l.Fields))
	le := l.Order == binary.LittleEndian
	for i := range l.Fields {
		f := &l.Fields[i]
		p := &l.ops[i]
		p.off, p.size = f.Offset, f.Size
		switch {
		case f.Kind == Text:
			p.code = opText
		case f.Kind == List:
			p.code = opList
			if le && f.Elem.Bits == 0 {
				switch {
				case f.Elem.Kind == Uint && f.Elem.Size == 4:
					p.elem = opU32
				case f.Elem.Kind == Uint && f.Elem.Size == 1:
					p.elem = opU8
				case f.Elem.Kind == Int && f.Elem.Size == 1:
					p.elem = opI8
				}
			}
		case f.Kind == Enum && le && f.Bits == 0 && f.Size == 4 && len(f.Names) <= 16:
			p.code = opEnum32
			for k, n := range f.Names {
				p.keys = append(p.keys, k)
				p.names = append(p.names, n)
			}
		case f.Kind == Bytes:
			p.code = opBytes
		case f.Bits != 0 && le && f.Kind != Enum:
			p.code, p.shift, p.bits, p.signed = opBitfieldLE, f.BitOffset, f.Bits, f.Kind == Int
			p.mask = ^uint64(0)
			if f.Bits < 64 {
				p.mask = 1<<f.Bits - 1
			}
		case f.Bits != 0:
			p.code = opBitfield
		case f.Kind == Bool && f.Size == 1 && f.Bits == 0:
			p.code = opU8
		case (f.Kind == Int || f.Kind == Uint) && (le || f.Size == 1):
			signed := f.Kind == Int
			switch f.Size {
			case 1:
				p.code = pick(signed, opI8, opU8)
			case 2:
				p.code = pick(signed, opI16, opU16)
			case 4:
				p.code = pick(signed, opI32, opU32)
			case 8:
				p.code = opU64
			}
		}
	}
}

func pick(c bool, a, b uint8) uint8 {
	if c {
		return a
	}
	return b
}

// scalar decodes an Int, Uint, Bool or Enum of f.Size bytes from b.
func scalar(f *Field, b []byte, le bool, v *Value) {
	var u uint64
	switch f.Size {
	case 1:
		u = uint64(b[0])
		if f.Kind == Int {
			u = uint64(int64(int8(b[0])))
		}
	case 2:
		var x uint16
		if le {
			x = binary.LittleEndian.Uint16(b)
		} else {
			x = binary.BigEndian.Uint16(b)
		}
		u = uint64(x)
		if f.Kind == Int {
			u = uint64(int64(int16(x)))
		}
	case 4:
		var x uint32
		if le {
			x = binary.LittleEndian.Uint32(b)
		} else {
			x = binary.BigEndian.Uint32(b)
		}
		u = uint64(x)
		if f.Kind == Int {
			u = uint64(int64(int32(x)))
		}
	case 8:
		if le {
			u = binary.LittleEndian.Uint64(b)
		} else {
			u = binary.BigEndian.Uint64(b)
		}
	}
	v.Bits = u
	if f.Kind == Enum {
		v.Text = f.Names[u]
	}
}

// bitfield decodes f's Bits bits from b (f.Size bytes).
func bitfield(f *Field, b []byte, le bool, v *Value) {
	var u uint64
	n := uint(len(b))
	if le {
		for i := int(n) - 1; i >= 0; i-- {
			u = u<<8 | uint64(b[i])
		}
		u >>= f.BitOffset
	} else {
		for i := range b {
			u = u<<8 | uint64(b[i])
		}
		u >>= n*8 - uint(f.BitOffset) - uint(f.Bits)
	}
	if f.Bits < 64 {
		u &= 1<<f.Bits - 1
	}
	if f.Kind == Int {
		u = signExtend(u, uint(f.Bits))
	}
	v.Bits = u
	if f.Kind == Enum {
		v.Text = f.Names[u&(1<<(f.Size*8)-1)]
	}
}

func signExtend(u uint64, bits uint) uint64 {
	if bits == 0 || bits >= 64 {
		return u
	}
	s := 64 - bits
	return uint64(int64(u<<s) >> s)
}
