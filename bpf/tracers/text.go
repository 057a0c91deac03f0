package tracers

import (
	"strconv"
	"strings"
)

// AppendStr appends " key=value" (no leading space if dst is empty); the
// value is quoted if it is empty or holds spaces, quotes or control bytes.
func AppendStr(dst []byte, key, val string) []byte {
	dst = appendKey(dst, key)
	if val == "" || strings.ContainsFunc(val, func(r rune) bool { return r <= ' ' || r == '"' || r == 0x7f || r == '\uFFFD' }) {
		return strconv.AppendQuote(dst, val)
	}
	return append(dst, val...)
}

// AppendUint appends " key=value".
func AppendUint(dst []byte, key string, v uint64) []byte {
	return strconv.AppendUint(appendKey(dst, key), v, 10)
}

// AppendInt appends " key=value".
func AppendInt(dst []byte, key string, v int64) []byte {
	return strconv.AppendInt(appendKey(dst, key), v, 10)
}

// AppendHex appends " key=0xvalue".
func AppendHex(dst []byte, key string, v uint64) []byte {
	return strconv.AppendUint(append(appendKey(dst, key), "0x"...), v, 16)
}

func appendKey(dst []byte, key string) []byte {
	if len(dst) > 0 && dst[len(dst)-1] != ' ' {
		dst = append(dst, ' ')
	}
	dst = append(dst, key...)
	return append(dst, '=')
}
