package record

// Waiting for the processes a recording follows by PID.

import (
	"encoding/binary"
	"fmt"
	"sync"

	"golang.org/x/sys/unix"
)

// watchPIDs returns a channel closed once every process in pids has exited
// (none if pids is empty), and a function that stops watching: it ends the
// watching goroutine and closes its pidfds, for a recording that ends
// before its processes do. It fails if a process does not exist.
func watchPIDs(pids []uint32) (<-chan struct{}, func(), error) {
	if len(pids) == 0 {
		return nil, func() {}, nil
	}
	// The first descriptor polled is an eventfd that stop writes to.
	stopFd, err := unix.Eventfd(0, unix.EFD_CLOEXEC)
	if err != nil {
		return nil, nil, fmt.Errorf("record: watching --pid: %w", err)
	}
	fds := []unix.PollFd{{Fd: int32(stopFd), Events: unix.POLLIN}}
	closeAll := func() {
		for _, f := range fds {
			if f.Fd >= 0 {
				unix.Close(int(f.Fd))
			}
		}
	}
	for _, pid := range pids {
		fd, err := unix.PidfdOpen(int(pid), 0) // always close-on-exec
		if err != nil {
			closeAll()
			return nil, nil, fmt.Errorf("record: --pid %d: %w", pid, err)
		}
		fds = append(fds, unix.PollFd{Fd: int32(fd), Events: unix.POLLIN})
	}
	done := make(chan struct{})
	ended := make(chan struct{})
	go func() {
		defer close(ended)
		defer closeAll()
		for left := len(fds) - 1; left > 0; {
			if _, err := unix.Poll(fds, -1); err != nil && err != unix.EINTR {
				return
			}
			if fds[0].Revents != 0 {
				return // stopped
			}
			for i := 1; i < len(fds); i++ {
				if fds[i].Fd >= 0 && fds[i].Revents != 0 {
					unix.Close(int(fds[i].Fd))
					fds[i].Fd = -1 // poll ignores negative fds
					left--
				}
			}
		}
		close(done)
	}()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			var one [8]byte // an eventfd counter: a u64 in host order
			binary.NativeEndian.PutUint64(one[:], 1)
			_, _ = unix.Write(stopFd, one[:])
			<-ended
		})
	}
	return done, stop, nil
}
