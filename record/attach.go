package record

import (
	"debug/elf"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	"github.com/ebpfrec/ebpfrec/bpf"
)

// ErrBadAttachment is wrapped by errors about an attachment's syntax or target.
var ErrBadAttachment = errors.New("bad attachment")

// Attachment says where to attach one program of a collection.
type Attachment struct {
	// Kind is one of tracepoint, raw_tracepoint, tp_btf, uprobe, uretprobe,
	// kprobe, kretprobe.
	Kind string
	// Target is GROUP/NAME for a tracepoint, NAME for raw and BTF
	// tracepoints, /path/to/file:SYMBOL (or :0xOFFSET) for uprobes and the
	// kernel symbol for kprobes.
	Target string
	// Program is the program's name in the collection spec.
	Program string
}

// String renders the attachment as ParseAttachment reads it.
func (a Attachment) String() string { return a.Kind + ":" + a.Target + "=" + a.Program }

var attachKinds = map[string]string{
	"tracepoint": "tracepoint", "tp": "tracepoint",
	"raw_tracepoint": "raw_tracepoint", "raw_tp": "raw_tracepoint",
	"tp_btf": "tp_btf",
	"uprobe": "uprobe", "uretprobe": "uretprobe",
	"kprobe": "kprobe", "kretprobe": "kretprobe",
}

// ParseAttachment parses KIND:TARGET=PROGRAM, e.g.
// "tracepoint:syscalls/sys_enter_openat=trace_open" or
// "uprobe:/usr/bin/bash:readline=on_readline".
func ParseAttachment(s string) (Attachment, error) {
	eq := strings.LastIndexByte(s, '=')
	colon := strings.IndexByte(s, ':')
	if eq < 0 || colon < 0 || colon > eq {
		return Attachment{}, fmt.Errorf("%w %q: want KIND:TARGET=PROGRAM (e.g. tracepoint:sched/sched_process_exec=handle_exec)", ErrBadAttachment, s)
	}
	kind, ok := attachKinds[s[:colon]]
	if !ok {
		return Attachment{}, fmt.Errorf("%w %q: unknown kind %q (want tracepoint, raw_tracepoint, tp_btf, uprobe, uretprobe, kprobe or kretprobe)", ErrBadAttachment, s, s[:colon])
	}
	a := Attachment{Kind: kind, Target: s[colon+1 : eq], Program: s[eq+1:]}
	if a.Target == "" || a.Program == "" {
		return Attachment{}, fmt.Errorf("%w %q: empty target or program", ErrBadAttachment, s)
	}
	switch kind {
	case "tracepoint":
		if g, n, ok := strings.Cut(a.Target, "/"); !ok || g == "" || n == "" {
			return Attachment{}, fmt.Errorf("%w %q: a tracepoint is GROUP/NAME", ErrBadAttachment, s)
		}
	case "uprobe", "uretprobe":
		if i := strings.LastIndexByte(a.Target, ':'); i <= 0 || i == len(a.Target)-1 {
			return Attachment{}, fmt.Errorf("%w %q: a uprobe is /path/to/file:SYMBOL or :0xOFFSET", ErrBadAttachment, s)
		}
	}
	return a, nil
}

// sectionAttachments derives attachments from the programs' ELF section
// names, as libbpf does for auto-attach: tracepoint/GROUP/NAME,
// raw_tp/NAME, tp_btf/NAME, kprobe/SYM, uprobe/PATH:SYM. Programs whose
// section names no target (a bare "uprobe") need an explicit attachment.
func sectionAttachments(spec *ebpf.CollectionSpec) []Attachment {
	var out []Attachment
	for name, p := range spec.Programs {
		kind, target, ok := strings.Cut(p.SectionName, "/")
		if !ok || target == "" {
			continue
		}
		switch kind {
		case "tp":
			kind = "tracepoint"
		case "raw_tp":
			kind = "raw_tracepoint"
		}
		if _, known := attachKinds[kind]; !known {
			continue
		}
		out = append(out, Attachment{Kind: attachKinds[kind], Target: target, Program: name})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Program < out[j].Program })
	return out
}

// attach attaches a through the manager; the program must be in collection
// coll, made from spec. The kind a says is the probe made, whatever the
// program's section says.
func attach(mgr *bpf.Manager, coll string, spec *ebpf.CollectionSpec, a Attachment) (link.Link, error) {
	switch a.Kind {
	case "tracepoint":
		group, name, _ := strings.Cut(a.Target, "/")
		return mgr.AttachTracepoint(coll, a.Program, group, name)
	case "raw_tracepoint", "tp_btf":
		return mgr.AttachTracepoint(coll, a.Program, "", a.Target)
	case "kprobe":
		return mgr.AttachKprobe(coll, a.Program, a.Target)
	case "kretprobe":
		return mgr.AttachKretprobe(coll, a.Program, a.Target)
	case "uprobe", "uretprobe":
		i := strings.LastIndexByte(a.Target, ':')
		path, sym := a.Target[:i], a.Target[i+1:]
		off, err := symbolOffset(path, sym)
		if err != nil {
			return nil, fmt.Errorf("%w %s: %v", ErrBadAttachment, a, err)
		}
		if a.Kind == "uretprobe" {
			return mgr.AttachUretprobe(coll, a.Program, path, off)
		}
		if ps := spec.Programs[a.Program]; ps != nil && strings.HasPrefix(ps.SectionName, "uretprobe") {
			// AttachUprobe would follow the section and make a return probe.
			return nil, fmt.Errorf("%w %s: program %s is a return probe (SEC(%q)): attach it as uretprobe:%s", ErrBadAttachment, a, a.Program, ps.SectionName, a.Target)
		}
		return mgr.AttachUprobe(coll, a.Program, path, off)
	}
	return nil, fmt.Errorf("%w %s: unknown kind", ErrBadAttachment, a)
}

// symbolOffset returns the file offset of sym in the ELF file at path: sym
// is a symbol name (from .symtab or .dynsym) or a number (0x... or decimal)
// taken as the offset itself.
func symbolOffset(path, sym string) (uint64, error) {
	if off, err := strconv.ParseUint(sym, 0, 64); err == nil {
		return off, nil
	}
	f, err := elf.Open(path)
	if err != nil {
		return 0, fmt.Errorf("open %s: %w", path, err)
	}
	defer f.Close()
	var syms []elf.Symbol
	if s, err := f.Symbols(); err == nil {
		syms = append(syms, s...)
	}
	if s, err := f.DynamicSymbols(); err == nil {
		syms = append(syms, s...)
	}
	for _, s := range syms {
		if s.Name != sym || elf.ST_TYPE(s.Info) != elf.STT_FUNC || s.Value == 0 {
			continue
		}
		for _, p := range f.Progs {
			if p.Type == elf.PT_LOAD && p.Flags&elf.PF_X != 0 && s.Value >= p.Vaddr && s.Value < p.Vaddr+p.Memsz {
				return s.Value - p.Vaddr + p.Off, nil
			}
		}
		return 0, fmt.Errorf("symbol %s of %s is in no executable segment", sym, path)
	}
	return 0, fmt.Errorf("no function symbol %q in %s", sym, path)
}
