// Package gofunctest gives tests the Go HTTP server that the gofunc
// tracer's tests instrument (bpf/tracers/gofunc/testdata/server).
package gofunctest

import (
	"compress/gzip"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
)

// Server returns the path of the test server, built afresh into
// tb.TempDir() where a Go toolchain is installed, else the prebuilt copy
// (server.GOARCH.gz) that `go generate` in package gofunc commits for the
// kernel matrix's VMs. dir is bpf/tracers/gofunc/testdata as the calling
// test sees it. A missing copy fails the test: it must run everywhere.
func Server(tb testing.TB, dir string) string {
	tb.Helper()
	out := filepath.Join(tb.TempDir(), "server")
	if gobin, err := exec.LookPath("go"); err == nil {
		cmd := exec.Command(gobin, "build", "-trimpath", "-o", out, "./server")
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if b, err := cmd.CombinedOutput(); err != nil {
			tb.Fatalf("building the test server: %v\n%s", err, b)
		}
		return out
	}
	gz := filepath.Join(dir, "server."+runtime.GOARCH+".gz")
	in, err := os.Open(gz)
	if err != nil {
		tb.Fatalf("no Go toolchain to build the test server, and no prebuilt copy (go generate): %v", err)
	}
	defer in.Close()
	zr, err := gzip.NewReader(in)
	if err != nil {
		tb.Fatalf("%s: %v", gz, err)
	}
	w, err := os.OpenFile(out, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := io.Copy(w, zr); err != nil {
		tb.Fatalf("%s: %v", gz, err)
	}
	if err := w.Close(); err != nil {
		tb.Fatal(err)
	}
	return out
}
