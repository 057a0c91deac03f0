package exeinfo

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/ebpfrec/ebpfrec/bpf/testdata"
)

// target builds (or unpacks) bpf/testdata/gotarget and opens it.
func target(t *testing.T, goarch string, stripped bool) *File {
	t.Helper()
	f, err := Open(testdata.GoTarget(t, "../testdata", goarch, stripped))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// sectionOffset computes a symbol's file offset another way than File
// does: from the section holding it rather than from the program headers.
func sectionOffset(t *testing.T, path string, va uint64) uint64 {
	t.Helper()
	ef, err := elf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer ef.Close()
	for _, s := range ef.Sections {
		if s.Flags&elf.SHF_EXECINSTR != 0 && va >= s.Addr && va < s.Addr+s.Size {
			return va - s.Addr + s.Offset
		}
	}
	t.Fatalf("%#x in no executable section of %s", va, path)
	return 0
}

func readBytes(t *testing.T, path string, off uint64, n int) []byte {
	t.Helper()
	fd, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer fd.Close()
	b := make([]byte, n)
	if _, err := fd.ReadAt(b, int64(off)); err != nil {
		t.Fatal(err)
	}
	return b
}

func TestGoBinary(t *testing.T) {
	f := target(t, "amd64", false)
	if f.Go == nil || !strings.HasPrefix(f.Go.Version, "go1.") ||
		f.Go.Path != "github.com/ebpfrec/ebpfrec/bpf/testdata/gotarget" || f.Go.Module != "github.com/ebpfrec/ebpfrec" {
		t.Fatalf("Go = %+v", f.Go)
	}
	if f.Machine != elf.EM_X86_64 || f.RequireGo() != nil {
		t.Errorf("machine %s, RequireGo %v", f.Machine, f.RequireGo())
	}
	if s := f.String(); !strings.Contains(s, "X86_64") || !strings.Contains(s, f.Go.Version) {
		t.Errorf("String() = %q", s)
	}

	for _, name := range []string{"main.work", "main.(*Server).HandleGet", "main.main", "runtime.main"} {
		s, err := f.Symbol(name)
		if err != nil {
			t.Fatal(err)
		}
		if want := sectionOffset(t, f.Path, s.Value); s.Offset != want || s.Size == 0 {
			t.Errorf("%s: offset %#x size %d, want offset %#x (from its section)", name, s.Offset, s.Size, want)
		}
	}

	work, _ := f.Symbol("main.work")
	fo, err := f.ReturnOffsets(work)
	if err != nil {
		t.Fatal(err)
	}
	// work has two return statements, which the compiler keeps as two RETs.
	if fo.Start != work.Offset || len(fo.Returns) != 2 {
		t.Fatalf("main.work: %+v, want start %#x and 2 returns", fo, work.Offset)
	}
	for _, r := range fo.Returns {
		if r <= fo.Start || r >= fo.Start+work.Size {
			t.Errorf("return at %#x outside main.work [%#x, %#x)", r, fo.Start, fo.Start+work.Size)
		}
		if b := readBytes(t, f.Path, r, 1); b[0] != 0xc3 {
			t.Errorf("byte at return offset %#x is %#02x, not RET (0xc3)", r, b[0])
		}
	}

	got, err := f.Match("main.(*Server).Handle*")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range got {
		names = append(names, s.Name)
	}
	if strings.Join(names, " ") != "main.(*Server).HandleGet main.(*Server).HandlePost" {
		t.Errorf("Match = %v", names)
	}

	for _, c := range []struct {
		typ, field string
		off        uint64
		err        error
	}{
		{"main.Server", "Name", 0, nil},
		{"main.Server", "Port", 16, nil},
		{"main.Server", "Handled", 24, nil},
		{"main.Server", "Next", 32, nil},
		{"main.Server", "Missing", 0, ErrNoField},
		{"main.NoSuchType", "Port", 0, ErrNoField},
		{"runtime.g", "goid", 0, nil}, // checked below against its neighbour
	} {
		off, err := f.FieldOffset(c.typ, c.field)
		if !errors.Is(err, c.err) || (c.err == nil && c.typ == "main.Server" && off != c.off) {
			t.Errorf("FieldOffset(%s, %s) = %d, %v; want %d, %v", c.typ, c.field, off, err, c.off, c.err)
		}
		if err != nil && (!strings.Contains(err.Error(), f.Path) || !strings.Contains(err.Error(), c.typ)) {
			t.Errorf("error %q does not name the file and the type", err)
		}
		if c.typ == "runtime.g" && (off == 0 || off > 1024) {
			t.Errorf("runtime.g.goid at %d", off)
		}
	}

	for _, c := range []struct {
		name string
		err  error
	}{
		{"main.nosuch", ErrNoSymbol},
		{"main.(*Server).Nope*", ErrNoSymbol},
	} {
		var err error
		if strings.Contains(c.name, "*") {
			_, err = f.Match(c.name)
		} else {
			_, err = f.Symbol(c.name)
		}
		if !errors.Is(err, c.err) || !strings.Contains(err.Error(), f.Path) || !strings.Contains(err.Error(), c.name) {
			t.Errorf("%s: %v, want %v naming the file and the symbol", c.name, err, c.err)
		}
	}
}

// TestStrippedGoBinary: a Go binary built with -ldflags=-s -w keeps its
// build info and its functions (from its Go function table, see
// TestStrippedAsFull), but not the DWARF of its own types.
func TestStrippedGoBinary(t *testing.T) {
	f := target(t, "amd64", true)
	if f.Go == nil || !strings.HasPrefix(f.Go.Version, "go1.") {
		t.Errorf("a stripped Go binary keeps its build info: Go = %+v", f.Go)
	}
	if s, err := f.Symbol("main.work"); err != nil || s.Offset == 0 || s.Size == 0 {
		t.Errorf("Symbol: %+v, %v", s, err)
	}
	if _, err := f.Symbol("main.nosuch"); !errors.Is(err, ErrNoSymbol) || !strings.Contains(err.Error(), "main.nosuch") {
		t.Errorf("Symbol(main.nosuch): %v", err)
	}
	if _, err := f.FieldOffset("main.Server", "Port"); !errors.Is(err, ErrNoDWARF) || !strings.Contains(err.Error(), f.Path) {
		t.Errorf("FieldOffset: %v, want ErrNoDWARF naming the file", err)
	}
}

func TestARM64Returns(t *testing.T) {
	f := target(t, "arm64", false)
	if f.Machine != elf.EM_AARCH64 {
		t.Fatalf("machine %s", f.Machine)
	}
	work, err := f.Symbol("main.work")
	if err != nil {
		t.Fatal(err)
	}
	fo, err := f.ReturnOffsets(work)
	if err != nil {
		t.Fatal(err)
	}
	if len(fo.Returns) != 2 {
		t.Fatalf("main.work: %+v, want 2 returns", fo)
	}
	for _, r := range fo.Returns {
		// RET (x30) is the word 0xd65f03c0.
		if w := binary.LittleEndian.Uint32(readBytes(t, f.Path, r, 4)); w != 0xd65f03c0 || (r-fo.Start)%4 != 0 {
			t.Errorf("word at return offset %#x is %#08x, not RET", r, w)
		}
	}
}

// libc returns the path of the C library, which the VMs of the kernel
// matrix carry too (for bash and the other tools their tests run).
func libc(t *testing.T) string {
	t.Helper()
	for _, p := range []string{"/lib/x86_64-linux-gnu/libc.so.6", "/lib/aarch64-linux-gnu/libc.so.6", "/lib64/libc.so.6", "/usr/lib/libc.so.6"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	t.Fatal("no libc.so.6 found")
	return ""
}

func TestCLibrary(t *testing.T) {
	path := libc(t)
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.Go != nil {
		t.Errorf("libc is a Go binary: %+v", f.Go)
	}
	s, err := f.Symbol("getaddrinfo")
	if err != nil {
		t.Fatal(err)
	}
	if want := sectionOffset(t, path, s.Value); s.Offset != want {
		t.Errorf("getaddrinfo at offset %#x, want %#x (from its section)", s.Offset, want)
	}
	// nm, where installed, reads the value independently.
	if out, err := exec.Command("nm", "-D", "--defined-only", path).Output(); err == nil {
		found := false
		for _, l := range strings.Split(string(out), "\n") {
			if fs := strings.Fields(l); len(fs) == 3 && strings.HasPrefix(fs[2], "getaddrinfo") && (fs[2] == "getaddrinfo" || strings.HasPrefix(fs[2], "getaddrinfo@")) {
				v, _ := strconv.ParseUint(fs[0], 16, 64)
				found = true
				if v != s.Value {
					t.Errorf("getaddrinfo: value %#x, nm says %#x", s.Value, v)
				}
			}
		}
		if !found {
			t.Errorf("nm -D lists no getaddrinfo")
		}
	} else {
		t.Logf("no nm (%v): offset checked against the section table only", err)
	}
	// A shared library's code is reached through the dynamic symbols.
	if _, err := f.Match("getaddrinf?"); err != nil {
		t.Error(err)
	}
}

func TestNotGoNotELF(t *testing.T) {
	f, err := Open("/bin/true")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.Go != nil || !errors.Is(f.RequireGo(), ErrNotGo) {
		t.Errorf("/bin/true: Go = %+v, RequireGo %v", f.Go, f.RequireGo())
	}

	dir := t.TempDir()
	txt := filepath.Join(dir, "script.sh")
	os.WriteFile(txt, []byte("#!/bin/sh\necho hi\n"), 0o755)
	if _, err := Open(txt); !errors.Is(err, ErrNotELF) || !strings.Contains(err.Error(), txt) {
		t.Errorf("Open(text): %v, want ErrNotELF naming the file", err)
	}
	if _, err := Open(filepath.Join(dir, "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Open(missing): %v", err)
	}
	// An executable on an unsupported architecture: patch the machine.
	gt, err := os.ReadFile(target(t, "amd64", false).Path)
	if err != nil {
		t.Fatal(err)
	}
	binary.LittleEndian.PutUint16(gt[18:], uint16(elf.EM_RISCV))
	rf, err := NewFile(bytes.NewReader(gt), "riscv")
	if err != nil {
		t.Fatal(err)
	}
	s, err := rf.Symbol("main.work")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rf.ReturnOffsets(s); !errors.Is(err, ErrUnsupportedArch) || !strings.Contains(err.Error(), "main.work") {
		t.Errorf("ReturnOffsets on RISC-V: %v, want ErrUnsupportedArch naming the function", err)
	}
}

func TestGlob(t *testing.T) {
	for _, c := range []struct {
		pattern, name string
		want          bool
	}{
		{"main.(*Server).Handle*", "main.(*Server).HandleGet", true},
		{"main.(*Server).Handle*", "main.(*Server).Close", false},
		{"main.(*Server).Handle*", "main.(*Other).HandleGet", false},
		{"net/http.(*conn).serve", "net/http.(*conn).serve", true},
		{"net/*.serve", "net/http.(*conn).serve", true},
		{"main.work", "main.work", true},
		{"main.work", "main.worker", false},
		{"main.wor?", "main.work", true},
		{"main.\\*", "main.*", true},
		{"main.\\*", "main.x", false},
		{"*", "", true},
		{"", "x", false},
		{"a*b*c*d", "aXbYcZd", true},
		{"a*b*c*d", "aXbYcZ", false},
		{strings.Repeat("*a", 40) + "b", strings.Repeat("a", 100), false},
	} {
		if got := Glob(c.pattern, c.name); got != c.want {
			t.Errorf("Glob(%q, %q) = %v", c.pattern, c.name, got)
		}
	}
}

// FuzzNewFile feeds hostile bytes to the inspection: nothing may panic.
func FuzzNewFile(f *testing.F) {
	f.Add([]byte("\x7fELF\x02\x01\x01"))
	f.Add([]byte("#!/bin/sh\n"))
	if b, err := os.ReadFile("/bin/true"); err == nil && len(b) > 0 {
		f.Add(b[:min(len(b), 4096)])
	}
	// Files whose compressed function table or symbol table debug/elf
	// would inflate a thousandfold (TestHostileFunctionTable).
	f.Add(hostileELF(f, ".gopclntab", elf.SHT_PROGBITS, sharedTable(1<<16), elf.SHF_COMPRESSED, 0))
	f.Add(hostileELF(f, ".symtab", elf.SHT_SYMTAB, make([]byte, 24<<14), elf.SHF_COMPRESSED, 0))
	f.Fuzz(func(t *testing.T, b []byte) {
		ef, err := NewFile(bytes.NewReader(b), "fuzz")
		if err != nil {
			return
		}
		defer ef.Close()
		syms, _ := ef.Symbols()
		for i, s := range syms {
			if i == 4 {
				break
			}
			ef.ReturnOffsets(s)
			ef.Symbol(s.Name)
		}
		ef.Match("*a*")
		ef.FieldOffset("main.Server", "Port")
		_ = ef.String()
	})
}

// TestUnusableFunctionTableIgnored: a shared library without a symbol
// table whose section named .gopclntab is not a function table this
// package reads (a C library's section of that name, go1.18's layout)
// still gives its dynamic symbols; the table is ignored. Here libc with
// its build-id note renamed .gopclntab.
func TestUnusableFunctionTableIgnored(t *testing.T) {
	b, err := os.ReadFile(libc(t))
	if err != nil {
		t.Fatal(err)
	}
	// The section name, NUL-terminated early within the old one's bytes.
	const from = "\x00.note.gnu.build-id\x00"
	i := bytes.Index(b, []byte(from))
	if i < 0 {
		t.Fatalf("libc has no section %q", from)
	}
	copy(b[i+1:], ".gopclntab\x00")
	f, err := NewFile(bytes.NewReader(b), "libc-gopclntab")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.pclntabSymbols(); err == nil || !strings.Contains(err.Error(), "magic") {
		t.Fatalf("libc's .gopclntab read as a function table (%v)", err)
	}
	if s, err := f.Symbol("getaddrinfo"); err != nil || s.Offset == 0 {
		t.Errorf("getaddrinfo: %+v, %v", s, err)
	}
}
