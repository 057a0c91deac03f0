// Package common holds what every built-in tracer shares: the kernel-side
// process filter (filter.h and the Go Filter that owns its maps) and the
// follow program that extends the filter to the descendants of a command
// (`ebpfrec record -- COMMAND`).
//
// One Filter serves a whole recording: create it once with NewFilter, pass
// its MapReplacements to every tracer's load (each tracer's object defines
// the same maps through filter.h), and select processes with AllowPID,
// BlockPID and AllowComm. Changes apply to every tracer at once, at any time.
//
// A BPF object of a user's own opts into the same filter by including
// bpf/include/ebpfrec_filter.h, whose maps have names of their own
// (UserMapFilterConfig, ...): UserHook recognizes and checks them, and
// UserMapReplacements hands the filter's maps to such an object.
package common

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
)

// Flags of the filter_config map (key 0); they mirror filter.h.
const (
	FlagPIDAllow  uint32 = 1 << 0 // pid_allow is in force
	FlagCommAllow uint32 = 1 << 1 // comm_allow is in force
	FlagPIDBlock  uint32 = 1 << 2 // pid_block is in force
	FlagFollow    uint32 = 1 << 3 // the follow program allows children of allowed processes
	FlagExec      uint32 = 1 << 4 // exec_allow allows the processes that exec its executables
)

// Values of pid_allow entries; they mirror filter.h.
const (
	pidAllowed  uint8 = 1
	pidFollowed uint8 = 2
	pidExec     uint8 = 3
)

// PIDExec is the pid_allow value of a process that the kernel allowed at
// its exec of an executable of AllowExec (PID_EXEC of filter.h).
const PIDExec = pidExec

// Names of the filter maps, as every tracer's object names them.
const (
	MapFilterConfig = "filter_config"
	MapPIDAllow     = "pid_allow"
	MapPIDBlock     = "pid_block"
	MapCommAllow    = "comm_allow"
	MapExecAllow    = "exec_allow"
)

// Names of the filter maps in a BPF object of a user's own that opts into
// the filter by including bpf/include/ebpfrec_filter.h. They differ from
// the built-in tracers' names so that no map of an object is taken for the
// filter by chance.
const (
	UserMapFilterConfig = "ebpfrec_filter_config"
	UserMapPIDAllow     = "ebpfrec_pid_allow"
	UserMapPIDBlock     = "ebpfrec_pid_block"
	UserMapCommAllow    = "ebpfrec_comm_allow"
)

// userMaps pairs each map of ebpfrec_filter.h with the filter map it stands
// for, in the order errors name them.
var userMaps = [...][2]string{
	{UserMapFilterConfig, MapFilterConfig},
	{UserMapPIDAllow, MapPIDAllow},
	{UserMapPIDBlock, MapPIDBlock},
	{UserMapCommAllow, MapCommAllow},
}

// ErrBadUserHook is wrapped by UserHook's errors: an object declares the
// maps of ebpfrec_filter.h only in part, or otherwise than the header does.
var ErrBadUserHook = errors.New("process filter hook (ebpfrec_filter.h) declared wrongly")

// UserHook reports whether a user's object opts into the filter: it
// declares every map of ebpfrec_filter.h. It checks no privileges, only the
// spec: an object with some of the maps but not all, or with one whose
// type, key or value size, max_entries or flags differ from the filter's,
// gets an error that names the map and what differs (the kernel would
// refuse the replacement with less to go on).
func UserHook(spec *ebpf.CollectionSpec) (bool, error) {
	var have, missing []string
	for _, m := range userMaps {
		if _, ok := spec.Maps[m[0]]; ok {
			have = append(have, m[0])
		} else {
			missing = append(missing, m[0])
		}
	}
	if len(have) == 0 {
		return false, nil
	}
	if len(missing) > 0 {
		return false, fmt.Errorf("%w: the object declares %s but not %s (include ebpfrec_filter.h whole)",
			ErrBadUserHook, strings.Join(have, ", "), strings.Join(missing, ", "))
	}
	ref, err := loadFollow()
	if err != nil {
		return false, err
	}
	for _, m := range userMaps {
		got, want := spec.Maps[m[0]], ref.Maps[m[1]]
		var diffs []string
		if got.Type != want.Type {
			diffs = append(diffs, fmt.Sprintf("type %s, want %s", got.Type, want.Type))
		}
		if got.KeySize != want.KeySize {
			diffs = append(diffs, fmt.Sprintf("key size %d, want %d", got.KeySize, want.KeySize))
		}
		if got.ValueSize != want.ValueSize {
			diffs = append(diffs, fmt.Sprintf("value size %d, want %d", got.ValueSize, want.ValueSize))
		}
		if got.MaxEntries != want.MaxEntries {
			diffs = append(diffs, fmt.Sprintf("max_entries %d, want %d", got.MaxEntries, want.MaxEntries))
		}
		if got.Flags != want.Flags {
			diffs = append(diffs, fmt.Sprintf("flags %#x, want %#x", got.Flags, want.Flags))
		}
		if len(diffs) > 0 {
			return false, fmt.Errorf("%w: map %s: %s (keep the header's definitions)", ErrBadUserHook, m[0], strings.Join(diffs, ", "))
		}
	}
	return true, nil
}

// UserMapReplacements returns the filter maps under the names of
// ebpfrec_filter.h, for ebpf.CollectionOptions.MapReplacements of a user's
// object that UserHook accepted.
func (f *Filter) UserMapReplacements() map[string]*ebpf.Map {
	own := f.MapReplacements()
	out := make(map[string]*ebpf.Map, len(userMaps))
	for _, m := range userMaps {
		out[m[0]] = own[m[1]]
	}
	return out
}

// CommLen is the size of a task's comm, including its NUL: longer names are
// truncated to CommLen-1 bytes, as the kernel does.
const CommLen = 16

// Filter owns the filter maps of a recording. Its methods are safe for
// concurrent use.
type Filter struct {
	mu        sync.Mutex
	flags     uint32
	gen       uint32
	config    *ebpf.Map
	pidAllow  *ebpf.Map
	pidBlock  *ebpf.Map
	commAllow *ebpf.Map
	execAllow *ebpf.Map // nil in a Filter of WrapMaps
	owned     bool      // the maps were created by NewFilter and are closed by Close

	follow      *followObjects
	followLinks []link.Link
	attached    map[string]bool // the follow object's programs attached, by name
}

// NewFilter creates the filter maps (it needs the privileges to create BPF
// maps). A new filter selects every process until AllowPID, AllowComm or
// BlockPID narrows it.
func NewFilter() (*Filter, error) {
	spec, err := loadFollow()
	if err != nil {
		return nil, err
	}
	f := &Filter{owned: true}
	for _, m := range []struct {
		name string
		dst  **ebpf.Map
	}{
		{MapFilterConfig, &f.config},
		{MapPIDAllow, &f.pidAllow},
		{MapPIDBlock, &f.pidBlock},
		{MapCommAllow, &f.commAllow},
		{MapExecAllow, &f.execAllow},
	} {
		ms, ok := spec.Maps[m.name]
		if !ok {
			f.Close()
			return nil, fmt.Errorf("filter: map %s missing from the follow object", m.name)
		}
		mp, err := ebpf.NewMap(ms.Copy())
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("filter: create map %s: %w", m.name, err)
		}
		*m.dst = mp
	}
	return f, nil
}

// WrapMaps returns a Filter over existing filter maps (for example a
// tracer's own, when it was loaded without a shared filter). Close does not
// close them.
func WrapMaps(config, pidAllow, pidBlock, commAllow *ebpf.Map) (*Filter, error) {
	if config == nil || pidAllow == nil || pidBlock == nil || commAllow == nil {
		return nil, errors.New("filter: WrapMaps needs all four filter maps")
	}
	f := &Filter{config: config, pidAllow: pidAllow, pidBlock: pidBlock, commAllow: commAllow}
	var zero uint32
	var cfg filterConfig
	if err := config.Lookup(&zero, &cfg); err != nil {
		return nil, fmt.Errorf("filter: read %s: %w", MapFilterConfig, err)
	}
	f.flags, f.gen = cfg.Flags, cfg.Gen
	return f, nil
}

// MapReplacements returns the filter maps by name, for
// ebpf.CollectionOptions.MapReplacements of every tracer of the recording.
func (f *Filter) MapReplacements() map[string]*ebpf.Map {
	m := map[string]*ebpf.Map{
		MapFilterConfig: f.config,
		MapPIDAllow:     f.pidAllow,
		MapPIDBlock:     f.pidBlock,
		MapCommAllow:    f.commAllow,
	}
	if f.execAllow != nil {
		m[MapExecAllow] = f.execAllow
	}
	return m
}

// Flags returns the FILTER_* flags currently in force.
func (f *Filter) Flags() uint32 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.flags
}

// filterConfig is struct filter_cfg of filter.h.
type filterConfig struct {
	Flags uint32
	Gen   uint32
}

// setFlagsLocked writes flags to filter_config with a new generation: every
// change of the filter calls it, so programs that cache a task's selection
// (syscalls) compute it again.
func (f *Filter) setFlagsLocked(flags uint32) error {
	var zero uint32
	cfg := filterConfig{Flags: flags, Gen: f.gen + 1}
	if err := f.config.Update(&zero, &cfg, ebpf.UpdateAny); err != nil {
		return fmt.Errorf("filter: update %s: %w", MapFilterConfig, err)
	}
	f.flags, f.gen = flags, cfg.Gen
	return nil
}

// Restrict selects only allowed processes (AllowPID, AllowComm, Follow)
// from now on, even while none is allowed yet: call it before starting a
// command to record, so nothing else is selected in the meantime.
func (f *Filter) Restrict() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.setFlagsLocked(f.flags | FlagPIDAllow)
}

// AllowPID selects process pid (a tgid in the initial pid namespace) and,
// from then on, only allowed processes (or allowed comms). It undoes an
// earlier BlockPID of pid. A process the kernel allowed already (followed
// from an allowed parent, or from its exec of an allowed executable) keeps
// that allowance and its lifetime, which the kernel ends (at its free, or
// its exec of another file): overwriting it would make it outlive the
// process, and a reused pid would be selected.
func (f *Filter) AllowPID(pid uint32) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.pidBlock.Delete(&pid); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("filter: unblock pid %d: %w", pid, err)
	}
	v := pidAllowed
	if err := f.pidAllow.Update(&pid, &v, ebpf.UpdateNoExist); err != nil && !errors.Is(err, ebpf.ErrKeyExist) {
		return fmt.Errorf("filter: allow pid %d: %w", pid, err)
	}
	return f.setFlagsLocked(f.flags | FlagPIDAllow)
}

// ForgetPID withdraws an allowance AllowPID gave process pid, and only
// that: one the kernel gave (followed, exec) stays, and nothing is
// blocked, so that a pid reused by a process selected otherwise (by comm,
// followed, exec) is selected. It is what a process's exit, or the end of
// its instrumentation, calls for.
func (f *Filter) ForgetPID(pid uint32) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	var v uint8
	if err := f.pidAllow.Lookup(&pid, &v); err != nil {
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			return nil
		}
		return fmt.Errorf("filter: forget pid %d: %w", pid, err)
	}
	if v != pidAllowed {
		return nil
	}
	if err := f.pidAllow.Delete(&pid); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("filter: forget pid %d: %w", pid, err)
	}
	return nil
}

// BlockPID deselects process pid: it is removed from the allowed processes
// and never selected again, even by its comm, until AllowPID.
func (f *Filter) BlockPID(pid uint32) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.pidAllow.Delete(&pid); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("filter: disallow pid %d: %w", pid, err)
	}
	v := pidAllowed
	if err := f.pidBlock.Update(&pid, &v, ebpf.UpdateAny); err != nil {
		return fmt.Errorf("filter: block pid %d: %w", pid, err)
	}
	return f.setFlagsLocked(f.flags | FlagPIDBlock)
}

// CommKey returns the comm_allow key of a command name: its first 15 bytes,
// NUL-padded, as the kernel stores a task's comm.
func CommKey(comm string) [CommLen]byte {
	var k [CommLen]byte
	copy(k[:CommLen-1], comm)
	return k
}

// AllowComm selects every process whose comm (the kernel's task name, at
// most 15 bytes: longer names are truncated) is comm.
func (f *Filter) AllowComm(comm string) error {
	if comm == "" {
		return errors.New("filter: empty comm")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	k := CommKey(comm)
	v := pidAllowed
	if err := f.commAllow.Update(&k, &v, ebpf.UpdateAny); err != nil {
		return fmt.Errorf("filter: allow comm %q: %w", comm, err)
	}
	return f.setFlagsLocked(f.flags | FlagCommAllow)
}

// Allowed reports whether pid is in the allow list (explicitly or followed).
func (f *Filter) Allowed(pid uint32) bool {
	var v uint8
	return f.pidAllow.Lookup(&pid, &v) == nil
}

// Follow loads and attaches the follow program (sched_process_fork and
// sched_process_free, as BTF tracepoints) on this filter's maps: from then
// on every process forked by an allowed process is allowed too, and
// forgotten once it is freed. Call it before starting the command, then
// AllowPID the command's pid before it runs. Close detaches it.
func (f *Filter) Follow() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.attachLocked(followProgFollowFork, followProgFollowFree); err != nil {
		return err
	}
	return f.setFlagsLocked(f.flags | FlagFollow)
}

// attachLocked loads the follow object, if it is not yet, and attaches
// those of its programs named that are not attached yet.
func (f *Filter) attachLocked(names ...string) error {
	if f.follow == nil {
		spec, err := loadFollow()
		if err != nil {
			return err
		}
		objs := &followObjects{}
		if err := spec.LoadAndAssign(objs, &ebpf.CollectionOptions{MapReplacements: f.MapReplacements()}); err != nil {
			return fmt.Errorf("filter: load the follow program: %w", err)
		}
		f.follow = objs
		f.attached = map[string]bool{}
	}
	progs := map[string]*ebpf.Program{
		followProgFollowFork: f.follow.FollowFork,
		followProgFollowFree: f.follow.FollowFree,
		followProgFollowExec: f.follow.FollowExec,
	}
	for _, n := range names {
		if f.attached[n] {
			continue
		}
		l, err := link.AttachTracing(link.TracingOptions{Program: progs[n]})
		if err != nil {
			return fmt.Errorf("filter: attach the follow program's %s: %w", n, err)
		}
		f.followLinks = append(f.followLinks, l)
		f.attached[n] = true
	}
	return nil
}

// KernelDev converts a device number as stat(2) reports it (st_dev, in
// the kernel's "new" encoding for user space: the minor's low 8 bits, then
// 12 bits of major, then the rest of the minor) to the kernel's own dev_t
// (MKDEV: major << 20 | minor), which a BPF program reads from a
// super_block's s_dev.
func KernelDev(stDev uint64) uint32 {
	major := uint32((stDev>>8)&0xfff) | uint32((stDev>>32)&^0xfff)
	minor := uint32(stDev&0xff) | uint32((stDev>>12)&^0xff)
	return major<<20 | minor&0xfffff
}

// mountDev returns the kernel's device number (MKDEV) of the superblock
// of the mount that holds path, from /proc/self/mountinfo: the mount
// whose mount point is the longest prefix of the path with its symbolic
// links resolved (the last such line: a later mount hides an earlier
// one).
func mountDev(path string) (uint32, bool) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return 0, false
	}
	if abs, err = filepath.EvalSymlinks(abs); err != nil {
		return 0, false
	}
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return 0, false
	}
	var dev uint32
	best := -1
	for _, line := range strings.Split(string(b), "\n") {
		// id parent major:minor root mount-point options ...
		fs := strings.Fields(line)
		if len(fs) < 5 {
			continue
		}
		mp := unescapeMount(fs[4])
		if !(abs == mp || mp == "/" || strings.HasPrefix(abs, mp+"/")) || len(mp) < best {
			continue
		}
		var major, minor uint32
		if _, err := fmt.Sscanf(fs[2], "%d:%d", &major, &minor); err != nil {
			continue
		}
		dev, best = major<<20|minor, len(mp)
	}
	return dev, best >= 0
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// execKeyOf returns the exec_allow key of the file of stat st: the
// executable as the kernel identifies its file.
func execKeyOf(st *syscall.Stat_t) followExecKey {
	return followExecKey{Ino: st.Ino, Dev: KernelDev(uint64(st.Dev))}
}

// AllowExec selects, from their exec on, the processes that exec the
// executable at path (the file, by device and inode, whatever path they
// name it by), and from then on only allowed processes: the kernel allows
// each at its exec (pid_allow, PIDExec), forgets it when it execs another
// file and when it is freed. Processes running it already are not
// selected by this (find them in /proc and AllowPID them). It loads the
// follow object's exec and free programs; Close detaches them.
//
// The file is identified by its inode and by its device as stat(2)
// reports it and, where that differs, as /proc/self/mountinfo gives its
// mount's superblock (btrfs reports a subvolume's own device to stat, and
// overlayfs may report a lower file system's): the kernel's filter
// compares the superblock's.
func (f *Filter) AllowExec(path string) error {
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		return fmt.Errorf("filter: executable %s: %w", path, err)
	}
	if st.Mode&syscall.S_IFMT != syscall.S_IFREG {
		return fmt.Errorf("filter: executable %s: not a regular file", path)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.execAllow == nil {
		return fmt.Errorf("filter: executable %s: the filter has no %s map (WrapMaps)", path, MapExecAllow)
	}
	keys := []followExecKey{execKeyOf(&st)}
	if dev, ok := mountDev(path); ok && dev != keys[0].Dev {
		keys = append(keys, followExecKey{Ino: st.Ino, Dev: dev})
	}
	v := pidAllowed
	for _, k := range keys {
		if err := f.execAllow.Update(&k, &v, ebpf.UpdateAny); err != nil {
			return fmt.Errorf("filter: allow executable %s: %w", path, err)
		}
	}
	if err := f.attachLocked(followProgFollowExec, followProgFollowFree); err != nil {
		return err
	}
	return f.setFlagsLocked(f.flags | FlagPIDAllow | FlagExec)
}

// FollowChildrenOf allows, from their fork on, the children of process pid
// without selecting pid itself: the recorder calls it with its own pid
// just before starting the command to record (`record -- COMMAND`), so the
// command is selected before it execs, and StopFollowingChildrenOf right
// after. It loads the follow program if Follow was not called.
func (f *Filter) FollowChildrenOf(pid uint32) error {
	if err := f.Follow(); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	v := pidAllowed
	if err := f.follow.FollowParents.Update(&pid, &v, ebpf.UpdateAny); err != nil {
		return fmt.Errorf("filter: follow the children of %d: %w", pid, err)
	}
	return nil
}

// StopFollowingChildrenOf undoes FollowChildrenOf: later children of pid
// are not allowed (those already allowed stay).
func (f *Filter) StopFollowingChildrenOf(pid uint32) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.follow == nil {
		return nil
	}
	if err := f.follow.FollowParents.Delete(&pid); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("filter: stop following the children of %d: %w", pid, err)
	}
	return nil
}

// Followed returns how many processes the follow program has allowed.
func (f *Filter) Followed() (uint64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.follow == nil {
		return 0, nil
	}
	var zero uint32
	var per []uint64
	if err := f.follow.FollowCount.Lookup(&zero, &per); err != nil {
		return 0, err
	}
	var n uint64
	for _, v := range per {
		n += v
	}
	return n, nil
}

// Close detaches the follow program and closes the maps NewFilter created.
func (f *Filter) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	var errs []error
	for _, l := range f.followLinks {
		errs = append(errs, l.Close())
	}
	f.followLinks = nil
	f.attached = nil
	if f.follow != nil {
		errs = append(errs, f.follow.Close())
		f.follow = nil
	}
	if f.owned {
		for _, m := range []*ebpf.Map{f.config, f.pidAllow, f.pidBlock, f.commAllow, f.execAllow} {
			if m != nil {
				errs = append(errs, m.Close())
			}
		}
	}
	return errors.Join(errs...)
}

// Selected reports whether process pid, whose comm is comm, passes the
// filter as the kernel's selected() would decide now: user space asks it
// for what it writes into a recording on the programs' behalf (the proc
// stream's snapshot of the processes alive at start).
func (f *Filter) Selected(pid uint32, comm string) bool {
	f.mu.Lock()
	flags := f.flags
	f.mu.Unlock()
	if flags == 0 {
		return true
	}
	var v uint8
	if flags&FlagPIDBlock != 0 && f.pidBlock.Lookup(&pid, &v) == nil {
		return false
	}
	if flags&(FlagPIDAllow|FlagCommAllow) == 0 {
		return true
	}
	if flags&FlagPIDAllow != 0 && f.pidAllow.Lookup(&pid, &v) == nil {
		return true
	}
	if flags&FlagCommAllow != 0 {
		k := CommKey(comm)
		if f.commAllow.Lookup(&k, &v) == nil {
			return true
		}
	}
	return false
}
