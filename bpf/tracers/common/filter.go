// Package common holds what every built-in tracer shares: the kernel-side
// process filter (filter.h and the Go Filter that owns its maps) and the
// follow program that extends the filter to the descendants of a command
// (`ebpfrec record -- COMMAND`).
//
// One Filter serves a whole recording: create it once with NewFilter, pass
// its MapReplacements to every tracer's load (each tracer's object defines
// the same maps through filter.h), and select processes with AllowPID,
// BlockPID and AllowComm. Changes apply to every tracer at once, at any time.
package common

import (
	"errors"
	"fmt"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
)

// Flags of the filter_config map (key 0); they mirror filter.h.
const (
	FlagPIDAllow  uint32 = 1 << 0 // pid_allow is in force
	FlagCommAllow uint32 = 1 << 1 // comm_allow is in force
	FlagPIDBlock  uint32 = 1 << 2 // pid_block is in force
	FlagFollow    uint32 = 1 << 3 // the follow program allows children of allowed processes
)

// Values of pid_allow entries; they mirror filter.h.
const (
	pidAllowed  uint8 = 1
	pidFollowed uint8 = 2
)

// Names of the filter maps, as every tracer's object names them.
const (
	MapFilterConfig = "filter_config"
	MapPIDAllow     = "pid_allow"
	MapPIDBlock     = "pid_block"
	MapCommAllow    = "comm_allow"
)

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
	owned     bool // the maps were created by NewFilter and are closed by Close

	follow      *followObjects
	followLinks []link.Link
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
	return map[string]*ebpf.Map{
		MapFilterConfig: f.config,
		MapPIDAllow:     f.pidAllow,
		MapPIDBlock:     f.pidBlock,
		MapCommAllow:    f.commAllow,
	}
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
// earlier BlockPID of pid.
func (f *Filter) AllowPID(pid uint32) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.pidBlock.Delete(&pid); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("filter: unblock pid %d: %w", pid, err)
	}
	v := pidAllowed
	if err := f.pidAllow.Update(&pid, &v, ebpf.UpdateAny); err != nil {
		return fmt.Errorf("filter: allow pid %d: %w", pid, err)
	}
	return f.setFlagsLocked(f.flags | FlagPIDAllow)
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
	if f.follow != nil {
		return nil
	}
	spec, err := loadFollow()
	if err != nil {
		return err
	}
	objs := &followObjects{}
	if err := spec.LoadAndAssign(objs, &ebpf.CollectionOptions{MapReplacements: f.MapReplacements()}); err != nil {
		return fmt.Errorf("filter: load the follow program: %w", err)
	}
	for _, p := range []*ebpf.Program{objs.FollowFork, objs.FollowFree} {
		l, err := link.AttachTracing(link.TracingOptions{Program: p})
		if err != nil {
			for _, l := range f.followLinks {
				l.Close()
			}
			f.followLinks = nil
			objs.Close()
			return fmt.Errorf("filter: attach the follow program (tp_btf/sched_process_fork, sched_process_free): %w", err)
		}
		f.followLinks = append(f.followLinks, l)
	}
	f.follow = objs
	return f.setFlagsLocked(f.flags | FlagFollow)
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
	if f.follow != nil {
		errs = append(errs, f.follow.Close())
		f.follow = nil
	}
	if f.owned {
		for _, m := range []*ebpf.Map{f.config, f.pidAllow, f.pidBlock, f.commAllow} {
			if m != nil {
				errs = append(errs, m.Close())
			}
		}
	}
	return errors.Join(errs...)
}
