// Package exeinfo inspects ELF executables and shared libraries for
// uprobes: their symbols, where in the file a function lies (the offset a
// uprobe takes), whether they are Go programs and which Go built them, the
// return instructions of Go functions (which are probed one by one, never
// with a uretprobe: Go moves its stacks, and a return probe's trampoline
// address on a stack kills the program when Go walks it), and struct field
// offsets from DWARF.
//
// Everything it reads comes from the file, which may be hostile: sizes are
// checked against the file before anything is allocated, and errors name
// the file and, where there is one, the symbol.
package exeinfo

import (
	"bytes"
	"debug/dwarf"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
)

// Sentinel errors; every error of this package for one of these conditions
// wraps it (match with errors.Is).
var (
	// ErrNotELF: the file is not an ELF file.
	ErrNotELF = errors.New("not an ELF file")
	// ErrNoSymbols: the file has no symbol table (it was stripped) and,
	// if it is a Go binary, no readable Go function table (.gopclntab)
	// either.
	ErrNoSymbols = errors.New("no symbol table (stripped)")
	// ErrNoSymbol: the file has no function of that name.
	ErrNoSymbol = errors.New("no such function")
	// ErrNoDWARF: the file has no DWARF debug information (built with -w,
	// or stripped).
	ErrNoDWARF = errors.New("no DWARF debug information")
	// ErrNoField: DWARF has no such struct or no such field in it.
	ErrNoField = errors.New("no such struct field")
	// ErrNotMapped: the symbol's address lies in no loadable segment of the
	// file, so no uprobe can be placed there.
	ErrNotMapped = errors.New("address not in a loadable segment")
	// ErrUnsupportedArch: return instructions cannot be found on this
	// architecture.
	ErrUnsupportedArch = errors.New("unsupported architecture")
	// ErrNotGo: the file was not built by Go.
	ErrNotGo = errors.New("not a Go binary")
)

// maxFuncSize bounds the bytes read to decode one function: a symbol size
// beyond it is taken as a corrupt file rather than allocated.
const maxFuncSize = 16 << 20

// Symbol is a function symbol of the file.
type Symbol struct {
	Name string
	// Value is the symbol's address (st_value): for an executable, where it
	// is mapped; for a shared library, relative to its load address.
	Value uint64
	// Size is the function's size in bytes (st_size); 0 if unknown.
	Size uint64
	// Offset is where the function's first byte lies in the file: the
	// offset a uprobe is attached at.
	Offset uint64
}

// GoInfo is what a Go binary says about its build.
type GoInfo struct {
	// Version is the Go release that built it ("go1.26.8").
	Version string
	// Path is the main package's import path; Module the main module's
	// path and ModuleVersion its version ("(devel)" when built from a
	// checkout).
	Path, Module, ModuleVersion string
}

// File is an opened ELF file. Its methods are not safe for concurrent use.
type File struct {
	// Path is the name the file was opened by, used in errors.
	Path string
	// Machine is the ELF machine (elf.EM_X86_64, elf.EM_AARCH64, ...).
	Machine elf.Machine
	// Go describes the Go build of a Go binary; nil for other files.
	Go *GoInfo

	f    *elf.File
	osf  *os.File
	syms []Symbol // function symbols, by name; nil until first needed
	// symErr is why syms could not be read, if it could not.
	symErr error
	loaded bool

	dwarf    *dwarf.Data
	structs  map[string]dwarf.Offset // named struct types; nil until indexed
	dwarfErr error                   // why the DWARF could not be read
}

// Open opens and inspects the ELF file at path. Close the File when done.
func Open(path string) (*File, error) {
	osf, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("exeinfo: %w", err)
	}
	f, err := NewFile(osf, path)
	if err != nil {
		osf.Close()
		return nil, err
	}
	f.osf = osf
	return f, nil
}

// NewFile inspects the ELF file read by r; name is used in errors. The
// File reads r until closed; closing it does not close r.
func NewFile(r io.ReaderAt, name string) (f *File, err error) {
	// debug/elf and debug/buildinfo return errors on malformed input;
	// should either still panic on some file, a hostile file must not bring
	// the caller down with it.
	defer func() {
		if p := recover(); p != nil {
			f, err = nil, fmt.Errorf("exeinfo: %s: malformed ELF file (%v): %w", name, p, ErrNotELF)
		}
	}()
	ef, err := elf.NewFile(r)
	if err != nil {
		return nil, fmt.Errorf("exeinfo: %s: %w (%v)", name, ErrNotELF, err)
	}
	f = &File{Path: name, Machine: ef.Machine, f: ef}
	f.Go = goBuildInfo(ef)
	return f, nil
}

// Close releases the file.
func (f *File) Close() error {
	err := f.f.Close()
	if f.osf != nil {
		if cerr := f.osf.Close(); err == nil {
			err = cerr
		}
	}
	return err
}

// Symbols returns the file's function symbols, sorted by name: those of
// the symbol table and, for shared libraries, of the dynamic symbol table
// (a name in both appears once). A Go binary without a symbol table
// (-ldflags=-s) gives the functions of its Go function table (.gopclntab)
// instead, by the names the symbol table would give (an assembly body
// called from Go is NAME.abi0), with sizes that include the padding up to
// the next function; a runtime function called from assembly, whose body
// and ABI0 wrapper the table names alike, is left out. A function table
// that cannot be read is ignored when the symbol tables gave functions (a
// stripped shared library's dynamic symbols). A symbol whose address lies
// in no loadable segment has Offset 0 (Symbol and Match refuse it). It
// fails with ErrNoSymbols, saying why each source gave none, if the file
// has no function symbols.
func (f *File) Symbols() ([]Symbol, error) {
	f.loadSymbols()
	return f.syms, f.symErr
}

func (f *File) loadSymbols() {
	if f.loaded {
		return
	}
	f.loaded = true
	var all []elf.Symbol
	var syms []elf.Symbol
	err := f.compressedSymtab()
	if err == nil {
		syms, err = f.f.Symbols()
	}
	all = append(all, syms...)
	dyn, derr := f.f.DynamicSymbols()
	all = append(all, dyn...)
	seen := make(map[string]bool, len(all))
	for _, s := range all {
		if elf.ST_TYPE(s.Info) != elf.STT_FUNC || s.Value == 0 || s.Section == elf.SHN_UNDEF || seen[s.Name] {
			continue
		}
		seen[s.Name] = true
		off, ok := f.fileOffset(s.Value)
		if !ok {
			// Kept, with offset 0, so that Symbol can say why it is
			// unusable rather than that it does not exist.
			off = 0
		}
		f.syms = append(f.syms, Symbol{Name: s.Name, Value: s.Value, Size: s.Size, Offset: off})
	}
	// Without a symbol table (-ldflags=-s), a Go binary's functions are
	// still in its function table: added to the dynamic symbols, if any
	// (a PIE has some), under the names the symbol table would give.
	var pcErr error
	if f.f.SectionByType(elf.SHT_SYMTAB) == nil && f.f.Section(".gopclntab") != nil {
		var pcs []Symbol
		if pcs, pcErr = f.pclntabSymbols(); pcErr == nil {
			for _, s := range pcs {
				if !seen[s.Name] {
					seen[s.Name] = true
					f.syms = append(f.syms, s)
				}
			}
		}
	}
	sort.Slice(f.syms, func(i, j int) bool { return f.syms[i].Name < f.syms[j].Name })
	if len(f.syms) > 0 {
		// A function table that cannot be read (go1.18's layout, a
		// malformed one, a C library's section of that name) takes
		// nothing from the symbols found: the dynamic symbols of a
		// stripped shared library are all there is to probe.
		return
	}
	// Nothing found: why the ELF symbols gave none, and why the function
	// table gave none, if it was read.
	why := err
	if why == nil || errors.Is(why, elf.ErrNoSymbols) {
		why = derr
	}
	head := "exeinfo: " + f.Path + ": "
	var elfWhy string
	switch {
	case len(all) > 0:
		head += "no function symbols: "
	case why != nil && !errors.Is(why, elf.ErrNoSymbols):
		elfWhy = fmt.Sprintf(" (%v)", why)
	}
	switch {
	case pcErr != nil:
		f.symErr = fmt.Errorf("%s%w%s, and its Go function table is unreadable: %v", head, ErrNoSymbols, elfWhy, pcErr)
	case f.Go != nil && f.f.Section(".gopclntab") == nil:
		f.symErr = fmt.Errorf("%s%w%s, and no Go function table (.gopclntab)", head, ErrNoSymbols, elfWhy)
	default:
		f.symErr = fmt.Errorf("%s%w%s", head, ErrNoSymbols, elfWhy)
	}
}

// compressedSymtab refuses a compressed symbol table or string table:
// debug/elf inflates one (it allows them outside loaded segments) to
// whatever size its header claims, so a small file could cost gigabytes,
// and no linker writes one. The dynamic symbols are loaded, never
// compressed.
func (f *File) compressedSymtab() error {
	s := f.f.SectionByType(elf.SHT_SYMTAB)
	if s == nil {
		return nil
	}
	if s.Flags&elf.SHF_COMPRESSED != 0 {
		return fmt.Errorf("symbol table %s compressed (SHF_COMPRESSED), which no linker writes", s.Name)
	}
	if int(s.Link) < len(f.f.Sections) {
		if str := f.f.Sections[s.Link]; str.Flags&elf.SHF_COMPRESSED != 0 {
			return fmt.Errorf("string table %s of symbol table %s compressed (SHF_COMPRESSED), which no linker writes", str.Name, s.Name)
		}
	}
	return nil
}

// fileOffset returns where in the file the byte at address va lies, from
// the loadable segment that maps it.
func (f *File) fileOffset(va uint64) (uint64, bool) {
	for _, p := range f.f.Progs {
		if p.Type == elf.PT_LOAD && va >= p.Vaddr && va-p.Vaddr < p.Filesz {
			return va - p.Vaddr + p.Off, true
		}
	}
	return 0, false
}

// Symbol returns the function called name.
func (f *File) Symbol(name string) (Symbol, error) {
	syms, err := f.Symbols()
	if err != nil {
		return Symbol{}, fmt.Errorf("%w (looking for %s)", err, name)
	}
	i := sort.Search(len(syms), func(i int) bool { return syms[i].Name >= name })
	if i == len(syms) || syms[i].Name != name {
		return Symbol{}, fmt.Errorf("exeinfo: %s: %s: %w", f.Path, name, ErrNoSymbol)
	}
	if syms[i].Offset == 0 {
		return Symbol{}, fmt.Errorf("exeinfo: %s: %s at %#x: %w", f.Path, name, syms[i].Value, ErrNotMapped)
	}
	return syms[i], nil
}

// Match returns the functions whose names match pattern, sorted by name.
// In a pattern '*' matches any run of characters ('/' and '.' included),
// '?' any one character, and '\' makes the next character literal;
// everything else stands for itself, so "main.(*Server).Handle*" matches
// every method of *Server whose name starts with Handle (the '*' in
// "(*Server)" matches the literal '*'). A pattern without wildcards names
// one function, and matching none is an error naming it.
func (f *File) Match(pattern string) ([]Symbol, error) {
	syms, err := f.Symbols()
	if err != nil {
		return nil, fmt.Errorf("%w (looking for %s)", err, pattern)
	}
	var out []Symbol
	for _, s := range syms {
		if s.Offset != 0 && Glob(pattern, s.Name) {
			out = append(out, s)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("exeinfo: %s: no function matches %s: %w", f.Path, pattern, ErrNoSymbol)
	}
	return out, nil
}

// Glob reports whether name matches pattern, as Match describes.
func Glob(pattern, name string) bool {
	// Iterative matching with one backtrack point (the last '*'): linear
	// in practice, and never exponential on hostile patterns.
	p, n := 0, 0
	starP, starN := -1, 0
	for n < len(name) {
		if p < len(pattern) {
			switch c := pattern[p]; c {
			case '*':
				starP, starN = p, n
				p++
				continue
			case '?':
				p++
				n++
				continue
			case '\\':
				if p+1 < len(pattern) && pattern[p+1] == name[n] {
					p += 2
					n++
					continue
				}
			default:
				if c == name[n] {
					p++
					n++
					continue
				}
			}
		}
		if starP < 0 {
			return false
		}
		starN++
		p, n = starP+1, starN
	}
	for p < len(pattern) && pattern[p] == '*' {
		p++
	}
	return p == len(pattern)
}

// FuncOffsets are the file offsets of a function's entry and of each of
// its return instructions.
type FuncOffsets struct {
	Start   uint64
	Returns []uint64
}

// ReturnOffsets returns the file offsets of sym's entry and of each return
// instruction in its body, found by decoding the function (x86-64 and
// arm64). It needs the symbol's size, which Go's symbol tables give.
func (f *File) ReturnOffsets(sym Symbol) (FuncOffsets, error) {
	if sym.Size == 0 {
		return FuncOffsets{}, fmt.Errorf("exeinfo: %s: %s: symbol has no size", f.Path, sym.Name)
	}
	if sym.Size > maxFuncSize {
		return FuncOffsets{}, fmt.Errorf("exeinfo: %s: %s: symbol size %d is beyond %d", f.Path, sym.Name, sym.Size, maxFuncSize)
	}
	// The whole body must lie in the segment holding its entry.
	end, ok := f.fileOffset(sym.Value + sym.Size - 1)
	if !ok || sym.Offset == 0 || end != sym.Offset+sym.Size-1 {
		return FuncOffsets{}, fmt.Errorf("exeinfo: %s: %s at %#x size %d: %w", f.Path, sym.Name, sym.Value, sym.Size, ErrNotMapped)
	}
	code := make([]byte, sym.Size)
	if _, err := f.readAt(code, int64(sym.Offset)); err != nil {
		return FuncOffsets{}, fmt.Errorf("exeinfo: %s: %s: reading %d bytes at %#x: %w", f.Path, sym.Name, sym.Size, sym.Offset, err)
	}
	var rets []int
	var err error
	switch f.Machine {
	case elf.EM_X86_64:
		rets, err = returnsX86(code)
	case elf.EM_AARCH64:
		rets = returnsARM64(code)
	default:
		return FuncOffsets{}, fmt.Errorf("exeinfo: %s: %s: finding returns on %s: %w", f.Path, sym.Name, f.Machine, ErrUnsupportedArch)
	}
	if err != nil {
		return FuncOffsets{}, fmt.Errorf("exeinfo: %s: %s: %w", f.Path, sym.Name, err)
	}
	out := FuncOffsets{Start: sym.Offset, Returns: make([]uint64, len(rets))}
	for i, r := range rets {
		out.Returns[i] = sym.Offset + uint64(r)
	}
	return out, nil
}

// readAt reads len(p) bytes at file offset off through the loadable
// segment that holds them all (debug/elf gives each segment a reader).
func (f *File) readAt(p []byte, off int64) (int, error) {
	for _, prog := range f.f.Progs {
		if prog.Type == elf.PT_LOAD && uint64(off) >= prog.Off && uint64(off)-prog.Off+uint64(len(p)) <= prog.Filesz {
			return prog.ReadAt(p, off-int64(prog.Off))
		}
	}
	return 0, ErrNotMapped
}

// FieldOffset returns the offset of field in the struct type named typ
// ("net/http.Request", "main.Server"), from the file's DWARF. The first
// call indexes the file's struct types; later calls read only the struct
// asked for. A Go binary without DWARF (-ldflags=-w) still gives the
// fields Go probes need, runtime.g's goid and stack and runtime.stack's
// hi, for the releases whose layout this package knows (go1.21 on); any
// other field fails with ErrNoDWARF.
func (f *File) FieldOffset(typ, field string) (uint64, error) {
	if err := f.indexStructs(); err != nil {
		if errors.Is(err, ErrNoDWARF) {
			return f.runtimeField(typ, field, fmt.Errorf("%w (looking for %s.%s)", err, typ, field))
		}
		return 0, fmt.Errorf("%w (looking for %s.%s)", err, typ, field)
	}
	at, ok := f.structs[typ]
	if !ok {
		return 0, fmt.Errorf("exeinfo: %s: no struct %s: %w", f.Path, typ, ErrNoField)
	}
	r := f.dwarf.Reader()
	r.Seek(at)
	e, err := r.Next()
	if err != nil || e == nil {
		return 0, fmt.Errorf("exeinfo: %s: %s.%s: reading DWARF: %v", f.Path, typ, field, err)
	}
	if !e.Children {
		return 0, fmt.Errorf("exeinfo: %s: struct %s has no field %s: %w", f.Path, typ, field, ErrNoField)
	}
	for {
		m, err := r.Next()
		if err != nil {
			return 0, fmt.Errorf("exeinfo: %s: %s.%s: reading DWARF: %w", f.Path, typ, field, err)
		}
		if m == nil || m.Tag == 0 {
			return 0, fmt.Errorf("exeinfo: %s: struct %s has no field %s: %w", f.Path, typ, field, ErrNoField)
		}
		if m.Children {
			r.SkipChildren()
		}
		if m.Tag != dwarf.TagMember {
			continue
		}
		if name, _ := m.Val(dwarf.AttrName).(string); name != field {
			continue
		}
		if loc, ok := m.Val(dwarf.AttrDataMemberLoc).(int64); ok && loc >= 0 {
			return uint64(loc), nil
		}
		return 0, fmt.Errorf("exeinfo: %s: %s.%s: no constant data member location", f.Path, typ, field)
	}
}

// A compressed DWARF section is read only if it claims at most
// maxDWARFSection bytes and at most maxDWARFRatio times its compressed
// size (Go's own compress about 3 to 5 times).
const (
	maxDWARFSection = 1 << 30
	maxDWARFRatio   = 64
)

// indexStructs reads the DWARF of the file once and notes where each named
// struct type is (the first of a name: Go emits each type once).
func (f *File) indexStructs() error {
	if f.structs != nil || f.dwarfErr != nil {
		return f.dwarfErr
	}
	// debug/elf inflates compressed DWARF sections to the size their
	// header claims: refuse a claim no compressor reaches, so that a small
	// hostile file cannot make the recorder allocate gigabytes.
	for _, s := range f.f.Sections {
		if strings.HasPrefix(s.Name, ".debug_") && s.Flags&elf.SHF_COMPRESSED != 0 &&
			(s.Size > maxDWARFSection || s.Size/maxDWARFRatio > s.FileSize) {
			f.dwarfErr = fmt.Errorf("exeinfo: %s: %w (section %s claims %d bytes from %d compressed)", f.Path, ErrNoDWARF, s.Name, s.Size, s.FileSize)
			return f.dwarfErr
		}
	}
	d, err := f.f.DWARF()
	if err != nil {
		f.dwarfErr = fmt.Errorf("exeinfo: %s: %w (%v)", f.Path, ErrNoDWARF, err)
		return f.dwarfErr
	}
	structs := make(map[string]dwarf.Offset)
	r := d.Reader()
	for {
		e, err := r.Next()
		if err != nil {
			f.dwarfErr = fmt.Errorf("exeinfo: %s: reading DWARF: %w", f.Path, err)
			return f.dwarfErr
		}
		if e == nil {
			break
		}
		if e.Tag == dwarf.TagStructType {
			if name, _ := e.Val(dwarf.AttrName).(string); name != "" {
				if _, dup := structs[name]; !dup {
					structs[name] = e.Offset
				}
			}
		}
		// Types sit at the top of their compile unit; what is below
		// them (members, a function's variables) is not searched.
		if e.Tag != dwarf.TagCompileUnit && e.Children {
			r.SkipChildren()
		}
	}
	f.dwarf, f.structs = d, structs
	return nil
}

// String describes the file briefly: "/bin/app (x86-64, go1.26.8 main example.com/app)".
func (f *File) String() string {
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s (%s", f.Path, strings.TrimPrefix(f.Machine.String(), "EM_"))
	if f.Go != nil {
		fmt.Fprintf(&b, ", %s %s", f.Go.Version, f.Go.Path)
	}
	b.WriteString(")")
	return b.String()
}

// RequireGo returns an error wrapping ErrNotGo if the file was not built by
// Go.
func (f *File) RequireGo() error {
	if f.Go == nil {
		return fmt.Errorf("exeinfo: %s: %w", f.Path, ErrNotGo)
	}
	return nil
}
