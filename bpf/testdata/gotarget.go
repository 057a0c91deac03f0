package testdata

import (
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// GoTarget returns the path of the gotarget program (gotarget/main.go)
// built for goarch, with -ldflags=-s -w if stripped: GoTargetAs with
// GoExe or GoStripped.
func GoTarget(tb testing.TB, dir, goarch string, stripped bool) string {
	tb.Helper()
	if stripped {
		return GoTargetAs(tb, dir, goarch, GoStripped)
	}
	return GoTargetAs(tb, dir, goarch, GoExe)
}

// GoBuild is a way of building gotarget: its name ("" for the default
// build) and its go build flags.
type GoBuild struct {
	Name  string
	Flags []string
}

// The builds of gotarget that tests use. `make generate` commits a copy of
// each for amd64 (and of GoExe for arm64): GoExe and GoStripped by gen.go,
// the position-independent ones here.
//
//go:generate sh -c "CGO_ENABLED=0 GOOS=linux GOARCH=amd64 go build -trimpath -buildmode=pie -o gotarget/gotarget-pie.amd64 ./gotarget && gzip -9nf gotarget/gotarget-pie.amd64 && chmod 644 gotarget/gotarget-pie.amd64.gz"
//go:generate sh -c "CGO_ENABLED=0 GOOS=linux GOARCH=amd64 go build -trimpath -buildmode=pie -ldflags='-s -w' -o gotarget/gotarget-pie-stripped.amd64 ./gotarget && gzip -9nf gotarget/gotarget-pie-stripped.amd64 && chmod 644 gotarget/gotarget-pie-stripped.amd64.gz"
var (
	GoExe         = GoBuild{}
	GoStripped    = GoBuild{"stripped", []string{"-ldflags=-s -w"}}
	GoPIE         = GoBuild{"pie", []string{"-buildmode=pie"}}
	GoPIEStripped = GoBuild{"pie-stripped", []string{"-buildmode=pie", "-ldflags=-s -w"}}
)

// GoTargetAs returns the path of the gotarget program built for goarch as
// b says. dir is this folder as the calling test sees it ("testdata" from
// package bpf). Where a Go toolchain is installed the program is built
// afresh into tb.TempDir(); elsewhere (the kernel matrix's VMs) the copy
// `make generate` committed is used: gotarget/gotarget[-NAME].GOARCH.gz.
// A missing copy fails the test: it must run everywhere.
func GoTargetAs(tb testing.TB, dir, goarch string, b GoBuild) string {
	tb.Helper()
	name := "gotarget"
	if b.Name != "" {
		name += "-" + b.Name
	}
	out := filepath.Join(tb.TempDir(), name)
	if gobin, err := exec.LookPath("go"); err == nil {
		args := append([]string{"build", "-trimpath", "-o", out}, b.Flags...)
		cmd := exec.Command(gobin, append(args, "./gotarget")...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOARCH="+goarch, "GOOS=linux")
		if b, err := cmd.CombinedOutput(); err != nil {
			tb.Fatalf("building %s for %s: %v\n%s", name, goarch, err, b)
		}
		return out
	}
	gz := filepath.Join(dir, "gotarget", name+"."+goarch+".gz")
	in, err := os.Open(gz)
	if err != nil {
		tb.Fatalf("no Go toolchain to build gotarget, and no prebuilt copy (make generate): %v", err)
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

// GoTargetNoFuncTable returns gotarget built with -ldflags=-s -w for
// goarch, its Go function table's section renamed (.gopclntab to
// .gopclnXXX), as a file named gotarget-stripped: a Go program that runs
// (its runtime finds the table without section headers) but whose
// functions no symbol table nor function table names.
func GoTargetNoFuncTable(tb testing.TB, dir, goarch string) string {
	tb.Helper()
	b, err := os.ReadFile(GoTargetAs(tb, dir, goarch, GoStripped))
	if err != nil {
		tb.Fatal(err)
	}
	i := bytes.Index(b, []byte("\x00.gopclntab\x00"))
	if i < 0 {
		tb.Fatal("gotarget has no .gopclntab section name")
	}
	copy(b[i+1:], ".gopclnXXX")
	out := filepath.Join(tb.TempDir(), "gotarget-stripped")
	if err := os.WriteFile(out, b, 0o755); err != nil {
		tb.Fatal(err)
	}
	return out
}
