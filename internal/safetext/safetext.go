// Package safetext renders text that came from a recording (process names,
// file names, stream and tracer names, metadata, values in query results)
// for a terminal. Those bytes come from the traced host, or from whoever
// wrote the recording, and a terminal acts on some of them: an escape
// sequence can rewrite the screen, set the window title or the clipboard, a
// carriage return or a newline can forge a line, a bidi override can make a
// name read as another. Every text output of ebpfrec passes such values
// through this package; it is the one place that decides what is shown
// raw.
//
// What is escaped, in a visible form:
//   - C0 controls and DEL: \t, \n, \r, else \xNN (\x1b for ESC);
//   - bytes that are not UTF-8: \xNN, one per byte;
//   - C1 controls U+0080..U+009F (some terminals act on their UTF-8 form):
//     \uNNNN;
//   - the bidi controls (U+061C, U+200E, U+200F, U+202A..U+202E,
//     U+2066..U+2069) and the line and paragraph separators U+2028,
//     U+2029: \uNNNN.
//
// Everything else, ordinary UTF-8 of any script included, is kept. A
// backslash is kept too (paths and arguments hold them), so the escaped
// form is for reading, not for reversing: CSV and JSON outputs keep the
// data exact.
package safetext

import (
	"encoding/binary"
	"unicode/utf8"
)

const hexDigits = "0123456789abcdef"

// escapedRune says whether r (a valid, decoded rune) is shown escaped.
func escapedRune(r rune) bool {
	switch {
	case r < 0x20 || r == 0x7f:
		return true
	case r >= 0x80 && r <= 0x9f: // C1
		return true
	case r == 0x061c, r == 0x200e, r == 0x200f, r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069:
		return true // bidi controls
	case r == 0x2028, r == 0x2029:
		return true
	}
	return false
}

// clean reports whether s needs no escaping: the common case, checked
// without allocating (a rune is at most 4 bytes: converting those to a
// string does not allocate).
func clean[T string | []byte](s T, keepNewline bool) bool {
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if (c < 0x20 || c == 0x7f) && !(keepNewline && c == '\n') {
				return false
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(string(s[i:min(i+utf8.UTFMax, len(s))]))
		if r == utf8.RuneError && size == 1 || escapedRune(r) {
			return false
		}
		i += size
	}
	return true
}

// asciiNoDEL8 says whether the 8 bytes of x are all ASCII but DEL (see
// printable8).
func asciiNoDEL8(x uint64) bool {
	const lo, hi = 0x0101010101010101, 0x8080808080808080
	return x&hi == 0 && (x+lo)&hi == 0
}

// printable8 says whether the 8 bytes of x are all in 0x20..0x7e.
func printable8(x uint64) bool {
	const lo, hi = 0x0101010101010101, 0x8080808080808080
	// No byte >= 0x80; then none is 0x7f (+1 sets its top bit, carrying
	// into no other byte) and none < 0x20 (with its top bit set, -0x20
	// clears it, borrowing from no other byte).
	return x&hi == 0 && (x+lo)&hi == 0 && ((x|hi)-0x20*lo)&hi == hi
}

// Clean reports whether s is shown as it is (Field(s) == s).
func Clean(s string) bool { return clean(s, false) }

// CleanBytes is Clean of a line being built: replay checks each line it
// prints, and most need nothing.
func CleanBytes(b []byte) bool {
	for len(b) >= 8 && printable8(binary.LittleEndian.Uint64(b)) {
		b = b[8:] // most lines: eight bytes at a time
	}
	return clean(b, false)
}

// Field returns s with every control character, invalid byte and bidi
// control escaped (see the package comment): one value on one line.
func Field(s string) string {
	if clean(s, false) {
		return s
	}
	return string(appendEscaped(make([]byte, 0, len(s)+16), s, false))
}

// AppendField appends Field(s) to dst.
func AppendField(dst []byte, s string) []byte {
	if clean(s, false) {
		return append(dst, s...)
	}
	return appendEscaped(dst, s, false)
}

// Lines is Field but keeps newlines: for a message of several lines whose
// layout matters (DuckDB's errors point at the SQL with a caret on the
// next line). Use Field for anything that must stay on one line.
func Lines(s string) string {
	if clean(s, true) {
		return s
	}
	return string(appendEscaped(make([]byte, 0, len(s)+16), s, true))
}

func appendEscaped(dst []byte, s string, keepNewline bool) []byte {
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '\n' && keepNewline:
				dst = append(dst, c)
			case c == '\n':
				dst = append(dst, `\n`...)
			case c == '\t':
				dst = append(dst, `\t`...)
			case c == '\r':
				dst = append(dst, `\r`...)
			case c < 0x20 || c == 0x7f:
				dst = append(dst, '\\', 'x', hexDigits[c>>4], hexDigits[c&0xf])
			default:
				dst = append(dst, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			dst = append(dst, '\\', 'x', hexDigits[c>>4], hexDigits[c&0xf])
		case escapedRune(r):
			dst = appendU(dst, r)
		default:
			dst = append(dst, s[i:i+size]...)
		}
		i += size
	}
	return dst
}

// appendU appends \uNNNN (r < 0x10000).
func appendU(dst []byte, r rune) []byte {
	return append(dst, '\\', 'u', hexDigits[r>>12&0xf], hexDigits[r>>8&0xf], hexDigits[r>>4&0xf], hexDigits[r&0xf])
}

// JSON returns the JSON text b with DEL, the C1 controls, bidi controls
// and line separators that JSON allows raw inside strings written as
// \uNNNN escapes, and any byte that is not UTF-8 as \ufffd, so that JSON printed
// on a terminal is as safe as text and still decodes to the same values.
// b must be valid JSON (as encoding/json writes it): those characters can
// then only be inside strings, where the escape means the same character.
// The C0 controls JSON already escapes; the whitespace between its tokens
// is left alone.
func JSON(b []byte) []byte {
	i := 0
	for i+8 <= len(b) && asciiNoDEL8(binary.LittleEndian.Uint64(b[i:])) {
		i += 8 // replay --format json checks every line
	}
	for i < len(b) && b[i] < utf8.RuneSelf && b[i] != 0x7f {
		i++
	}
	if i == len(b) {
		return b
	}
	out := make([]byte, 0, len(b)+16)
	out = append(out, b[:i]...)
	for i < len(b) {
		c := b[i]
		if c < utf8.RuneSelf {
			if c == 0x7f {
				out = appendU(out, 0x7f)
			} else {
				out = append(out, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRune(b[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			out = append(out, `\ufffd`...)
		case escapedRune(r):
			out = appendU(out, r)
		default:
			out = append(out, b[i:i+size]...)
		}
		i += size
	}
	return out
}
