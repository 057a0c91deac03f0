package exeinfo

import (
	"bytes"
	"compress/zlib"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"

	"github.com/ebpfrec/ebpfrec/bpf/testdata"
)

// targetAs builds (or unpacks) gotarget as b says and opens it.
func targetAs(t *testing.T, b testdata.GoBuild) *File {
	t.Helper()
	f, err := Open(testdata.GoTargetAs(t, "../testdata", "amd64", b))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// TestPclntabSymbols: the function table of a Go binary gives every
// function its symbol table gives, at the same address and file offset,
// for a default and a position-independent build; the function table's
// size runs to the next function, so it is never below the symbol's.
func TestPclntabSymbols(t *testing.T) {
	for _, c := range []struct {
		name   string
		goarch string
		b      testdata.GoBuild
	}{{"amd64", "amd64", testdata.GoExe}, {"amd64-pie", "amd64", testdata.GoPIE}, {"arm64", "arm64", testdata.GoExe}} {
		t.Run(c.name, func(t *testing.T) {
			f, err := Open(testdata.GoTargetAs(t, "../testdata", c.goarch, c.b))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			elfSyms, err := f.Symbols()
			if err != nil {
				t.Fatal(err)
			}
			pcs, err := f.pclntabSymbols()
			if err != nil {
				t.Fatal(err)
			}
			byName := make(map[string]Symbol, len(elfSyms))
			for _, s := range elfSyms {
				byName[s.Name] = s
			}
			same := 0
			for _, p := range pcs {
				s, ok := byName[p.Name]
				if !ok {
					// An assembly function's body, alone under its name in
					// the table, is NAME.abi0 in the symbol table; the
					// symbol table writes '·' as '.'.
					s, ok = byName[p.Name+".abi0"]
					if !ok {
						s, ok = byName[strings.ReplaceAll(p.Name, "·", ".")]
					}
				}
				if !ok {
					t.Errorf("%s: in the function table, not in the symbol table", p.Name)
					continue
				}
				if p.Value != s.Value || p.Offset != s.Offset || p.Offset == 0 || p.Size < s.Size {
					t.Errorf("%s: function table %+v, symbol table %+v", p.Name, p, s)
					continue
				}
				if strings.HasPrefix(p.Name, "main.") && p.Name != s.Name {
					t.Errorf("%s is %s in the symbol table", p.Name, s.Name)
				}
				same++
			}
			// gotarget has well over a thousand functions, all in both.
			if same < 1000 || same != len(pcs) {
				t.Errorf("%d of %d functions of the table agree with the symbol table", same, len(pcs))
			}
			// Its returns, found in the function table's bounds (up to
			// the next function), are the symbol table's.
			found := false
			for _, p := range pcs {
				if p.Name != "main.work" {
					continue
				}
				found = true
				want, err := f.ReturnOffsets(byName[p.Name])
				if err != nil {
					t.Fatal(err)
				}
				got, err := f.ReturnOffsets(p)
				if err != nil || fmt.Sprint(got) != fmt.Sprint(want) || len(got.Returns) != 2 {
					t.Errorf("main.work: returns %+v, %v from the function table, %+v from the symbol table", got, err, want)
				}
			}
			if !found {
				t.Error("no main.work in the function table")
			}
		})
	}
}

// TestStrippedAsFull: gotarget built with -ldflags=-s -w (no symbol
// table, no DWARF) gives the same functions, file offsets and return
// instructions as built in full, and the offsets of the runtime fields Go
// probes read; default and position-independent builds.
func TestStrippedAsFull(t *testing.T) {
	for _, c := range []struct{ full, stripped testdata.GoBuild }{
		{testdata.GoExe, testdata.GoStripped},
		{testdata.GoPIE, testdata.GoPIEStripped},
	} {
		t.Run("go"+c.stripped.Name, func(t *testing.T) {
			full, stripped := targetAs(t, c.full), targetAs(t, c.stripped)
			if ef, _ := elf.Open(stripped.Path); ef == nil || ef.SectionByType(elf.SHT_SYMTAB) != nil {
				t.Fatalf("%s has a symbol table", stripped.Path)
			} else {
				ef.Close()
			}
			for _, name := range []string{"main.work", "main.(*Server).HandleGet", "main.(*Server).HandlePost", "main.main", "runtime.main"} {
				fs, err := full.Symbol(name)
				if err != nil {
					t.Fatal(err)
				}
				ss, err := stripped.Symbol(name)
				if err != nil {
					t.Fatal(err)
				}
				if ss.Offset != fs.Offset || ss.Value != fs.Value {
					t.Errorf("%s: stripped %+v, full %+v", name, ss, fs)
				}
				fo, err := full.ReturnOffsets(fs)
				if err != nil {
					t.Fatal(err)
				}
				so, err := stripped.ReturnOffsets(ss)
				if err != nil {
					t.Fatal(err)
				}
				if fmt.Sprint(so) != fmt.Sprint(fo) || len(fo.Returns) == 0 {
					t.Errorf("%s: stripped returns %+v, full %+v", name, so, fo)
				}
			}
			work, _ := stripped.Symbol("main.work")
			if fo, _ := stripped.ReturnOffsets(work); len(fo.Returns) != 2 {
				t.Errorf("main.work of the stripped build: %+v, want 2 returns", fo)
			}
			var names []string
			got, err := stripped.Match("main.(*Server).Handle*")
			for _, s := range got {
				names = append(names, s.Name)
			}
			if err != nil || strings.Join(names, " ") != "main.(*Server).HandleGet main.(*Server).HandlePost" {
				t.Errorf("Match = %v, %v", names, err)
			}
			for _, fld := range [][2]string{{"runtime.g", "goid"}, {"runtime.g", "stack"}, {"runtime.stack", "hi"}} {
				want, err := full.FieldOffset(fld[0], fld[1])
				if err != nil {
					t.Fatal(err)
				}
				if got, err := stripped.FieldOffset(fld[0], fld[1]); got != want || err != nil {
					t.Errorf("%s.%s without DWARF: %d, %v; DWARF says %d", fld[0], fld[1], got, err, want)
				}
			}
			if _, err := stripped.FieldOffset("main.Server", "Port"); !errors.Is(err, ErrNoDWARF) {
				t.Errorf("main.Server.Port without DWARF: %v, want ErrNoDWARF", err)
			}
		})
	}
}

// TestRuntimeFieldVersions: the goid offset of a release outside the
// table is refused, naming the release.
func TestRuntimeFieldVersions(t *testing.T) {
	f := target(t, "amd64", true)
	for _, c := range []struct {
		version string
		want    uint64
		ok      bool
	}{
		{"go1.26.8", 152, true},
		{"go1.23.4", 160, true},
		{"go1.25rc1", 152, true},
		{"go1.22.0 X:boringcrypto", 152, true},
		{"go1.20.14", 0, false},
		{"go1.99.0", 0, false},
		{"devel go1.27-0123abcd", 0, false},
	} {
		f.Go.Version = c.version
		off, err := f.FieldOffset("runtime.g", "goid")
		if c.ok && (off != c.want || err != nil) {
			t.Errorf("%s: %d, %v; want %d", c.version, off, err, c.want)
		}
		if !c.ok && (!errors.Is(err, ErrNoDWARF) || !strings.Contains(err.Error(), c.version)) {
			t.Errorf("%s: %d, %v; want ErrNoDWARF naming the release", c.version, off, err)
		}
	}
}

// renameSection returns b with the name of section sec, in the section
// name table, changed to to (of the same length).
func renameSection(t *testing.T, b []byte, sec, to string) []byte {
	t.Helper()
	i := bytes.Index(b, []byte("\x00"+sec+"\x00"))
	if i < 0 || len(sec) != len(to) {
		t.Fatalf("no section name %s", sec)
	}
	out := bytes.Clone(b)
	copy(out[i+1:], to)
	return out
}

// TestNoFunctionTable: a Go binary without a symbol table whose function
// table is missing, or unreadable, says so.
func TestNoFunctionTable(t *testing.T) {
	path := testdata.GoTargetAs(t, "../testdata", "amd64", testdata.GoStripped)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	missing := renameSection(t, b, ".gopclntab", ".gopclnXXX")
	ef, err := elf.NewFile(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	sec := ef.Section(".gopclntab")
	corrupt := bytes.Clone(b)
	binary.LittleEndian.PutUint32(corrupt[sec.Offset:], 0xfffffff0) // go1.18's magic
	for _, c := range []struct {
		name string
		b    []byte
		want string
	}{
		{"missing", missing, "no Go function table (.gopclntab)"},
		{"corrupt", corrupt, "its Go function table is unreadable: .gopclntab: malformed Go function table: magic 0xfffffff0"},
	} {
		f, err := NewFile(bytes.NewReader(c.b), c.name)
		if err != nil {
			t.Fatal(err)
		}
		_, err = f.Symbol("main.work")
		if !errors.Is(err, ErrNoSymbols) || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), c.name+": ") {
			t.Errorf("%s: %v; want ErrNoSymbols saying %q", c.name, err, c.want)
		}
	}
}

// pclntab builds a go1.20+ function table of the functions given, with
// 8-byte words, as the linker lays it out.
func pclntab(funcs []pcFunc, end uint32) []byte {
	le := binary.LittleEndian
	hdr := make([]byte, 8+8*8)
	le.PutUint32(hdr, pclntabMagic120)
	hdr[6], hdr[7] = 1, 8
	var names []byte
	nameOffs := make([]int32, len(funcs))
	for i, f := range funcs {
		nameOffs[i] = int32(len(names))
		names = append(append(names, f.name...), 0)
	}
	nameTab := len(hdr)
	pcln := nameTab + len(names)
	le.PutUint64(hdr[8:], uint64(len(funcs)))
	le.PutUint64(hdr[8+3*8:], uint64(nameTab))
	le.PutUint64(hdr[8+7*8:], uint64(pcln))
	ftab := make([]byte, 8*len(funcs)+4)
	var recs []byte
	for i, f := range funcs {
		le.PutUint32(ftab[8*i:], f.entry)
		le.PutUint32(ftab[8*i+4:], uint32(len(ftab)+len(recs)))
		rec := make([]byte, 44)
		rec[funcFlag] = f.flag
		le.PutUint32(rec, f.entry)
		le.PutUint32(rec[4:], uint32(nameOffs[i]))
		recs = append(recs, rec...)
	}
	le.PutUint32(ftab[8*len(funcs):], end)
	return append(append(append(hdr, names...), ftab...), recs...)
}

func TestParsePclntab(t *testing.T) {
	funcs := []pcFunc{{"main.a", 0, 0x40, 0}, {"main.(*T).b", 0x40, 0x100, 0}, {"runtime.c", 0x100, 0x180, 4}}
	tab := pclntab(funcs, 0x180)
	got, err := parsePclntab(tab, binary.LittleEndian)
	if err != nil || fmt.Sprint(got) != fmt.Sprint(funcs) {
		t.Fatalf("parsePclntab = %v, %v; want %v", got, err, funcs)
	}
	le := binary.LittleEndian
	pcln := int(le.Uint64(tab[8+7*8:]))
	for _, c := range []struct {
		name string
		edit func(b []byte) []byte
		want string
	}{
		{"short", func(b []byte) []byte { return b[:40] }, "40 bytes"},
		{"magic", func(b []byte) []byte { le.PutUint32(b, 0xfffffffa); return b }, "magic 0xfffffffa"},
		{"pointer size", func(b []byte) []byte { b[7] = 3; return b }, "pointer size 3"},
		{"nfunc", func(b []byte) []byte { le.PutUint64(b[8:], 1<<40); return b }, "1099511627776 functions"},
		{"name table", func(b []byte) []byte { le.PutUint64(b[8+3*8:], 1<<62); return b }, "name table at 0x4000000000000000"},
		{"unsorted", func(b []byte) []byte { le.PutUint32(b[pcln:], 0x50); return b }, "function 0 at +0x50 ends at +0x40"},
		{"record", func(b []byte) []byte { le.PutUint32(b[pcln+4:], 1<<31); return b }, "record at 0x80000000 beyond the table"},
		{"entry", func(b []byte) []byte { le.PutUint32(b[len(b)-3*44:], 7); return b }, "record says entry +0x7"},
		{"name", func(b []byte) []byte { le.PutUint32(b[len(b)-3*44+4:], 1<<20); return b }, "name at 1048576"},
		{"unterminated", func(b []byte) []byte {
			// The first function's name: the last bytes, with no NUL.
			le.PutUint32(b[len(b)-3*44+4:], uint32(len(b)-int(le.Uint64(b[8+3*8:]))))
			return append(b, "main.abc"...)
		}, "not terminated"},
	} {
		_, err := parsePclntab(c.edit(bytes.Clone(tab)), le)
		if !errors.Is(err, errPclntab) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v; want an error saying %q", c.name, err, c.want)
		}
	}
	// Names that overlap, so that they total more than the table: refused
	// rather than copied again and again.
	many := make([]pcFunc, 64)
	for i := range many {
		many[i] = pcFunc{name: "f", entry: uint32(i), end: uint32(i + 1)}
	}
	b := pclntab(many, 64)
	nameTab := int(le.Uint64(b[8+3*8:]))
	long := make([]byte, 0, len(b))
	long = append(long, b[:nameTab]...)
	long = append(long, bytes.Repeat([]byte("x"), 4000)...)
	long = append(long, 0)
	pclnAt := len(long)
	long = append(long, b[int(le.Uint64(b[8+7*8:])):]...)
	le.PutUint64(long[8+7*8:], uint64(pclnAt))
	recs := pclnAt + 8*64 + 4
	for i := range 64 {
		le.PutUint32(long[recs+44*i+4:], 0) // every name is the long one
	}
	if _, err := parsePclntab(long, le); !errors.Is(err, errPclntab) || !strings.Contains(err.Error(), "names total") {
		t.Errorf("overlapping long names: %v", err)
	}
}

// FuzzParsePclntab feeds hostile function tables to the parser: nothing
// may panic, and what it returns keeps its invariants.
func FuzzParsePclntab(f *testing.F) {
	f.Add(pclntab([]pcFunc{{"main.a", 0, 0x40, 0}, {"main.b", 0x40, 0x100, 0}}, 0x100))
	f.Add(pclntab([]pcFunc{{"x", 0, 1, 0}}, 1))
	f.Add(sharedTable(256))
	f.Fuzz(func(t *testing.T, b []byte) {
		funcs, err := parsePclntab(b, binary.LittleEndian)
		if err != nil {
			if !errors.Is(err, errPclntab) {
				t.Fatalf("error %v does not wrap errPclntab", err)
			}
			return
		}
		total := 0
		for _, fn := range funcs {
			total += len(fn.name)
			if fn.end < fn.entry || strings.IndexByte(fn.name, 0) >= 0 {
				t.Fatalf("function %+v", fn)
			}
		}
		if total > len(b) {
			t.Fatalf("names total %d bytes from a %d-byte table", total, len(b))
		}
		// Each function has a table entry and a record of its own.
		if len(funcs)*(8+funcHeader) > len(b) {
			t.Fatalf("%d functions from a %d-byte table", len(funcs), len(b))
		}
	})
}

// sharedTable is a function table of n functions that all share one
// _func record and one empty name, so that every check of each entry
// passes: 8n bytes that a parser trusting nfunc turns into n functions.
func sharedTable(n int) []byte {
	le := binary.LittleEndian
	hdr := make([]byte, 8+8*8)
	le.PutUint32(hdr, pclntabMagic120)
	hdr[6], hdr[7] = 1, 8
	nameTab := len(hdr)
	pcln := nameTab + 1 // the name table: one NUL
	le.PutUint64(hdr[8:], uint64(n))
	le.PutUint64(hdr[8+3*8:], uint64(nameTab))
	le.PutUint64(hdr[8+7*8:], uint64(pcln))
	ftab := make([]byte, 8*n+4+funcHeader)
	rec := uint32(8*n + 4)
	for i := range n {
		le.PutUint32(ftab[8*i+4:], rec) // entry 0, the one record
	}
	// The end (0) and the record (entry 0, name 0) are all zeros.
	return append(append(hdr, 0), ftab...)
}

// hostileELF returns an ELF file with a .text section and a section
// called name, of type typ and the flags given, holding tab; compressed,
// the section holds tab zlib-compressed (SHF_COMPRESSED), which debug/elf
// decompresses on reading. size, if not 0, is the section's size in its
// header instead of its bytes'.
func hostileELF(t testing.TB, name string, typ elf.SectionType, tab []byte, flags elf.SectionFlag, size uint64) []byte {
	t.Helper()
	le := binary.LittleEndian
	data := tab
	if flags&elf.SHF_COMPRESSED != 0 {
		var z bytes.Buffer
		chdr := make([]byte, 24) // Elf64_Chdr: type, reserved, size, addralign
		le.PutUint32(chdr, uint32(elf.COMPRESS_ZLIB))
		le.PutUint64(chdr[8:], uint64(len(tab)))
		le.PutUint64(chdr[16:], 1)
		z.Write(chdr)
		zw := zlib.NewWriter(&z)
		zw.Write(tab)
		zw.Close()
		data = z.Bytes()
	}
	if size == 0 {
		size = uint64(len(data))
	}
	text := bytes.Repeat([]byte{0xc3}, 16)
	shstr := []byte("\x00.text\x00.shstrtab\x00" + name + "\x00")
	const ehsize, shentsize = 64, 64
	textOff := uint64(ehsize)
	tabOff := textOff + uint64(len(text))
	strOff := tabOff + uint64(len(data))
	shOff := (strOff + uint64(len(shstr)) + 7) &^ 7
	b := make([]byte, shOff+4*shentsize)
	copy(b, "\x7fELF")
	b[4], b[5], b[6] = byte(elf.ELFCLASS64), byte(elf.ELFDATA2LSB), byte(elf.EV_CURRENT)
	le.PutUint16(b[16:], uint16(elf.ET_EXEC))
	le.PutUint16(b[18:], uint16(elf.EM_X86_64))
	le.PutUint32(b[20:], uint32(elf.EV_CURRENT))
	le.PutUint64(b[40:], shOff)
	le.PutUint16(b[52:], ehsize)
	le.PutUint16(b[58:], shentsize)
	le.PutUint16(b[60:], 4) // sections
	le.PutUint16(b[62:], 3) // .shstrtab
	copy(b[textOff:], text)
	copy(b[tabOff:], data)
	copy(b[strOff:], shstr)
	sh := func(i int, name uint32, typ elf.SectionType, fl elf.SectionFlag, addr, off, size uint64) {
		h := b[shOff+uint64(i)*shentsize:]
		le.PutUint32(h, name)
		le.PutUint32(h[4:], uint32(typ))
		le.PutUint64(h[8:], uint64(fl))
		le.PutUint64(h[16:], addr)
		le.PutUint64(h[24:], off)
		le.PutUint64(h[32:], size)
		le.PutUint64(h[48:], 1) // alignment
	}
	sh(1, 1, elf.SHT_PROGBITS, elf.SHF_ALLOC|elf.SHF_EXECINSTR, 0x401000, textOff, uint64(len(text)))
	sh(2, 17, typ, flags, 0, tabOff, size)
	sh(3, 7, elf.SHT_STRTAB, 0, 0, strOff, uint64(len(shstr)))
	return b
}

// TestHostileFunctionTable: a function table that debug/elf would inflate
// (a compressed section), that lies beyond the file, or whose functions
// share one record, is refused with an error saying so, and reading it
// allocates no more than a few times the file's size; so is a compressed
// symbol table.
func TestHostileFunctionTable(t *testing.T) {
	const n = 1 << 20 // 8 MiB of table: 8 KiB compressed
	tab := sharedTable(n)
	symtab := make([]byte, 24*n) // n empty symbols: 24 MiB, 24 KiB compressed
	for _, c := range []struct {
		name  string
		sec   string
		typ   elf.SectionType
		tab   []byte
		flags elf.SectionFlag
		size  uint64
		want  string
	}{
		{"compressed", ".gopclntab", elf.SHT_PROGBITS, tab, elf.SHF_COMPRESSED, 0, ".gopclntab: malformed Go function table: section compressed (SHF_COMPRESSED)"},
		{"not allocated", ".gopclntab", elf.SHT_PROGBITS, tab, 0, 0, ".gopclntab: malformed Go function table: section not allocated (no SHF_ALLOC)"},
		{"beyond the file", ".gopclntab", elf.SHT_PROGBITS, tab, elf.SHF_ALLOC, 1 << 29, "beyond the end of the file"},
		{"shared records", ".gopclntab", elf.SHT_PROGBITS, tab, elf.SHF_ALLOC, 0, fmt.Sprintf(".gopclntab: malformed Go function table: %d functions in", n)},
		{"compressed symtab", ".symtab", elf.SHT_SYMTAB, symtab, elf.SHF_COMPRESSED, 0, "symbol table .symtab compressed (SHF_COMPRESSED)"},
	} {
		t.Run(c.name, func(t *testing.T) {
			b := hostileELF(t, c.sec, c.typ, c.tab, c.flags, c.size)
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			f, err := NewFile(bytes.NewReader(b), c.name)
			if err != nil {
				t.Fatal(err)
			}
			syms, err := f.Symbols()
			runtime.ReadMemStats(&after)
			if !errors.Is(err, ErrNoSymbols) || !strings.Contains(err.Error(), c.name+": ") || !strings.Contains(err.Error(), c.want) {
				t.Errorf("%d symbols, %v; want ErrNoSymbols saying %q", len(syms), err, c.want)
			}
			// Reading the table once (when it lies in the file) and the
			// ELF headers: a few times the file, plus a fixed allowance.
			alloc, limit := after.TotalAlloc-before.TotalAlloc, 3*uint64(len(b))+256<<10
			if alloc > limit {
				t.Errorf("a %d-byte file allocated %d bytes, beyond %d", len(b), alloc, limit)
			}
			t.Logf("%d-byte file: %d bytes allocated; %v", len(b), alloc, err)
		})
	}
	// The parser alone refuses the table: its functions cannot each have
	// a record of their own in its bytes.
	if _, err := parsePclntab(tab, binary.LittleEndian); !errors.Is(err, errPclntab) || !strings.Contains(err.Error(), fmt.Sprintf("%d functions in %d bytes", n, len(tab)-8-8*8-1)) {
		t.Errorf("shared records: %v", err)
	}
}

// TestHostileDWARF: a compressed DWARF section that claims far more bytes
// than any compressor gives from its size (64 MiB of zeros in 64 KiB) is
// refused as no DWARF, saying which section, before debug/elf inflates
// it; the allocation stays near the file's size.
func TestHostileDWARF(t *testing.T) {
	b := hostileELF(t, ".debug_info", elf.SHT_PROGBITS, make([]byte, 64<<20), elf.SHF_COMPRESSED, 0)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f, err := NewFile(bytes.NewReader(b), "dwarfbomb")
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.FieldOffset("runtime.g", "goid")
	runtime.ReadMemStats(&after)
	if !errors.Is(err, ErrNoDWARF) || !strings.Contains(err.Error(), ".debug_info claims") {
		t.Errorf("FieldOffset: %v; want ErrNoDWARF naming .debug_info", err)
	}
	if alloc, limit := after.TotalAlloc-before.TotalAlloc, 3*uint64(len(b))+256<<10; alloc > limit {
		t.Errorf("a %d-byte file allocated %d bytes, beyond %d", len(b), alloc, limit)
	}
}
