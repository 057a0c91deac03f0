// Command workload is the known workload that ebpfrec's demo and fixtures
// record: every action it takes is counted, so a recording of it can be
// checked to the event.
//
//	workload demo DIR      execs, opens, TCP connections, exits and syscalls (see demo)
//	workload storm N [wait] N getpid(2) calls as fast as possible (after SIGUSR1 with wait)
//	workload getppid N M   wait for SIGUSR1, then N getppid(2) and M getpgid(2) calls
//	workload exit CODE     exit with CODE
//	workload sleep         sleep until killed
package main

import (
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// What demo does; the fixtures' README and tests rely on these numbers.
const (
	demoExecs    = 5 // executions of DIR/ebpfrec-demo-0 .. -4 (copies of /bin/true)
	demoFiles    = 4 // DIR/file-0 .. -3: each created (O_CREAT) once, then read once
	demoTCP      = 3 // connections to a listener of its own on 127.0.0.1
	demoExitCode = 3 // one child exits with this code
	demoGetpid   = 1000
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	var err error
	switch os.Args[1] {
	case "demo":
		if len(os.Args) != 3 {
			usage()
		}
		err = demo(os.Args[2])
	case "storm":
		n := atoi(3)
		if len(os.Args) > 3 && os.Args[3] == "wait" {
			waitUSR1()
		}
		for i := 0; i < n; i++ {
			syscall.Getpid()
		}
	case "getppid":
		n, m := atoi(3), atoi(4)
		waitUSR1()
		for i := 0; i < n; i++ {
			syscall.Getppid()
		}
		for i := 0; i < m; i++ {
			_, _ = syscall.Getpgid(0)
		}
	case "exit":
		os.Exit(atoi(3))
	case "sleep":
		time.Sleep(time.Hour)
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "workload:", err)
		os.Exit(1)
	}
}

// waitUSR1 blocks until the process receives SIGUSR1 (so a recorder can be
// set up for its PID first).
func waitUSR1() {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGUSR1)
	<-ch
}

func atoi(argc int) int {
	if len(os.Args) < argc {
		usage()
	}
	n, err := strconv.Atoi(os.Args[argc-1])
	if err != nil {
		usage()
	}
	return n
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: workload demo DIR | storm N [wait] | getppid N M | exit CODE | sleep")
	os.Exit(2)
}

func demo(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	tr, err := os.ReadFile("/bin/true")
	if err != nil {
		return err
	}
	for i := 0; i < demoExecs; i++ {
		p := filepath.Join(dir, fmt.Sprintf("ebpfrec-demo-%d", i))
		if err := os.WriteFile(p, tr, 0o700); err != nil {
			return err
		}
		if err := exec.Command(p).Run(); err != nil {
			return err
		}
	}
	for i := 0; i < demoFiles; i++ {
		p := filepath.Join(dir, fmt.Sprintf("file-%d", i))
		if err := os.WriteFile(p, []byte("ebpfrec\n"), 0o600); err != nil {
			return err
		}
		if _, err := os.ReadFile(p); err != nil {
			return err
		}
	}
	if _, err := os.Open(filepath.Join(dir, "missing")); err == nil {
		return fmt.Errorf("%s/missing exists", dir)
	}
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_, _ = io.Copy(io.Discard, c)
			c.Close()
		}
	}()
	for i := 0; i < demoTCP; i++ {
		c, err := net.Dial("tcp4", ln.Addr().String())
		if err != nil {
			return err
		}
		_, _ = c.Write([]byte("hello"))
		c.Close()
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	if err := exec.Command(self, "exit", strconv.Itoa(demoExitCode)).Run(); err == nil {
		return fmt.Errorf("exit %d: no error", demoExitCode)
	}
	sl := exec.Command(self, "sleep")
	if err := sl.Start(); err != nil {
		return err
	}
	time.Sleep(50 * time.Millisecond)
	_ = sl.Process.Kill()
	_ = sl.Wait()
	for i := 0; i < demoGetpid; i++ {
		syscall.Getpid()
	}
	// Let the TCP teardown finish while we are still recorded.
	time.Sleep(100 * time.Millisecond)
	return nil
}
