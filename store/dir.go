package store

// The recording directory: what other packages need to know of it goes
// through these functions, so that segment names and the files a writer
// leaves are this package's business alone.

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Usage is what a recording takes on disk.
type Usage struct {
	// Segments counts the segment files.
	Segments int
	// Bytes sums the sizes of every regular file in the directory (the
	// segments, a segment being created, notes beside them).
	Bytes int64
}

// DiskUsage returns what the recording in dir takes on disk now. A
// missing directory takes nothing.
func DiskUsage(dir string) (Usage, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return Usage{}, nil
		}
		return Usage{}, err
	}
	var u Usage
	for _, e := range ents {
		fi, err := e.Info()
		if err != nil || !fi.Mode().IsRegular() {
			continue // deleted meanwhile (retention), or not a file
		}
		u.Bytes += fi.Size()
		if isSegmentName(e.Name()) {
			u.Segments++
		}
	}
	return u, nil
}

// HasSegments says whether dir holds at least one segment (a recorder has
// named its first one).
func HasSegments(dir string) bool {
	files, err := listSegments(dir)
	return err == nil && len(files) > 0
}

// RemoveSegments removes the segment files of the recording in dir, and
// the file of a segment being created: what a recording that never started
// (Create succeeded, recording did not) leaves.
func RemoveSegments(dir string) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	var first error
	for _, e := range ents {
		if n := e.Name(); isSegmentName(n) || isSegmentName(strings.TrimSuffix(n, creatingSuffix)) {
			if err := os.Remove(filepath.Join(dir, n)); err != nil && first == nil && !errors.Is(err, os.ErrNotExist) {
				first = err
			}
		}
	}
	return first
}

// ChangeToken sums up the names, sizes, modification times and bbolt
// transaction ids of the segments of dir from index fromSegment on: a
// follower reads again when it changes. The transaction id is what
// changes at every commit: a file's modification time has the kernel's
// coarse clock (a tick of a few ms), and a bbolt file keeps its size while
// its pages fill, so a commit in the same tick as a follower's last look
// changed neither (a follower in the kernel matrix's 6.12 VM waited for
// one forever). It is "" if dir cannot be read.
func ChangeToken(dir string, fromSegment int) string {
	files, err := listSegments(dir)
	if err != nil {
		return ""
	}
	var b strings.Builder
	var head [2 * pageSize]byte
	for _, f := range files {
		if f.index < fromSegment {
			continue
		}
		fi, err := os.Lstat(f.path)
		if err != nil {
			return ""
		}
		b.WriteString(strconv.Itoa(f.index))
		b.WriteByte(' ')
		b.WriteString(strconv.FormatInt(fi.ModTime().UnixNano(), 10))
		b.WriteByte(' ')
		b.WriteString(strconv.FormatInt(fi.Size(), 10))
		b.WriteByte(' ')
		b.WriteString(strconv.FormatUint(segmentTxid(f.path, head[:]), 10))
		b.WriteByte('\n')
	}
	return b.String()
}

// segmentTxid returns the transaction id of the newest valid meta page of
// the segment at path (read into head, two pages), 0 if none.
func segmentTxid(path string, head []byte) uint64 {
	f, err := os.Open(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	n, _ := io.ReadFull(f, head)
	m, ok := newestMeta(head[:n])
	if !ok {
		return 0
	}
	return m.txid
}

// segmentIndex returns the index of the segment file named name
// (000007.seg: 7), and false if name is not a segment's.
func segmentIndex(name string) (int, bool) {
	if !strings.HasSuffix(name, segSuffix) {
		return 0, false
	}
	n, err := strconv.Atoi(strings.TrimSuffix(name, segSuffix))
	return n, err == nil && n > 0
}

func isSegmentName(name string) bool {
	_, ok := segmentIndex(name)
	return ok
}
