package btflayout

import (
	"encoding/hex"
	"strconv"
)

// AppendText appends v, a value of field f, as text: integers in decimal,
// bools as true or false, enums as NAME(value) (the value alone if the enum
// does not name it), text quoted (Go syntax, followed by ... if truncated),
// lists in brackets and bytes in hex. The text is printable ASCII.
func AppendText(dst []byte, f *Field, v *Value) []byte {
	switch f.Kind {
	case Int:
		return strconv.AppendInt(dst, v.Int(), 10)
	case Uint:
		return strconv.AppendUint(dst, v.Bits, 10)
	case Bool:
		return strconv.AppendBool(dst, v.Bits != 0)
	case Enum:
		n := enumValue(f, v)
		if v.Text == "" {
			return n
		}
		dst = append(dst, v.Text...)
		dst = append(dst, '(')
		dst = append(dst, n...)
		return append(dst, ')')
	case Text:
		dst = strconv.AppendQuoteToASCII(dst, v.Text)
		if v.Truncated {
			dst = append(dst, "..."...)
		}
		return dst
	case List:
		dst = append(dst, '[')
		for i := range v.List {
			if i > 0 {
				dst = append(dst, ' ')
			}
			dst = AppendText(dst, f.Elem, &v.List[i])
		}
		return append(dst, ']')
	}
	return hex.AppendEncode(dst, v.Raw)
}

func enumValue(f *Field, v *Value) []byte {
	var b [24]byte
	if signedEnum(f) {
		return strconv.AppendInt(b[:0], int64(signExtend(v.Bits, enumBits(f))), 10)
	}
	return strconv.AppendUint(b[:0], v.Bits, 10)
}

func enumBits(f *Field) uint {
	if f.Bits != 0 {
		return uint(f.Bits)
	}
	return uint(f.Size) * 8
}

// signedEnum says whether f's enum names a negative value (the BTF of older
// compilers does not flag signed enums).
func signedEnum(f *Field) bool {
	return f.Signed
}

// JSON returns v, a value of field f, as a value for encoding/json:
// int64, uint64, bool, string (text; an enum's name, or its value when
// unnamed), []any (lists) or []byte (bytes, base64 in JSON).
func JSON(f *Field, v *Value) any {
	switch f.Kind {
	case Int:
		return v.Int()
	case Uint:
		return v.Bits
	case Bool:
		return v.Bits != 0
	case Enum:
		if v.Text != "" {
			return v.Text
		}
		if signedEnum(f) {
			return int64(signExtend(v.Bits, enumBits(f)))
		}
		return v.Bits
	case Text:
		return v.Text
	case List:
		l := make([]any, len(v.List))
		for i := range v.List {
			l[i] = JSON(f.Elem, &v.List[i])
		}
		return l
	}
	return v.Raw
}
