// gotarget is the Go program that package bpf's tests inspect and probe.
// With arguments "calls N" it waits for a byte on stdin (so a test can
// attach its probes first), calls work(i) for i in 0..N-1, and prints the
// sum of the results. It uses no fmt, to stay small: `make generate`
// commits a prebuilt copy for the kernel matrix's VMs, which have no Go
// toolchain.
package main

import (
	"os"
	"strconv"
)

// Server has fields at known offsets for the DWARF tests: 8-byte words on
// every 64-bit architecture.
type Server struct {
	Name    string // 0
	Port    int    // 16
	Handled uint64 // 24
	Next    *Server
}

// HandleGet and HandlePost are matched by the tests' globs.
//
//go:noinline
func (s *Server) HandleGet(n int) int { s.Handled++; return n + s.Port }

//go:noinline
func (s *Server) HandlePost(n int) int { s.Handled += 2; return n - s.Port }

// work has two return paths, so more than one return instruction.
//
//go:noinline
func work(x int) int {
	if x%3 == 0 {
		return x * 7
	}
	var buf [64]byte
	for i := range buf {
		buf[i] = byte(x + i)
	}
	s := 0
	for _, b := range buf {
		s += int(b)
	}
	return s + x
}

func main() {
	if len(os.Args) == 3 && os.Args[1] == "calls" {
		n, err := strconv.Atoi(os.Args[2])
		if err != nil {
			os.Exit(2)
		}
		var b [1]byte
		if _, err := os.Stdin.Read(b[:]); err != nil {
			os.Exit(2)
		}
		sum := 0
		for i := range n {
			sum += work(i)
		}
		os.Stdout.WriteString(strconv.Itoa(sum) + "\n")
		return
	}
	s := &Server{Name: "x", Port: 1}
	os.Stdout.WriteString(strconv.Itoa(s.HandleGet(len(os.Args))+s.HandlePost(2)) + "\n")
}
