package proc

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// userHZ is the unit of /proc/PID/stat's starttime: USER_HZ, which Linux
// fixes at 100 for user space on every architecture it runs on (the
// kernel's own HZ may differ; /proc converts).
const userHZ = 100

// maxSnapshotCgroups bounds the cgroups a snapshot describes.
const maxSnapshotCgroups = 1 << 16

// SnapshotOptions configure Snapshot.
type SnapshotOptions struct {
	// Proc is procfs's mount point (default /proc).
	Proc string
	// CgroupRoot is the cgroup v2 mount point (default: found in
	// /proc/self/mountinfo; none: cgroup paths and ids stay empty).
	CgroupRoot string
	// Select, if set, says which processes to describe (the recording's
	// process filter); nil selects every process.
	Select func(pid uint32, comm string) bool
}

// Snapshot describes the processes alive now, from /proc, as records of
// the proc stream (AppendRecord): one KindCgroup record per cgroup v2
// directory (id and path: the processes started later in them resolve
// too), then one KindSnapshot record per selected process with its ppid,
// uid, comm, exe, arguments, start time (CLOCK_MONOTONIC), cgroup id and
// path. A process that ends while it is read is left out or described in
// part (what /proc still showed); a /proc that cannot be listed is an
// error.
func Snapshot(opts SnapshotOptions) ([][]byte, error) {
	if opts.Proc == "" {
		opts.Proc = "/proc"
	}
	if opts.CgroupRoot == "" {
		opts.CgroupRoot = cgroup2Mount(opts.Proc)
	}
	var out [][]byte
	ids := map[string]uint64{} // cgroup path -> id
	if opts.CgroupRoot != "" {
		now := monotonicNow()
		_ = filepath.WalkDir(opts.CgroupRoot, func(p string, d fs.DirEntry, err error) error {
			if err != nil || !d.IsDir() {
				return nil // a cgroup removed meanwhile, or a file
			}
			if len(ids) >= maxSnapshotCgroups {
				return fs.SkipAll
			}
			info, err := d.Info()
			if err != nil {
				return nil
			}
			st, ok := info.Sys().(*syscall.Stat_t)
			if !ok {
				return nil
			}
			rel := "/" + strings.TrimPrefix(strings.TrimPrefix(p, opts.CgroupRoot), "/")
			ids[rel] = st.Ino
			out = append(out, AppendRecord(nil, KindCgroup, &Event{KtimeNs: now, CgroupID: st.Ino, CgroupPath: rel}))
			return nil
		})
	}
	ents, err := os.ReadDir(opts.Proc)
	if err != nil {
		return nil, fmt.Errorf("proc: snapshot: %w", err)
	}
	// Boot time minus monotonic time: /proc's start times count from boot,
	// including suspend; bpf_ktime_get_ns does not.
	// Read monotonic first: the difference must not go below 0 when no
	// suspend separates the clocks.
	mono := monotonicNow()
	skew := uint64(0)
	if boot := boottimeNow(); boot > mono {
		skew = boot - mono
	}
	for _, e := range ents {
		pid, err := strconv.ParseUint(e.Name(), 10, 32)
		if err != nil {
			continue
		}
		ev, err := readProcess(opts, uint32(pid), skew)
		if err != nil || ev == nil {
			continue // gone meanwhile, or not selected
		}
		if ev.CgroupPath != "" {
			if id, ok := ids[ev.CgroupPath]; ok {
				ev.CgroupID = id
			} else if st, err := os.Stat(filepath.Join(opts.CgroupRoot, ev.CgroupPath)); err == nil && opts.CgroupRoot != "" {
				ev.CgroupID = st.Sys().(*syscall.Stat_t).Ino
			}
		}
		out = append(out, AppendRecord(nil, KindSnapshot, ev))
	}
	return out, nil
}

// readProcess reads one process from /proc (nil if opts.Select refuses it).
func readProcess(opts SnapshotOptions, pid uint32, skew uint64) (*Event, error) {
	dir := filepath.Join(opts.Proc, strconv.FormatUint(uint64(pid), 10))
	stat, err := os.ReadFile(filepath.Join(dir, "stat"))
	if err != nil {
		return nil, err
	}
	ev := &Event{Pid: pid, Tid: pid, KtimeNs: monotonicNow()}
	comm, ppid, start, err := ParseStat(stat)
	if err != nil {
		return nil, fmt.Errorf("proc: %s/stat: %w", dir, err)
	}
	ev.Command, ev.Ppid = comm, ppid
	// The filter first: the rest of /proc is read for selected processes.
	if opts.Select != nil && !opts.Select(pid, comm) {
		return nil, nil
	}
	if ns := start * (1e9 / userHZ); ns > skew {
		ev.StartNs = ns - skew
	}
	if status, err := os.ReadFile(filepath.Join(dir, "status")); err == nil {
		ev.UID = parseStatusUID(status)
	}
	ev.Exe, _ = os.Readlink(filepath.Join(dir, "exe")) // kernel threads have none
	if cmdline, err := os.ReadFile(filepath.Join(dir, "cmdline")); err == nil {
		if len(cmdline) > MaxUserString {
			cmdline, ev.ArgsTruncated = cmdline[:MaxUserString], true
		}
		ev.Args = splitArgs(cmdline)
	}
	if cg, err := os.ReadFile(filepath.Join(dir, "cgroup")); err == nil {
		ev.CgroupPath = parseCgroupFile(cg)
	}
	return ev, nil
}

// ErrBadStat is wrapped by ParseStat's errors.
var ErrBadStat = errors.New("malformed stat")

// ParseStat returns comm, ppid and starttime (clock ticks since boot) from
// the contents of /proc/PID/stat. The comm is between the first '(' and
// the last ')', as it may hold either.
func ParseStat(b []byte) (comm string, ppid uint32, start uint64, err error) {
	open, close := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
	if open < 0 || close < open {
		return "", 0, 0, fmt.Errorf("%w: no (comm)", ErrBadStat)
	}
	comm = string(b[open+1 : close])
	// After the comm: field 3 (state) on; ppid is field 4, starttime 22.
	f := strings.Fields(string(b[close+1:]))
	if len(f) < 20 {
		return "", 0, 0, fmt.Errorf("%w: %d fields after comm", ErrBadStat, len(f))
	}
	p, err := strconv.ParseUint(f[1], 10, 32)
	if err != nil {
		return "", 0, 0, fmt.Errorf("%w: ppid: %v", ErrBadStat, err)
	}
	start, err = strconv.ParseUint(f[19], 10, 64)
	if err != nil {
		return "", 0, 0, fmt.Errorf("%w: starttime: %v", ErrBadStat, err)
	}
	return comm, uint32(p), start, nil
}

// parseStatusUID returns the real uid from /proc/PID/status.
func parseStatusUID(b []byte) uint32 {
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "Uid:"); ok {
			if f := strings.Fields(rest); len(f) > 0 {
				u, _ := strconv.ParseUint(f[0], 10, 32)
				return uint32(u)
			}
		}
	}
	return 0
}

// parseCgroupFile returns the cgroup v2 path from /proc/PID/cgroup (the
// "0::PATH" line), "" without one.
func parseCgroupFile(b []byte) string {
	for _, line := range strings.Split(string(b), "\n") {
		if p, ok := strings.CutPrefix(line, "0::"); ok {
			return p
		}
	}
	return ""
}

// cgroup2Mount finds where cgroup v2 is mounted, from mountinfo ("" if not).
func cgroup2Mount(procRoot string) string {
	b, err := os.ReadFile(filepath.Join(procRoot, "self", "mountinfo"))
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(string(b), "\n") {
		// ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS [OPTIONAL...] - FSTYPE SOURCE SUPEROPTS
		pre, post, ok := strings.Cut(line, " - ")
		if !ok {
			continue
		}
		pf, qf := strings.Fields(pre), strings.Fields(post)
		if len(pf) >= 5 && len(qf) >= 1 && qf[0] == "cgroup2" && pf[3] == "/" {
			return pf[4]
		}
	}
	return ""
}

// CgroupRoot returns where cgroup v2 is mounted ("" if it is not).
func CgroupRoot() string { return cgroup2Mount("/proc") }

func clockNow(id int32) uint64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(id, &ts); err != nil {
		return 0
	}
	return uint64(ts.Nano())
}

// monotonicNow is CLOCK_MONOTONIC, the clock of bpf_ktime_get_ns.
func monotonicNow() uint64 { return clockNow(unix.CLOCK_MONOTONIC) }

func boottimeNow() uint64 { return clockNow(unix.CLOCK_BOOTTIME) }

// fileIDKernfs is the handle type of kernfs files (FILEID_KERNFS): the
// handle of a cgroup v2 directory is its 64-bit id.
const fileIDKernfs = 0xfe

// CgroupPath returns the path, from the cgroup v2 root mounted at root, of
// the cgroup whose id is id (what bpf_get_current_cgroup_id returns), with
// open_by_handle_at (which needs CAP_DAC_READ_SEARCH): for cgroups created
// after the snapshot.
func CgroupPath(root string, id uint64) (string, error) {
	mfd, err := unix.Open(root, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return "", fmt.Errorf("proc: cgroup %d: %w", id, err)
	}
	defer unix.Close(mfd)
	var b [8]byte
	binary.NativeEndian.PutUint64(b[:], id)
	fd, err := unix.OpenByHandleAt(mfd, unix.NewFileHandle(fileIDKernfs, b[:]), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC)
	if err != nil {
		return "", fmt.Errorf("proc: cgroup %d: open by handle: %w", id, err)
	}
	defer unix.Close(fd)
	p, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(fd))
	if err != nil {
		return "", fmt.Errorf("proc: cgroup %d: %w", id, err)
	}
	rel, ok := strings.CutPrefix(p, strings.TrimSuffix(root, "/"))
	if !ok {
		return "", fmt.Errorf("proc: cgroup %d: %s is not under %s", id, p, root)
	}
	if rel == "" {
		rel = "/"
	}
	return rel, nil
}

// RecordCgroup returns the raw cgroup record (KindCgroup) of id at path, at
// ktime now.
func RecordCgroup(id uint64, path string) []byte {
	return AppendRecord(nil, KindCgroup, &Event{KtimeNs: monotonicNow(), CgroupID: id, CgroupPath: path})
}

// RawKindCgroup returns the kind and cgroup id of a raw proc event, without
// decoding the rest (ok false if it is too short).
func RawKindCgroup(raw []byte) (kind uint32, cgroupID uint64, ok bool) {
	if len(raw) < HeadSize {
		return 0, 0, false
	}
	return binary.NativeEndian.Uint32(raw[offKind:]), binary.NativeEndian.Uint64(raw[offCgroupID:]), true
}
