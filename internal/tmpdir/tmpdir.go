// Package tmpdir makes temporary folders that a later run can tell apart
// from those still in use. A run that is killed (SIGKILL, a crash, the
// machine going down) cannot remove its temporary folder; a later run of
// the same kind removes it. The folder itself carries the proof of life:
// its maker holds an exclusive flock(2) on it, which the kernel drops when
// the process ends however it ends. A folder whose lock can be taken is
// stale; one whose lock is held belongs to a run still going (in this
// process or another), and is left alone.
//
// export (a hidden folder beside its output) and query (a folder in
// TMPDIR) use it.
package tmpdir

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// Dir is a folder held by this process.
type Dir struct {
	// Path is the folder's path.
	Path string
	f    *os.File // the folder, open and locked
}

// New makes a folder in parent (os.TempDir() if "") named prefix followed
// by random digits, as os.MkdirTemp does, and holds its lock until Remove
// or Release.
func New(parent, prefix string) (*Dir, error) {
	if parent == "" {
		parent = os.TempDir()
	}
	for range 100 {
		path, err := os.MkdirTemp(parent, prefix)
		if err != nil {
			return nil, err
		}
		// Waits if a RemoveStale holds it: it is removing the folder, and
		// lock then says so (nil), and another name is tried.
		f, err := lock(path, true)
		if err != nil {
			os.Remove(path)
			return nil, err
		}
		if f != nil {
			return &Dir{Path: path, f: f}, nil
		}
	}
	return nil, fmt.Errorf("tmpdir: every new folder %s* in %s was removed before it could be locked", prefix, parent)
}

// Companion is the suffix of the one folder a run may keep beside its own
// (CompanionPath): export moves the export it replaces there before it
// removes it. RemoveStale treats it as part of the run.
const Companion = ".old"

// CompanionPath is d's folder with Companion appended.
func (d *Dir) CompanionPath() string { return d.Path + Companion }

// Hold locks the existing folder path as New's are, waiting for another
// holder, and returns it; nil if path is gone or was replaced meanwhile.
// export holds the export it replaces this way while it moves it aside.
func Hold(path string) (*Dir, error) {
	f, err := lock(path, true)
	if err != nil || f == nil {
		return nil, err
	}
	return &Dir{Path: path, f: f}, nil
}

// Release gives up the lock, keeping the folder (it was renamed into
// place, or it is gone).
func (d *Dir) Release() error {
	if d == nil || d.f == nil {
		return nil
	}
	err := d.f.Close()
	d.f = nil
	return err
}

// Remove removes the folder and everything in it, then releases it.
func (d *Dir) Remove() error {
	if d == nil {
		return nil
	}
	err := os.RemoveAll(d.Path)
	if rerr := d.Release(); err == nil {
		err = rerr
	}
	return err
}

// lock opens path, which must be a folder (not a link to one), and locks
// it, waiting for a holder or not. It returns nil, nil if the lock is held
// by another (not waiting) or if path no longer names the folder it locked
// (it was removed or renamed while this waited).
func lock(path string, wait bool) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW, 0)
	if err != nil {
		return nil, err
	}
	how := unix.LOCK_EX
	if !wait {
		how |= unix.LOCK_NB
	}
	for {
		err = unix.Flock(int(f.Fd()), how)
		if err != unix.EINTR {
			break
		}
	}
	if errors.Is(err, unix.EWOULDBLOCK) {
		f.Close()
		return nil, nil
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("tmpdir: lock %s: %w", path, err)
	}
	if !samePath(f, path) {
		f.Close()
		return nil, nil
	}
	return f, nil
}

// samePath says whether path still names the open folder f.
func samePath(f *os.File, path string) bool {
	fst, err1 := f.Stat()
	pst, err2 := os.Lstat(path)
	return err1 == nil && err2 == nil && os.SameFile(fst, pst)
}

// RemoveStale removes the stale folders of prefix in parent (os.TempDir()
// if ""): those named prefix, then digits (as New names them), then
// optionally Companion, owned by this user, that nobody holds. It returns
// the folders removed; a folder it cannot remove is left and the first
// error returned, as callers go on regardless.
func RemoveStale(parent, prefix string) ([]string, error) {
	if parent == "" {
		parent = os.TempDir()
	}
	ents, err := os.ReadDir(parent)
	if err != nil {
		return nil, err
	}
	var removed []string
	var first error
	for _, e := range ents {
		if !e.IsDir() || !ours(e.Name(), prefix) { // a link is not ours
			continue
		}
		path := filepath.Join(parent, e.Name())
		if st, err := os.Lstat(path); err != nil || !ownedByMe(st) {
			continue
		}
		f, err := lock(path, false)
		if err != nil {
			first = cmpErr(first, err)
			continue
		}
		if f == nil {
			continue // in use
		}
		err = os.RemoveAll(path)
		f.Close()
		if err != nil {
			first = cmpErr(first, err)
			continue
		}
		removed = append(removed, path)
	}
	return removed, first
}

func cmpErr(first, err error) error {
	if first != nil {
		return first
	}
	return err
}

// ours says whether name is prefix, digits, and nothing or Companion.
func ours(name, prefix string) bool {
	rest, ok := strings.CutPrefix(name, prefix)
	if !ok {
		return false
	}
	rest = strings.TrimSuffix(rest, Companion)
	for _, c := range []byte(rest) {
		if c < '0' || c > '9' {
			return false
		}
	}
	return rest != ""
}

func ownedByMe(st os.FileInfo) bool {
	s, ok := st.Sys().(*syscall.Stat_t)
	return ok && int(s.Uid) == os.Geteuid()
}
