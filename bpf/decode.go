package bpf

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Sentinel errors of the decoders. Every decoder error wraps exactly one of
// them, so callers match with errors.Is and still read the position in the
// message.
var (
	// ErrOutOfBounds means a field lies (partly) outside the event.
	ErrOutOfBounds = errors.New("out of bounds")
	// ErrUnterminatedString means ReadCString found no NUL byte within
	// maxLen bytes (or before the end of the event).
	ErrUnterminatedString = errors.New("unterminated string")
	// ErrBadHeader means a perf event header is malformed.
	ErrBadHeader = errors.New("bad perf event header")
)

// hostEndian is the byte order of the kernel that produced the events: BPF
// programs write integers in the host's order, and events are decoded on the
// machine that recorded them or one of the same architecture.
var hostEndian = binary.NativeEndian

// DecodeError says which field of an event could not be read and why.
type DecodeError struct {
	Op     string // the decoder: "ReadU32", "ReadCString", ...
	Offset int    // where the field starts
	Size   int    // how many bytes the field needs (or maxLen for strings)
	Len    int    // how long the event is
	Err    error  // one of the sentinel errors above
}

// Error names the decoder, the field's offset and size, the event's length
// and the sentinel.
func (e *DecodeError) Error() string {
	return fmt.Sprintf("bpf: %s: offset %d size %d in event of %d bytes: %v", e.Op, e.Offset, e.Size, e.Len, e.Err)
}

// Unwrap returns the sentinel error.
func (e *DecodeError) Unwrap() error { return e.Err }

// span checks that [offset, offset+size) lies within data without overflow.
func span(op string, data []byte, offset, size int) error {
	if offset < 0 || size < 0 || offset > len(data) || size > len(data)-offset {
		return &DecodeError{Op: op, Offset: offset, Size: size, Len: len(data), Err: ErrOutOfBounds}
	}
	return nil
}

// ReadU32 reads a uint32 at offset in the host's byte order.
// It returns an error wrapping ErrOutOfBounds if the field does not fit.
func ReadU32(data []byte, offset int) (uint32, error) {
	if err := span("ReadU32", data, offset, 4); err != nil {
		return 0, err
	}
	return hostEndian.Uint32(data[offset:]), nil
}

// ReadU64 reads a uint64 at offset in the host's byte order.
// It returns an error wrapping ErrOutOfBounds if the field does not fit.
func ReadU64(data []byte, offset int) (uint64, error) {
	if err := span("ReadU64", data, offset, 8); err != nil {
		return 0, err
	}
	return hostEndian.Uint64(data[offset:]), nil
}

// ReadBytes returns the size bytes at offset. The result aliases data (no
// copy): copy it if it must outlive data. It returns an error wrapping
// ErrOutOfBounds if the field does not fit.
func ReadBytes(data []byte, offset, size int) ([]byte, error) {
	if err := span("ReadBytes", data, offset, size); err != nil {
		return nil, err
	}
	return data[offset : offset+size : offset+size], nil
}

// ReadCString reads a NUL-terminated string that starts at offset and
// occupies at most maxLen bytes including its NUL (a fixed-size char array
// in the event, such as comm[16]). The field may extend past the end of the
// event only if the NUL comes first.
//
// It never truncates silently: if no NUL is found within maxLen bytes or
// before the end of data, it returns the bytes it saw as the string together
// with an error wrapping ErrUnterminatedString. An offset outside data, or a
// maxLen below 1, gives an error wrapping ErrOutOfBounds.
func ReadCString(data []byte, offset, maxLen int) (string, error) {
	if maxLen < 1 || offset < 0 || offset > len(data) {
		return "", &DecodeError{Op: "ReadCString", Offset: offset, Size: maxLen, Len: len(data), Err: ErrOutOfBounds}
	}
	field := data[offset:]
	if len(field) > maxLen {
		field = field[:maxLen]
	}
	for i, c := range field {
		if c == 0 {
			return string(field[:i]), nil
		}
	}
	return string(field), &DecodeError{Op: "ReadCString", Offset: offset, Size: maxLen, Len: len(data), Err: ErrUnterminatedString}
}

// PerfEventHeaderSize is the size of struct perf_event_header.
const PerfEventHeaderSize = 8

// ParsePerfEventHeader parses a struct perf_event_header (u32 type, u16 misc,
// u16 size, in the host's byte order) at the start of data, as found at the
// start of every record in a perf ring. Flags holds the misc field. It
// returns an error wrapping ErrBadHeader if data is shorter than the header,
// if Size is smaller than the header, or if Size exceeds len(data).
func ParsePerfEventHeader(data []byte) (*PerfEventHeader, error) {
	if len(data) < PerfEventHeaderSize {
		return nil, fmt.Errorf("bpf: ParsePerfEventHeader: %d bytes, need %d: %w", len(data), PerfEventHeaderSize, ErrBadHeader)
	}
	h := &PerfEventHeader{
		Type:  hostEndian.Uint32(data[0:4]),
		Flags: uint32(hostEndian.Uint16(data[4:6])),
		Size:  uint32(hostEndian.Uint16(data[6:8])),
	}
	if h.Size < PerfEventHeaderSize {
		return nil, fmt.Errorf("bpf: ParsePerfEventHeader: size %d is smaller than the header: %w", h.Size, ErrBadHeader)
	}
	if int(h.Size) > len(data) {
		return nil, fmt.Errorf("bpf: ParsePerfEventHeader: size %d exceeds the %d bytes given: %w", h.Size, len(data), ErrBadHeader)
	}
	return h, nil
}

// PerfEventHeader represents the common header for perf events
// (struct perf_event_header).
type PerfEventHeader struct {
	// Type identifies the event type (PERF_RECORD_*).
	Type uint32
	// Flags contains event flags (the header's misc field).
	Flags uint32
	// Size is the total size of the event including header.
	Size uint32
}
