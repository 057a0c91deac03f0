package exeinfo

import (
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
)

// Reading a Go binary's function table from its .gopclntab section, which
// `go build -ldflags=-s` keeps (the runtime needs it for stack traces and
// the collector) when it drops the ELF symbol table. Only the layout Go
// has written since go1.20 is read (runtime/symtab.go, pcHeader and
// _func; cmd/link/internal/ld/pcln.go writes it):
//
//	header: magic u32 (0xfffffff1), pad u8 u8, minLC u8, ptrSize u8,
//	        then ptrSize-wide words: nfunc, nfiles, (unused, once
//	        textStart), funcnameOffset, cuOffset, filetabOffset,
//	        pctabOffset, pclnOffset (offsets from the header's start)
//	functab at pclnOffset: nfunc pairs {entryOff, funcOff u32}, sorted by
//	        entryOff, then one u32: the end of the last function
//	_func at pclnOffset+funcOff: entryOff u32, nameOff i32, ...
//	names at funcnameOffset+nameOff, NUL-terminated
//
// entryOff is relative to runtime.text, the start of the .text section
// (the header no longer stores it). debug/gosym reads this too, but costs
// the recorder more than its 40 MB allow, and is not bounded against a
// hostile table.

// pclntabMagic120 starts a go1.20+ function table (abi.Go120PCLnTabMagic).
const pclntabMagic120 = 0xfffffff1

const (
	// maxPclntab bounds the section read: Go's largest binaries have
	// tables of some hundred megabytes.
	maxPclntab = 1 << 30
	// maxFuncName bounds one function name.
	maxFuncName = 64 << 10
)

// Where the fields read lie in a _func, and how many bytes it has before
// its variable part.
const (
	funcFlag   = 41
	funcHeader = 44

	funcFlagAsm = 4 // abi.FuncFlagAsm: written in assembly
)

// errPclntab is wrapped by every error of a malformed function table.
var errPclntab = errors.New("malformed Go function table")

// pcFunc is a function of the table: its entry and end (the next
// function's entry, or the table's end) relative to runtime.text.
type pcFunc struct {
	name       string
	entry, end uint32
	flag       uint8 // abi.FuncFlag
}

// parsePclntab reads the functions of a go1.20+ function table. Every
// offset is checked against data before it is followed, the functions
// number at most one per 52 bytes of data (an entry and a record each),
// and the names returned total at most len(data) bytes, so what it
// allocates is bounded by the table's size.
func parsePclntab(data []byte, order binary.ByteOrder) ([]pcFunc, error) {
	if len(data) < 8 {
		return nil, fmt.Errorf("%w: %d bytes", errPclntab, len(data))
	}
	if m := order.Uint32(data); m != pclntabMagic120 {
		return nil, fmt.Errorf("%w: magic %#x, not go1.20+'s %#x", errPclntab, m, uint32(pclntabMagic120))
	}
	ptr := int(data[7])
	if data[4] != 0 || data[5] != 0 || (ptr != 4 && ptr != 8) {
		return nil, fmt.Errorf("%w: header padding %d %d, pointer size %d", errPclntab, data[4], data[5], ptr)
	}
	if len(data) < 8+8*ptr {
		return nil, fmt.Errorf("%w: %d bytes, shorter than its header", errPclntab, len(data))
	}
	word := func(i int) uint64 {
		if ptr == 4 {
			return uint64(order.Uint32(data[8+4*i:]))
		}
		return order.Uint64(data[8+8*i:])
	}
	nfunc, nameTab, pcln := word(0), word(3), word(7)
	if nameTab >= uint64(len(data)) || pcln >= uint64(len(data)) {
		return nil, fmt.Errorf("%w: name table at %#x, function table at %#x, beyond its %d bytes", errPclntab, nameTab, pcln, len(data))
	}
	ftab := data[pcln:]
	// Each function has its entry in the table and a record of its own
	// after it, so no more fit than this. Entries sharing one record
	// would pass every other check, and make of each 8 bytes of table a
	// function several times that size in memory.
	if len(ftab) < 4 || nfunc == 0 || nfunc > uint64(len(ftab)-4)/(8+funcHeader) {
		return nil, fmt.Errorf("%w: %d functions in %d bytes, which hold at most %d", errPclntab, nfunc, len(ftab), max(len(ftab)-4, 0)/(8+funcHeader))
	}
	names := data[nameTab:]
	funcs := make([]pcFunc, 0, nfunc)
	nameBytes := 0
	for i := range int(nfunc) {
		entry, off := order.Uint32(ftab[8*i:]), order.Uint32(ftab[8*i+4:])
		end := order.Uint32(ftab[8*i+8:]) // the next entry, or the end
		if end < entry {
			return nil, fmt.Errorf("%w: function %d at +%#x ends at +%#x", errPclntab, i, entry, end)
		}
		if len(ftab) < funcHeader || uint64(off) > uint64(len(ftab)-funcHeader) {
			return nil, fmt.Errorf("%w: function %d: record at %#x beyond the table", errPclntab, i, off)
		}
		fn := ftab[off:]
		if e := order.Uint32(fn); e != entry {
			return nil, fmt.Errorf("%w: function %d: record says entry +%#x, table +%#x", errPclntab, i, e, entry)
		}
		nameOff := int32(order.Uint32(fn[4:]))
		if nameOff < 0 || int(nameOff) >= len(names) {
			return nil, fmt.Errorf("%w: function %d: name at %d, beyond the name table", errPclntab, i, nameOff)
		}
		name := names[nameOff:min(len(names), int(nameOff)+maxFuncName)]
		n := 0
		for n < len(name) && name[n] != 0 {
			n++
		}
		if n == len(name) {
			return nil, fmt.Errorf("%w: function %d: name not terminated within %d bytes", errPclntab, i, len(name))
		}
		if nameBytes += n; nameBytes > len(data) {
			return nil, fmt.Errorf("%w: names total beyond the table's %d bytes", errPclntab, len(data))
		}
		funcs = append(funcs, pcFunc{name: string(name[:n]), entry: entry, end: end, flag: fn[funcFlag]})
	}
	return funcs, nil
}

// pclntabSymbols returns the Go functions of the file's .gopclntab as
// symbols: address runtime.text (the .text section's) plus the entry
// offset, size up to the next function (alignment padding included).
func (f *File) pclntabSymbols() ([]Symbol, error) {
	sec := f.f.Section(".gopclntab")
	if sec == nil || sec.Type == elf.SHT_NOBITS {
		return nil, errors.New("no .gopclntab section")
	}
	text := f.f.Section(".text")
	if text == nil {
		return nil, errors.New("no .text section")
	}
	// The Go linker writes the table uncompressed into a loaded segment
	// (the runtime reads it). debug/elf would inflate a compressed one,
	// which it allows outside loaded segments, to any size its header
	// claims: a small file could cost gigabytes. What is read is the
	// file's own bytes, no more.
	if sec.Flags&elf.SHF_COMPRESSED != 0 {
		return nil, fmt.Errorf(".gopclntab: %w: section compressed (SHF_COMPRESSED), which the Go linker never writes", errPclntab)
	}
	if sec.Flags&elf.SHF_ALLOC == 0 {
		return nil, fmt.Errorf(".gopclntab: %w: section not allocated (no SHF_ALLOC), which the Go linker never writes", errPclntab)
	}
	if sec.Size > maxPclntab {
		return nil, fmt.Errorf(".gopclntab: %w: %d bytes, beyond %d", errPclntab, sec.Size, maxPclntab)
	}
	// Its last byte must be in the file before its size is allocated.
	if sec.Size > 0 {
		if _, err := sec.ReadAt(make([]byte, 1), int64(sec.Size-1)); err != nil {
			return nil, fmt.Errorf(".gopclntab: %w: %d bytes at %#x, beyond the end of the file", errPclntab, sec.Size, sec.Offset)
		}
	}
	data, err := sec.Data()
	if err != nil {
		return nil, fmt.Errorf(".gopclntab: %w", err)
	}
	funcs, err := parsePclntab(data, f.f.ByteOrder)
	if err != nil {
		return nil, fmt.Errorf(".gopclntab: %w", err)
	}
	// A function that crosses between assembly and Go has two entries of
	// one name: its body and the wrapper that adapts one calling
	// convention to the other, one of them ABI0, which the symbol table
	// names NAME.abi0. An assembly body is ABI0, and named so here; of
	// a Go body and its ABI0 wrapper (both runtime internals) the table
	// does not say which is which, and neither is given.
	count := make(map[string]int, len(funcs))
	asm := make(map[string]int)
	for _, fn := range funcs {
		count[fn.name]++
		if fn.flag&funcFlagAsm != 0 {
			asm[fn.name]++
		}
	}
	syms := make([]Symbol, 0, len(funcs))
	for _, fn := range funcs {
		if count[fn.name] > 1 {
			if count[fn.name] != 2 || asm[fn.name] != 1 {
				continue
			}
			if fn.flag&funcFlagAsm != 0 {
				fn.name += ".abi0"
			}
		}
		va := text.Addr + uint64(fn.entry)
		off, ok := f.fileOffset(va)
		if !ok {
			off = 0 // as for ELF symbols: Symbol says why it is unusable
		}
		syms = append(syms, Symbol{Name: fn.name, Value: va, Size: uint64(fn.end - fn.entry), Offset: off})
	}
	return syms, nil
}
