// Command workload is the known workload that ebpfrec's demo and fixtures
// record: every action it takes is counted, so a recording of it can be
// checked to the event.
//
//	workload demo DIR [child-server]  execs, opens, TCP connections, exits and syscalls (see demo)
//	workload serve         listen on 127.0.0.1, print the address, accept until stdin closes
//	workload storm N [wait] N getpid(2) calls as fast as possible (after SIGUSR1 with wait)
//	workload getppid N M   wait for SIGUSR1, then N getppid(2) and M getpgid(2) calls
//	workload exit CODE     exit with CODE
//	workload sleep         sleep until killed
package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
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
		switch {
		case len(os.Args) == 3:
			err = demo(os.Args[2], false)
		case len(os.Args) == 4 && os.Args[3] == "child-server":
			err = demo(os.Args[2], true)
		default:
			usage()
		}
	case "serve":
		err = serve()
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
	fmt.Fprintln(os.Stderr, "usage: workload demo DIR [child-server] | serve | storm N [wait] | getppid N M | exit CODE | sleep")
	os.Exit(2)
}

func demo(dir string, childServer bool) error {
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
	addr, stop, err := listener(childServer)
	if err != nil {
		return err
	}
	for i := 0; i < demoTCP; i++ {
		c, err := net.Dial("tcp4", addr)
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
	return stop()
}

// listener starts the demo's TCP listener on 127.0.0.1: in this process, or
// (childServer) in a child running `workload serve`, so that the server's
// side of each connection belongs to another process than the client's
// (on loopback both run in the client's softirq context).
func listener(childServer bool) (addr string, stop func() error, err error) {
	if !childServer {
		ln, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			return "", nil, err
		}
		go accept(ln)
		return ln.Addr().String(), ln.Close, nil
	}
	self, err := os.Executable()
	if err != nil {
		return "", nil, err
	}
	cmd := exec.Command(self, "serve")
	in, err := cmd.StdinPipe()
	if err != nil {
		return "", nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return "", nil, err
	}
	if err := cmd.Start(); err != nil {
		return "", nil, err
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return "", nil, fmt.Errorf("serve: no address: %w", err)
	}
	return strings.TrimSpace(line), func() error {
		in.Close()
		return cmd.Wait()
	}, nil
}

// serve is the child server of demo: it prints its address, accepts
// connections and reads them to the end, and exits when stdin closes.
func serve() error {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return err
	}
	fmt.Println(ln.Addr().String())
	go accept(ln)
	_, _ = io.Copy(io.Discard, os.Stdin)
	return ln.Close()
}

// accept reads every connection to the end and closes it.
func accept(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		_, _ = io.Copy(io.Discard, c)
		c.Close()
	}
}
