package record

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"unicode"
)

// NoteName is the recorder's note in a recording directory. The recorder
// writes it when the recording starts, with room reserved for what it may
// have to say at the end, and removes it when the recording ends well. A
// recording that ends with a storage failure keeps it, saying so (the
// segments cannot: the storage failed under them); one whose recorder was
// killed keeps it as written at the start. `ebpfrec info` prints it.
const NoteName = "recorder.note"

// noteSize is the room reserved for the note: written in full at the start,
// so that on a file system that overwrites in place, the final note needs
// no new space even on a full disk.
const noteSize = 4096

// note is the recorder's note file of a running recording.
type note struct {
	f *os.File
}

// reserveNote writes the note of a recording that starts.
func reserveNote(dir string, started string) (*note, error) {
	f, err := os.OpenFile(filepath.Join(dir, NoteName), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, err
	}
	n := &note{f: f}
	text := fmt.Sprintf("recording since %s by ebpfrec (pid %d); if that process is gone, it stopped without ending the recording (killed, or the machine stopped)\n", started, os.Getpid())
	if err := n.write(text, true); err != nil {
		f.Close()
		os.Remove(f.Name())
		return nil, err
	}
	return n, nil
}

// write puts text in the note, padded to noteSize with spaces when pad is
// set (the reservation), else cut to it and the rest truncated away.
func (n *note) write(text string, pad bool) error {
	b := []byte(text)
	if len(b) > noteSize {
		b = append(b[:noteSize-4], "...\n"...)
	}
	if pad {
		b = append(b, bytes.Repeat([]byte{' '}, noteSize-len(b))...)
	}
	if _, err := n.f.WriteAt(b, 0); err != nil {
		return err
	}
	if !pad {
		if err := n.f.Truncate(int64(len(b))); err != nil {
			return err
		}
	}
	return n.f.Sync()
}

// finish writes the final text, or removes the note when text is empty.
func (n *note) finish(text string) error {
	if text == "" {
		n.f.Close()
		return os.Remove(n.f.Name())
	}
	err := n.write(text, false)
	if cerr := n.f.Close(); err == nil {
		err = cerr
	}
	return err
}

// ReadNote returns the recorder's note in the recording dir, without the
// reserved padding and with other control characters than newlines and tabs
// shown as '?' (it is printed to terminals): "" if there is none.
func ReadNote(dir string) (string, error) {
	f, err := os.Open(filepath.Join(dir, NoteName))
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, noteSize))
	if err != nil {
		return "", err
	}
	text := strings.Map(func(r rune) rune {
		if r == '\n' || r == '\t' || (unicode.IsPrint(r) && r != unicode.ReplacementChar) {
			return r
		}
		return '?'
	}, strings.ToValidUTF8(string(b), "?"))
	return strings.TrimRight(text, " \n"), nil
}
