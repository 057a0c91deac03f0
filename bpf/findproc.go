package bpf

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"

	"github.com/ebpfrec/ebpfrec/bpf/exeinfo"
)

// ProcessSelector chooses running processes to instrument: those with one
// of PIDs, those running one of ExePaths (the same file, by device and
// inode, whatever path started it), and those whose comm matches one of
// Comms (globs, as exeinfo.Glob). A process chosen twice is listed once.
type ProcessSelector struct {
	PIDs     []int32
	ExePaths []string
	Comms    []string
}

// FindProcesses returns the running processes sel chooses, by PID, with
// their FileInfo from /proc. It returns an error for each PID of sel.PIDs
// that is gone (wrapping os.ErrNotExist) and each executable of
// sel.ExePaths that cannot be read; the processes it found are returned
// all the same. Processes that exit while /proc is read are left out.
func FindProcesses(sel ProcessSelector) ([]*FileInfo, []error) {
	var errs []error
	found := make(map[int32]*FileInfo)
	for _, pid := range sel.PIDs {
		fi, err := NewFileInfo(pid)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		found[pid] = fi
	}
	type fileID struct{ dev, ino uint64 }
	exes := make(map[fileID]bool)
	for _, p := range sel.ExePaths {
		var st syscall.Stat_t
		if err := syscall.Stat(p, &st); err != nil {
			errs = append(errs, fmt.Errorf("bpf: executable %s: %w", p, err))
			continue
		}
		exes[fileID{uint64(st.Dev), st.Ino}] = true
	}
	if len(exes) > 0 || len(sel.Comms) > 0 {
		ents, err := os.ReadDir(procRoot)
		if err != nil {
			return sortedInfos(found), append(errs, fmt.Errorf("bpf: %w", err))
		}
		for _, e := range ents {
			pid64, err := strconv.ParseInt(e.Name(), 10, 32)
			if err != nil || found[int32(pid64)] != nil {
				continue
			}
			pid := int32(pid64)
			if len(sel.Comms) > 0 {
				b, err := os.ReadFile(filepath.Join(procRoot, e.Name(), "comm"))
				if err != nil {
					continue
				}
				comm := strings.TrimSuffix(string(b), "\n")
				if matchAny(sel.Comms, comm) {
					if fi, err := NewFileInfo(pid); err == nil {
						found[pid] = fi
					}
					continue
				}
			}
			if len(exes) > 0 {
				var st syscall.Stat_t
				// Kernel threads have no exe; a process may be gone.
				if syscall.Stat(filepath.Join(procRoot, e.Name(), "exe"), &st) != nil || !exes[fileID{uint64(st.Dev), st.Ino}] {
					continue
				}
				if fi, err := NewFileInfo(pid); err == nil {
					found[pid] = fi
				}
			}
		}
	}
	return sortedInfos(found), errs
}

func matchAny(pats []string, s string) bool {
	for _, p := range pats {
		if exeinfo.Glob(p, s) {
			return true
		}
	}
	return false
}

func sortedInfos(m map[int32]*FileInfo) []*FileInfo {
	out := make([]*FileInfo, 0, len(m))
	for _, fi := range m {
		out = append(out, fi)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].PID < out[j].PID })
	return out
}
