package bpf

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"testing"
)

// inBounds is the reference bounds check: [off, off+size) within n bytes,
// computed without overflow.
func inBounds(n, off, size int) bool {
	return off >= 0 && size >= 0 && uint64(off)+uint64(size) <= uint64(n)
}

func TestReadU32U64(t *testing.T) {
	data := make([]byte, 16)
	binary.NativeEndian.PutUint32(data[4:], 0xdeadbeef)
	binary.NativeEndian.PutUint64(data[8:], 0x0123456789abcdef)

	if v, err := ReadU32(data, 4); err != nil || v != 0xdeadbeef {
		t.Errorf("ReadU32(4) = %#x, %v", v, err)
	}
	if v, err := ReadU64(data, 8); err != nil || v != 0x0123456789abcdef {
		t.Errorf("ReadU64(8) = %#x, %v", v, err)
	}
	if v, err := ReadU32(data, 12); err != nil || v != binary.NativeEndian.Uint32(data[12:]) {
		t.Errorf("ReadU32 at the last word = %#x, %v", v, err)
	}
	for _, off := range []int{13, 16, 17, -1, -4, math.MaxInt, math.MaxInt - 3, math.MinInt} {
		v, err := ReadU32(data, off)
		if !errors.Is(err, ErrOutOfBounds) || v != 0 {
			t.Errorf("ReadU32(%d) = %#x, %v; want ErrOutOfBounds", off, v, err)
		}
		var de *DecodeError
		if !errors.As(err, &de) || de.Op != "ReadU32" || de.Offset != off || de.Len != 16 {
			t.Errorf("ReadU32(%d): error %#v", off, err)
		}
	}
	for _, off := range []int{9, 16, -1, -8, math.MaxInt, math.MaxInt - 7, math.MinInt} {
		if v, err := ReadU64(data, off); !errors.Is(err, ErrOutOfBounds) || v != 0 {
			t.Errorf("ReadU64(%d) = %#x, %v; want ErrOutOfBounds", off, v, err)
		}
	}
	if _, err := ReadU32(nil, 0); !errors.Is(err, ErrOutOfBounds) {
		t.Errorf("ReadU32(nil): %v", err)
	}
	if _, err := ReadU64(nil, 0); !errors.Is(err, ErrOutOfBounds) {
		t.Errorf("ReadU64(nil): %v", err)
	}
	// Distinct sentinels do not match each other.
	_, err := ReadU32(data, 100)
	if errors.Is(err, ErrUnterminatedString) || errors.Is(err, ErrBadHeader) {
		t.Errorf("out-of-bounds error matches another sentinel: %v", err)
	}
}

func TestReadBytes(t *testing.T) {
	data := []byte("0123456789")
	b, err := ReadBytes(data, 2, 3)
	if err != nil || string(b) != "234" {
		t.Fatalf("ReadBytes(2,3) = %q, %v", b, err)
	}
	// The result aliases data but cannot be appended into it.
	if cap(b) != 3 {
		t.Errorf("cap = %d, want 3", cap(b))
	}
	_ = append(b, 'x')
	if string(data) != "0123456789" {
		t.Errorf("append through the result changed data: %q", data)
	}
	for _, c := range []struct{ off, size int }{{0, 10}, {10, 0}, {0, 0}, {5, 5}} {
		if b, err := ReadBytes(data, c.off, c.size); err != nil || len(b) != c.size {
			t.Errorf("ReadBytes(%d,%d) = %q, %v", c.off, c.size, b, err)
		}
	}
	for _, c := range []struct{ off, size int }{
		{0, 11}, {11, 0}, {-1, 1}, {1, -1}, {5, 6},
		{math.MaxInt, 1}, {1, math.MaxInt}, {math.MaxInt, math.MaxInt}, {math.MinInt, 0}, {0, math.MinInt},
	} {
		b, err := ReadBytes(data, c.off, c.size)
		if !errors.Is(err, ErrOutOfBounds) || b != nil {
			t.Errorf("ReadBytes(%d,%d) = %q, %v; want ErrOutOfBounds", c.off, c.size, b, err)
		}
	}
}

func TestReadCString(t *testing.T) {
	data := []byte("bash\x00\x00\x00\x00xyz")
	cases := []struct {
		off, maxLen int
		want        string
		err         error
	}{
		{0, 8, "bash", nil},
		{0, 5, "bash", nil},
		{0, 4, "bash", ErrUnterminatedString}, // no NUL within maxLen: partial + error
		{0, 2, "ba", ErrUnterminatedString},
		{4, 4, "", nil},
		{8, 16, "xyz", ErrUnterminatedString}, // runs off the end of the event
		{8, 3, "xyz", ErrUnterminatedString},
		{11, 1, "", ErrUnterminatedString}, // at the very end: nothing to read
		{12, 1, "", ErrOutOfBounds},
		{-1, 4, "", ErrOutOfBounds},
		{0, 0, "", ErrOutOfBounds},
		{0, -1, "", ErrOutOfBounds},
		{math.MaxInt, 16, "", ErrOutOfBounds},
		{math.MinInt, 16, "", ErrOutOfBounds},
		{0, math.MaxInt, "bash", nil},
		{8, math.MaxInt, "xyz", ErrUnterminatedString},
	}
	for _, c := range cases {
		got, err := ReadCString(data, c.off, c.maxLen)
		if got != c.want || !errors.Is(err, c.err) || (c.err == nil) != (err == nil) {
			t.Errorf("ReadCString(%d,%d) = %q, %v; want %q, %v", c.off, c.maxLen, got, err, c.want, c.err)
		}
	}
	if _, err := ReadCString(nil, 0, 1); !errors.Is(err, ErrUnterminatedString) {
		t.Errorf("ReadCString(nil): %v", err)
	}
}

func TestParsePerfEventHeader(t *testing.T) {
	hdr := func(typ uint32, misc, size uint16, extra int) []byte {
		b := make([]byte, 8+extra)
		binary.NativeEndian.PutUint32(b, typ)
		binary.NativeEndian.PutUint16(b[4:], misc)
		binary.NativeEndian.PutUint16(b[6:], size)
		return b
	}
	h, err := ParsePerfEventHeader(hdr(9, 2, 24, 16))
	if err != nil || *h != (PerfEventHeader{Type: 9, Flags: 2, Size: 24}) {
		t.Errorf("valid header: %+v, %v", h, err)
	}
	if h, err := ParsePerfEventHeader(hdr(1, 0, 8, 0)); err != nil || h.Size != 8 {
		t.Errorf("header-only record: %+v, %v", h, err)
	}
	for name, b := range map[string][]byte{
		"nil":            nil,
		"short":          make([]byte, 7),
		"size < header":  hdr(9, 0, 7, 0),
		"size 0":         hdr(9, 0, 0, 8),
		"size > data":    hdr(9, 0, 17, 8),
		"size 0xffff":    hdr(9, 0, 0xffff, 100),
		"one byte short": hdr(9, 0, 9, 0),
	} {
		h, err := ParsePerfEventHeader(b)
		if !errors.Is(err, ErrBadHeader) || h != nil {
			t.Errorf("%s: %+v, %v; want ErrBadHeader", name, h, err)
		}
	}
}

func FuzzReadU32(f *testing.F) {
	f.Add([]byte{1, 2, 3, 4}, 0)
	f.Add([]byte{1, 2, 3, 4, 5}, 1)
	f.Add([]byte{1, 2, 3}, 0)
	f.Add([]byte{}, math.MaxInt)
	f.Add([]byte{1, 2, 3, 4}, -1)
	f.Fuzz(func(t *testing.T, data []byte, off int) {
		v, err := ReadU32(data, off)
		if inBounds(len(data), off, 4) {
			if err != nil || v != binary.NativeEndian.Uint32(data[off:off+4]) {
				t.Fatalf("ReadU32(%d bytes, %d) = %#x, %v", len(data), off, v, err)
			}
		} else if !errors.Is(err, ErrOutOfBounds) || v != 0 {
			t.Fatalf("ReadU32(%d bytes, %d) = %#x, %v; want ErrOutOfBounds", len(data), off, v, err)
		}
	})
}

func FuzzReadU64(f *testing.F) {
	f.Add([]byte{1, 2, 3, 4, 5, 6, 7, 8}, 0)
	f.Add([]byte{1, 2, 3, 4, 5, 6, 7, 8, 9}, 1)
	f.Add([]byte{1, 2, 3, 4, 5, 6, 7}, 0)
	f.Add([]byte{}, math.MaxInt-7)
	f.Add([]byte{1}, math.MinInt)
	f.Fuzz(func(t *testing.T, data []byte, off int) {
		v, err := ReadU64(data, off)
		if inBounds(len(data), off, 8) {
			if err != nil || v != binary.NativeEndian.Uint64(data[off:off+8]) {
				t.Fatalf("ReadU64(%d bytes, %d) = %#x, %v", len(data), off, v, err)
			}
		} else if !errors.Is(err, ErrOutOfBounds) || v != 0 {
			t.Fatalf("ReadU64(%d bytes, %d) = %#x, %v; want ErrOutOfBounds", len(data), off, v, err)
		}
	})
}

func FuzzReadBytes(f *testing.F) {
	f.Add([]byte("hello"), 1, 3)
	f.Add([]byte("hello"), 5, 0)
	f.Add([]byte("hello"), 0, 6)
	f.Add([]byte{}, math.MaxInt, math.MaxInt)
	f.Add([]byte("x"), -1, 1)
	f.Fuzz(func(t *testing.T, data []byte, off, size int) {
		b, err := ReadBytes(data, off, size)
		if inBounds(len(data), off, size) {
			if err != nil || !bytes.Equal(b, data[off:off+size]) || cap(b) != size {
				t.Fatalf("ReadBytes(%d bytes, %d, %d) = %d bytes (cap %d), %v", len(data), off, size, len(b), cap(b), err)
			}
		} else if !errors.Is(err, ErrOutOfBounds) || b != nil {
			t.Fatalf("ReadBytes(%d bytes, %d, %d) = %d bytes, %v; want ErrOutOfBounds", len(data), off, size, len(b), err)
		}
	})
}

func FuzzReadCString(f *testing.F) {
	f.Add([]byte("comm\x00\x00"), 0, 16)
	f.Add([]byte("comm"), 0, 16)
	f.Add([]byte("comm\x00"), 2, 2)
	f.Add([]byte{}, 0, 1)
	f.Add([]byte("a"), math.MaxInt, math.MaxInt)
	f.Add([]byte("a"), 0, 0)
	f.Fuzz(func(t *testing.T, data []byte, off, maxLen int) {
		s, err := ReadCString(data, off, maxLen)
		if maxLen < 1 || off < 0 || off > len(data) {
			if !errors.Is(err, ErrOutOfBounds) || s != "" {
				t.Fatalf("ReadCString(%d bytes, %d, %d) = %q, %v; want ErrOutOfBounds", len(data), off, maxLen, s, err)
			}
			return
		}
		field := data[off:]
		if maxLen < len(field) {
			field = field[:maxLen]
		}
		want, wantErr := string(field), ErrUnterminatedString
		if i := bytes.IndexByte(field, 0); i >= 0 {
			want, wantErr = string(field[:i]), nil
		}
		if s != want || !errors.Is(err, wantErr) || (wantErr == nil) != (err == nil) {
			t.Fatalf("ReadCString(%q, %d, %d) = %q, %v; want %q, %v", data, off, maxLen, s, err, want, wantErr)
		}
	})
}

func FuzzParsePerfEventHeader(f *testing.F) {
	f.Add([]byte{9, 0, 0, 0, 2, 0, 8, 0})
	f.Add([]byte{9, 0, 0, 0, 2, 0, 16, 0, 1, 2, 3, 4, 5, 6, 7, 8})
	f.Add([]byte{9, 0, 0, 0, 2, 0, 7, 0})
	f.Add([]byte{9, 0, 0, 0, 2, 0, 0xff, 0xff})
	f.Add([]byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, data []byte) {
		h, err := ParsePerfEventHeader(data)
		if len(data) < 8 {
			if !errors.Is(err, ErrBadHeader) || h != nil {
				t.Fatalf("short input: %+v, %v", h, err)
			}
			return
		}
		want := PerfEventHeader{
			Type:  binary.NativeEndian.Uint32(data),
			Flags: uint32(binary.NativeEndian.Uint16(data[4:])),
			Size:  uint32(binary.NativeEndian.Uint16(data[6:])),
		}
		if want.Size < 8 || int(want.Size) > len(data) {
			if !errors.Is(err, ErrBadHeader) || h != nil {
				t.Fatalf("size %d of %d bytes: %+v, %v; want ErrBadHeader", want.Size, len(data), h, err)
			}
			return
		}
		if err != nil || h == nil || *h != want {
			t.Fatalf("ParsePerfEventHeader = %+v, %v; want %+v", h, err, want)
		}
	})
}
