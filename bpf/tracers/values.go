package tracers

import (
	"math"
	"strconv"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Readable values: how replay's text shows return values, durations and
// lists; the JSON and export keep the exact values and add the errno name.

// maxErrno is the largest errno a syscall returns as -errno: the kernel's
// IS_ERR_VALUE range, -4095..-1. Other negative values are not errors.
const maxErrno = 4095

// kernelErrnos names the errnos that only the kernel uses
// (include/linux/errno.h): a syscall interrupted by a signal returns one
// to the syscall tracepoints before it is restarted or turned into EINTR.
// golang.org/x/sys/unix names only the user-visible ones.
var kernelErrnos = map[int64]string{
	512: "ERESTARTSYS", 513: "ERESTARTNOINTR", 514: "ERESTARTNOHAND", 515: "ENOIOCTLCMD",
	516: "ERESTART_RESTARTBLOCK", 517: "EPROBE_DEFER", 518: "EOPENSTALE", 519: "ENOPARAM",
	521: "EBADHANDLE", 522: "ENOTSYNC", 523: "EBADCOOKIE", 524: "ENOTSUPP", 525: "ETOOSMALL",
	526: "ESERVERFAULT", 527: "EBADTYPE", 528: "EJUKEBOX", 529: "EIOCBQUEUED", 530: "ERECALLCONFLICT",
	531: "ENOGRACE",
}

// ErrnoName returns the name of the error a syscall's return value ret
// stands for (-2: "ENOENT"), or "" if ret is not an error (0 or more, or
// below -4095). An errno without a name is "errno_N".
func ErrnoName(ret int64) string {
	if ret >= 0 || ret < -maxErrno {
		return ""
	}
	if name := unix.ErrnoName(syscall.Errno(-ret)); name != "" {
		return name
	}
	if name := kernelErrnos[-ret]; name != "" {
		return name
	}
	return "errno_" + strconv.FormatInt(-ret, 10)
}

// AppendRet appends " key=RET", and " (ENAME)" if RET is an error
// (ErrnoName).
func AppendRet(dst []byte, key string, ret int64) []byte {
	dst = AppendInt(dst, key, ret)
	if name := ErrnoName(ret); name != "" {
		dst = append(append(append(dst, " ("...), name...), ')')
	}
	return dst
}

// AppendDuration appends " key=D" with D in human units and three
// significant digits at most: 812ns, 1.23µs, 12.3ms, 1.5s; from 1000 s on
// as time.Duration prints it, to the second (20m34s).
func AppendDuration(dst []byte, key string, ns uint64) []byte {
	dst = appendKey(dst, key)
	if ns < 1000 {
		return append(strconv.AppendUint(dst, ns, 10), "ns"...)
	}
	units := [...]struct {
		scale float64
		name  string
	}{{1e3, "µs"}, {1e6, "ms"}, {1e9, "s"}}
	for i, u := range units {
		v := float64(ns) / u.scale
		digits := 0
		switch {
		case v < 10:
			digits = 2
		case v < 100:
			digits = 1
		}
		p := math.Pow(10, float64(digits))
		v = math.Round(v*p) / p
		if v >= 1000 && i < len(units)-1 {
			continue // rounds up into the next unit
		}
		if v >= 1000 {
			break
		}
		return append(strconv.AppendFloat(dst, v, 'f', -1, 64), u.name...)
	}
	return append(dst, (time.Duration(min(ns, math.MaxInt64)).Round(time.Second)).String()...)
}

// AppendList appends " key=[a b 'c d']": the values quoted as a shell
// would need them (single quotes, a quote inside as '\”), "..." last if
// the list was cut. Control characters are left as they are, for the line's
// printer to escape (internal/safetext), as replay does.
func AppendList(dst []byte, key string, vals []string, truncated bool) []byte {
	dst = append(appendKey(dst, key), '[')
	for i, v := range vals {
		if i > 0 {
			dst = append(dst, ' ')
		}
		dst = appendShellWord(dst, v)
	}
	if truncated {
		if len(vals) > 0 {
			dst = append(dst, ' ')
		}
		dst = append(dst, "..."...)
	}
	return append(dst, ']')
}

func appendShellWord(dst []byte, s string) []byte {
	plain := s != ""
	for i := 0; i < len(s) && plain; i++ {
		c := s[i]
		plain = 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
			c == '_' || c == '@' || c == '%' || c == '+' || c == '=' || c == ':' || c == ',' || c == '.' || c == '/' || c == '-'
	}
	if plain {
		return append(dst, s...)
	}
	dst = append(dst, '\'')
	for i := 0; i < len(s); i++ {
		if s[i] == '\'' {
			dst = append(dst, `'\''`...)
		} else {
			dst = append(dst, s[i])
		}
	}
	return append(dst, '\'')
}

// errnoNames holds a pointer per errno name, for ErrnoPtr.
var errnoNames = sync.OnceValue(func() *[maxErrno + 1]*string {
	var names [maxErrno + 1]*string
	for n := int64(1); n <= maxErrno; n++ {
		if name := ErrnoName(-n); name != "errno_"+strconv.FormatInt(n, 10) {
			names[n] = &name
		}
	}
	return &names
})

// ErrnoPtr is ErrnoName as a pointer for a nullable JSON or Parquet
// value: nil if ret is not an error. It allocates only for an errno
// without a name; the others are shared: never write through it.
func ErrnoPtr(ret int64) *string {
	if ret >= 0 || ret < -maxErrno {
		return nil
	}
	if p := errnoNames()[-ret]; p != nil {
		return p
	}
	name := ErrnoName(ret)
	return &name
}
