package tcp

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/cilium/ebpf"
)

// tcpListen is the st column of a listening socket in /proc/net/tcp.
const tcpListen = "0A"

// Listener is a TCP listening socket that exists before the recording,
// with its owner.
type Listener struct {
	Port uint16
	PID  uint32 // 0 if no process holds it (seen from this pid namespace)
	Comm string
}

// ExistingListeners returns the listening TCP sockets of this network
// namespace (/proc/net/tcp and tcp6) with the process that holds each (the
// lowest pid among those that have it open: for a server that forks its
// workers, the parent). A socket that no process holds, or one this
// process may not see, has PID 0.
func ExistingListeners(proc string) ([]Listener, error) {
	ports := map[uint64]uint16{} // socket inode -> port
	for _, name := range []string{"net/tcp", "net/tcp6"} {
		f, err := os.Open(filepath.Join(proc, name))
		if errors.Is(err, os.ErrNotExist) {
			continue // no IPv6
		}
		if err != nil {
			return nil, err
		}
		err = parseListeners(f, ports)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", filepath.Join(proc, name), err)
		}
	}
	if len(ports) == 0 {
		return nil, nil
	}
	owners := socketOwners(proc, ports)
	out := make([]Listener, 0, len(ports))
	for ino, port := range ports {
		l := Listener{Port: port}
		if pid, ok := owners[ino]; ok {
			l.PID = pid
			if b, err := os.ReadFile(filepath.Join(proc, strconv.Itoa(int(pid)), "comm")); err == nil {
				l.Comm = strings.TrimSuffix(string(b), "\n")
			}
		}
		out = append(out, l)
	}
	return out, nil
}

// parseListeners adds the listening sockets of a /proc/net/tcp{,6} table to
// ports (inode -> local port).
func parseListeners(r io.Reader, ports map[uint64]uint16) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 4096), 1<<16)
	line := 0
	for sc.Scan() {
		line++
		f := strings.Fields(sc.Text())
		if line == 1 || len(f) < 10 || f[3] != tcpListen {
			continue // the header, or not a listener
		}
		_, portHex, ok := strings.Cut(f[1], ":")
		port, err := strconv.ParseUint(portHex, 16, 16)
		if !ok || err != nil {
			return fmt.Errorf("line %d: local address %q", line, f[1])
		}
		ino, err := strconv.ParseUint(f[9], 10, 64)
		if err != nil {
			return fmt.Errorf("line %d: inode %q", line, f[9])
		}
		if ino != 0 {
			ports[ino] = uint16(port)
		}
	}
	return sc.Err()
}

// socketOwners finds, for each socket inode of ports, the lowest pid that
// has it open, from /proc/PID/fd. Processes that vanish or may not be read
// are passed over.
func socketOwners(proc string, ports map[uint64]uint16) map[uint64]uint32 {
	owners := map[uint64]uint32{}
	dirs, _ := os.ReadDir(proc)
	for _, d := range dirs {
		pid, err := strconv.ParseUint(d.Name(), 10, 32)
		if err != nil {
			continue
		}
		fdDir := filepath.Join(proc, d.Name(), "fd")
		fds, err := os.ReadDir(fdDir)
		if err != nil {
			continue
		}
		for _, fd := range fds {
			target, err := os.Readlink(filepath.Join(fdDir, fd.Name()))
			if err != nil || !strings.HasPrefix(target, "socket:[") {
				continue
			}
			ino, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimPrefix(target, "socket:["), "]"), 10, 64)
			if err != nil {
				continue
			}
			if _, ok := ports[ino]; !ok {
				continue
			}
			if cur, ok := owners[ino]; !ok || uint32(pid) < cur {
				owners[ino] = uint32(pid)
			}
		}
	}
	return owners
}

// owner is struct owner of tcp.c.
type owner struct {
	Pid  uint32
	Comm [16]byte
}

// seedListeners puts the listeners that exist now into the tcp_listeners
// map, so that their connections are attributed to their owner. Entries
// the programs made already (a listener seen since the attach) are kept.
// A listener made between the seed and the attach stays unknown: its
// connections' events get pid 0, never another process.
func seedListeners(m *ebpf.Map) error {
	ls, err := ExistingListeners("/proc")
	if err != nil {
		return fmt.Errorf("seeding the listeners: %w", err)
	}
	for _, l := range ls {
		if l.PID == 0 {
			continue // unknown: no entry, as for any unknown owner
		}
		o := owner{Pid: l.PID}
		copy(o.Comm[:len(o.Comm)-1], l.Comm)
		port := uint32(l.Port)
		if err := m.Update(&port, &o, ebpf.UpdateNoExist); err != nil && !errors.Is(err, ebpf.ErrKeyExist) {
			return fmt.Errorf("seeding the listener on port %d: %w", l.Port, err)
		}
	}
	return nil
}
