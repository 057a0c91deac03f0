package bpf

import (
	"errors"
	"fmt"
	"strings"

	"github.com/cilium/ebpf/link"

	"github.com/ebpfrec/ebpfrec/bpf/exeinfo"
)

// InspectGo reads what Go probes need from the Go executable at path: the
// file offsets of the entry and of every return instruction of each
// function matching one of funcs (globs, as exeinfo.Glob: a pattern without
// wildcards names one function), and the offsets of fields, each given as
// "TYPE.FIELD" with the field after the last dot ("runtime.g.goid",
// "net/http.Request.Method"), from DWARF. The returned GoOffsets are keyed
// by function name and by the field as given. A binary built with
// -ldflags=-s -w has its functions found in its Go function table, and
// the runtime's fields Go probes read known by its Go release (see
// exeinfo.File.Symbols and FieldOffset); a position-independent one is
// inspected alike (the offsets are file offsets either way).
//
// Every pattern must match and every field be found: the first failure is
// returned, naming the file and what was missing (errors wrap exeinfo's
// sentinels: exeinfo.ErrNotGo, ErrNoSymbols for a binary with neither
// symbols nor a Go function table, ErrNoSymbol, ErrNoDWARF for a field
// only DWARF gives, ErrNoField, ErrNotELF).
func InspectGo(path string, funcs, fields []string) (*GoOffsets, error) {
	f, err := exeinfo.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if err := f.RequireGo(); err != nil {
		return nil, err
	}
	out := &GoOffsets{Funcs: make(map[string]FuncOffsets), Field: make(map[string]uint64)}
	for _, pat := range funcs {
		syms, err := f.Match(pat)
		if err != nil {
			return nil, err
		}
		for _, s := range syms {
			fo, err := f.ReturnOffsets(s)
			if err != nil {
				return nil, err
			}
			out.Funcs[s.Name] = FuncOffsets{Start: fo.Start, Returns: fo.Returns}
		}
	}
	for _, fld := range fields {
		i := strings.LastIndexByte(fld, '.')
		if i <= 0 || i == len(fld)-1 {
			return nil, fmt.Errorf("bpf: field %q is not TYPE.FIELD: %w", fld, ErrInvalidName)
		}
		off, err := f.FieldOffset(fld[:i], fld[i+1:])
		if err != nil {
			return nil, err
		}
		out.Field[fld] = off
	}
	return out, nil
}

// AttachGoFunc attaches the programs of collection coll to a Go function of
// the executable at path whose offsets are fo (from InspectGo): entry, if
// not empty, as a uprobe at its first instruction, and ret, if not empty,
// as a uprobe at each of its return instructions. Return probes are plain
// uprobes on purpose: a uretprobe replaces the return address on the stack,
// which Go copies when it grows a stack and reads when it scans one (for
// the collector or a preemption), and the program dies of an "unknown
// caller pc". At a return instruction the results are in their registers
// (RAX, RBX, ... on amd64) as at a uretprobe.
//
// Both are attached as entry uprobes whatever their ELF sections say (a
// program from SEC("uretprobe") too). The links are named as AttachUprobe
// names them. If any attachment fails,
// those made are detached and the error is returned.
func (m *Manager) AttachGoFunc(coll, entry, ret, path string, fo FuncOffsets) ([]link.Link, error) {
	type point struct {
		prog string
		off  uint64
	}
	var points []point
	if entry != "" {
		points = append(points, point{entry, fo.Start})
	}
	if ret != "" {
		if len(fo.Returns) == 0 {
			return nil, fmt.Errorf("bpf: AttachGoFunc %s/%s: %s:%#x: function has no return instruction to probe", coll, ret, path, fo.Start)
		}
		for _, r := range fo.Returns {
			points = append(points, point{ret, r})
		}
	}
	var links []link.Link
	for _, p := range points {
		l, err := m.attachUprobe("AttachGoFunc", coll, p.prog, path, p.off, uprobeEntry)
		if err != nil {
			var errs []error
			for _, q := range points[:len(links)] {
				if derr := m.DetachLink(fmt.Sprintf("%s/%s@%s:%#x", coll, q.prog, path, q.off)); derr != nil {
					errs = append(errs, derr)
				}
			}
			return nil, errors.Join(append([]error{err}, errs...)...)
		}
		links = append(links, l)
	}
	return links, nil
}
