package exeinfo

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"io"
	"runtime/debug"
)

// Reading a Go executable's build information from its .go.buildinfo
// section. debug/buildinfo does this for every object format, and links
// the readers of PE, Mach-O, XCOFF and Plan 9 files into the recorder,
// which only ever inspects ELF; this reads the one layout Go has written
// since go1.18 and leaves the parsing of the module text to
// runtime/debug.ParseBuildInfo.

// buildInfoMagic starts the .go.buildinfo section.
var buildInfoMagic = []byte("\xff Go buildinf:")

const (
	buildInfoHeader  = 32      // magic, pointer size, flags, padding
	buildInfoInline  = 0x2     // flag: the strings follow the header (go1.18+)
	buildInfoMaxText = 1 << 20 // bounds what a hostile section makes us read
)

// goBuildInfo returns the build information of a Go executable, or nil if
// ef has none (not Go). A Go executable built before go1.18 gets a GoInfo
// with empty fields: it is Go, but this reader does not follow the
// pointers its older layout uses.
func goBuildInfo(ef *elf.File) *GoInfo {
	sec := ef.Section(".go.buildinfo")
	if sec == nil || sec.Type == elf.SHT_NOBITS {
		return nil
	}
	r := sec.Open()
	var head [buildInfoHeader]byte
	if _, err := io.ReadFull(r, head[:]); err != nil || !bytes.HasPrefix(head[:], buildInfoMagic) {
		return nil
	}
	gi := &GoInfo{}
	if head[15]&buildInfoInline == 0 {
		return gi
	}
	br := &limitedByteReader{r: io.LimitReader(r, 2*buildInfoMaxText+32)}
	version, ok := readVarString(br)
	if !ok {
		return gi
	}
	gi.Version = version
	mod, ok := readVarString(br)
	// The module text sits between two 16-byte sentinels.
	if !ok || len(mod) < 33 {
		return gi
	}
	if bi, err := debug.ParseBuildInfo(mod[16 : len(mod)-16]); err == nil {
		gi.Path, gi.Module, gi.ModuleVersion = bi.Path, bi.Main.Path, bi.Main.Version
	}
	return gi
}

// readVarString reads a string prefixed by its uvarint length, at most
// buildInfoMaxText bytes.
func readVarString(br *limitedByteReader) (string, bool) {
	n, err := binary.ReadUvarint(br)
	if err != nil || n > buildInfoMaxText {
		return "", false
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(br, b); err != nil {
		return "", false
	}
	return string(b), true
}

// limitedByteReader adds ReadByte to a reader, for binary.ReadUvarint.
type limitedByteReader struct {
	r io.Reader
	b [1]byte
}

func (l *limitedByteReader) Read(p []byte) (int, error) { return l.r.Read(p) }

func (l *limitedByteReader) ReadByte() (byte, error) {
	if _, err := io.ReadFull(l.r, l.b[:]); err != nil {
		return 0, err
	}
	return l.b[0], nil
}
