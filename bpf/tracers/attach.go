package tracers

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/link"

	"github.com/ebpfrec/ebpfrec/bpf"
)

// Attach attaches every program of t.Tracepoints(): a key "group/name" is a
// classic tracepoint (tracefs), a bare name a BTF tracepoint (tp_btf, for
// programs of type Tracing) or a raw tracepoint. It returns the links,
// which the caller closes; on error none stay attached.
func Attach(t bpf.KprobesTracer) ([]link.Link, error) {
	tps := t.Tracepoints()
	keys := make([]string, 0, len(tps))
	for k := range tps {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var links []link.Link
	fail := func(err error) ([]link.Link, error) {
		for _, l := range links {
			l.Close()
		}
		return nil, err
	}
	for _, k := range keys {
		for _, p := range []*ebpf.Program{tps[k].Start, tps[k].End} {
			if p == nil {
				continue
			}
			l, err := AttachProgram(k, p)
			if err != nil {
				if !tps[k].Required {
					continue
				}
				return fail(err)
			}
			links = append(links, l)
		}
	}
	return links, nil
}

// AttachProgram attaches one tracepoint program as Attach does.
func AttachProgram(key string, p *ebpf.Program) (link.Link, error) {
	var l link.Link
	var err error
	switch p.Type() {
	case ebpf.TracePoint:
		group, name, ok := strings.Cut(key, "/")
		if !ok {
			return nil, fmt.Errorf("tracepoint %q: want group/name", key)
		}
		l, err = link.Tracepoint(group, name, p, nil)
		if err != nil && errors.Is(err, os.ErrNotExist) {
			if terr := TracefsMounted(); terr != nil {
				err = fmt.Errorf("%w (%v)", err, terr)
			}
		}
	case ebpf.RawTracepoint:
		l, err = link.AttachRawTracepoint(link.RawTracepointOptions{Name: key, Program: p})
	case ebpf.Tracing:
		l, err = link.AttachTracing(link.TracingOptions{Program: p})
	default:
		return nil, fmt.Errorf("tracepoint %s: program type %s is not a tracepoint program", key, p.Type())
	}
	if err != nil {
		return nil, fmt.Errorf("attach %s: %w", key, err)
	}
	return l, nil
}

// ProgramsByAttachPoint maps the attach keys of Tracepoints ("group/name"
// for classic tracepoints, the bare name for raw and BTF tracepoints) to
// the names of the programs in spec, from their ELF sections
// (tracepoint/GROUP/NAME, raw_tp/NAME, raw_tracepoint/NAME, tp_btf/NAME):
// what bpf.Manager.AttachTracepoint needs.
func ProgramsByAttachPoint(spec *ebpf.CollectionSpec) map[string]string {
	out := map[string]string{}
	for name, ps := range spec.Programs {
		kind, point, ok := strings.Cut(ps.SectionName, "/")
		if !ok {
			continue
		}
		switch kind {
		case "tracepoint", "tp":
			if strings.Contains(point, "/") {
				out[point] = name
			}
		case "raw_tp", "raw_tracepoint", "tp_btf":
			out[point] = name
		}
	}
	return out
}

// TracefsDir is where ebpfrec expects tracefs.
const TracefsDir = "/sys/kernel/tracing"

// TracefsMounted returns nil if tracefs is mounted and readable, or an
// error saying how to mount it, or that only root can read it.
func TracefsMounted() error {
	var denied error
	for _, d := range []string{TracefsDir, "/sys/kernel/debug/tracing"} {
		_, err := os.Stat(filepath.Join(d, "events"))
		if err == nil {
			return nil
		}
		if errors.Is(err, fs.ErrPermission) && denied == nil {
			denied = fmt.Errorf("cannot read tracefs at %s: permission denied (run as root)", d)
		}
	}
	if denied != nil {
		return denied
	}
	if mounts, err := os.ReadFile("/proc/self/mounts"); err == nil {
		for _, line := range strings.Split(string(mounts), "\n") {
			if f := strings.Fields(line); len(f) >= 3 && f[2] == "tracefs" {
				return fmt.Errorf("cannot read tracefs at %s (run as root)", f[1])
			}
		}
	}
	return fmt.Errorf("tracefs is not mounted at %s (as root: mount -t tracefs tracefs %s)", TracefsDir, TracefsDir)
}

// CheckTracepoint returns nil if the classic tracepoint group/name exists.
func CheckTracepoint(group, name string) error {
	if err := TracefsMounted(); err != nil {
		return err
	}
	for _, d := range []string{TracefsDir, "/sys/kernel/debug/tracing"} {
		if _, err := os.Stat(filepath.Join(d, "events", group, name)); err == nil {
			return nil
		}
	}
	return fmt.Errorf("tracepoint %s/%s does not exist on this kernel", group, name)
}

var (
	kbtfOnce sync.Once
	kbtf     *btf.Spec
	kbtfErr  error
)

func kernelBTF() (*btf.Spec, error) {
	kbtfOnce.Do(func() {
		kbtf, kbtfErr = btf.LoadKernelSpec()
		if kbtfErr != nil {
			kbtfErr = fmt.Errorf("kernel BTF (/sys/kernel/btf/vmlinux) is not available: %w", kbtfErr)
		}
	})
	return kbtf, kbtfErr
}

// CheckBTFTracepoint returns nil if the kernel has BTF and the tracepoint
// name, which BTF and raw tracepoints (tp_btf/NAME, raw_tp/NAME) need.
func CheckBTFTracepoint(name string) error {
	spec, err := kernelBTF()
	if err != nil {
		return err
	}
	var td *btf.Typedef
	if err := spec.TypeByName("btf_trace_"+name, &td); err != nil {
		return fmt.Errorf("tracepoint %s is not in the kernel's BTF: %w", name, err)
	}
	return nil
}
