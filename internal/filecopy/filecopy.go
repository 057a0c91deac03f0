// Package filecopy reads files only to move their bytes: the floor that
// the store and replay benchmarks compare reading a recording against.
package filecopy

import (
	"io"
	"os"
	"path/filepath"
)

// ReadDir reads every file of dir with pread into buf, discarding the
// bytes, and returns how many it read.
func ReadDir(dir string, buf []byte) (int64, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return 0, err
	}
	var total int64
	for _, e := range ents {
		if !e.Type().IsRegular() {
			continue
		}
		n, err := readFile(filepath.Join(dir, e.Name()), buf)
		total += n
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

func readFile(path string, buf []byte) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	var off int64
	for {
		n, err := f.ReadAt(buf, off)
		off += int64(n)
		if err == io.EOF {
			return off, nil
		}
		if err != nil {
			return off, err
		}
	}
}
