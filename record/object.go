package record

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/cilium/ebpf"

	"github.com/ebpfrec/ebpfrec/store"
)

// ObjectOptions say how to record a compiled BPF object file of one's own
// (ObjectCollection).
type ObjectOptions struct {
	// Attach lists where to attach programs, each as ParseAttachment reads
	// it (KIND:TARGET=PROGRAM); empty: where the programs' ELF sections say.
	Attach []string
	// Ringbufs and Perfbufs name the maps to record, checked to be of
	// that kind; both empty: every ring buffer and perf event array. An
	// entry MAP=STRUCT also names the C struct the map's events are (see
	// Stream.Struct): its layout is stored with the stream, so that replay
	// and export show the events' fields.
	Ringbufs, Perfbufs []string
	// Drops and Emitted name, as MAP=COUNTER, the per-CPU array (key 0)
	// that counts a recorded map's failed reserve or output calls
	// (Stream.DropCounter) and its attempts (Stream.EmittedCounter): with
	// a drop counter, a ring buffer's loss in the kernel is counted, not
	// unknown.
	Drops, Emitted []string
	// Set assigns the object's global variables before it is loaded, each
	// as NAME=VALUE with an integer VALUE (0x.. and negative numbers too).
	Set []string
}

// ObjectCollection reads the BPF object file (ELF) at path and returns the
// Collection that records it as o says, named after the file. Its streams
// carry the file's path and SHA-256, so that a recording says which object
// made it.
func ObjectCollection(path string, o ObjectOptions) (Collection, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Collection{}, err
	}
	spec, err := ebpf.LoadCollectionSpecFromReader(bytes.NewReader(b))
	if err != nil {
		return Collection{}, fmt.Errorf("%s: not a BPF object file: %v", path, err)
	}
	sum := sha256.Sum256(b)
	obj := &store.ObjectInfo{Path: path, SHA256: hex.EncodeToString(sum[:])}
	coll := Collection{Name: strings.TrimSuffix(filepath.Base(path), ".o"), Spec: spec}
	for _, a := range o.Attach {
		att, err := ParseAttachment(a)
		if err != nil {
			return coll, err
		}
		coll.Attach = append(coll.Attach, att)
	}
	structs := map[string]string{}
	cut := func(l []string) []string {
		out := make([]string, len(l))
		for i, e := range l {
			m, st, _ := strings.Cut(e, "=")
			out[i] = m
			if st != "" {
				structs[m] = st
			}
		}
		return out
	}
	o.Ringbufs, o.Perfbufs = cut(o.Ringbufs), cut(o.Perfbufs)
	maps := append(slices.Clone(o.Ringbufs), o.Perfbufs...)
	if len(maps) == 0 {
		for n, m := range spec.Maps {
			if m.Type == ebpf.RingBuf || m.Type == ebpf.PerfEventArray {
				maps = append(maps, n)
			}
		}
		sort.Strings(maps)
		if len(maps) == 0 {
			return coll, fmt.Errorf("%s: no ring buffer or perf event array to record", path)
		}
	}
	for _, m := range maps {
		ms, ok := spec.Maps[m]
		if !ok {
			return coll, fmt.Errorf("%s: %w %q (maps: %s)", path, ErrUnknownMap, m, mapNames(spec))
		}
		want := ebpf.RingBuf
		if slices.Contains(o.Perfbufs, m) {
			want = ebpf.PerfEventArray
		}
		if ms.Type != want && (slices.Contains(o.Ringbufs, m) || slices.Contains(o.Perfbufs, m)) {
			return coll, fmt.Errorf("%s: map %q is a %s, not a %s", path, m, ms.Type, want)
		}
		coll.Streams = append(coll.Streams, Stream{Map: m, Name: m, Object: obj, Struct: structs[m]})
		if st := structs[m]; st != "" {
			// Checked here too, so that a wrong name is refused before
			// anything is loaded.
			if _, err := StructLayout(spec, st); err != nil {
				return coll, fmt.Errorf("%s: map %s: %w", path, m, err)
			}
		}
	}
	for _, c := range []struct {
		what string
		list []string
		set  func(*Stream, string)
	}{
		{"drop counter", o.Drops, func(st *Stream, m string) { st.DropCounter = m }},
		{"emitted counter", o.Emitted, func(st *Stream, m string) { st.EmittedCounter = m }},
	} {
		for _, e := range c.list {
			m, counter, ok := strings.Cut(e, "=")
			if !ok || m == "" || counter == "" {
				return coll, fmt.Errorf("%s %q: want MAP=COUNTER", c.what, e)
			}
			i := slices.IndexFunc(coll.Streams, func(st Stream) bool { return st.Map == m })
			if i < 0 {
				return coll, fmt.Errorf("%s %s: map %q is not recorded (recorded: %s)", c.what, e, m, streamMaps(coll.Streams))
			}
			cs, ok := spec.Maps[counter]
			if !ok || cs.Type != ebpf.PerCPUArray {
				var arrays []string
				for n, ms := range spec.Maps {
					if ms.Type == ebpf.PerCPUArray {
						arrays = append(arrays, n)
					}
				}
				sort.Strings(arrays)
				if !ok {
					return coll, fmt.Errorf("%s %s: %w %q (per-CPU arrays: %s)", c.what, e, ErrUnknownMap, counter, strings.Join(arrays, ", "))
				}
				return coll, fmt.Errorf("%s %s: map %q is a %s, not a per-CPU array (per-CPU arrays: %s)", c.what, e, counter, cs.Type, strings.Join(arrays, ", "))
			}
			c.set(&coll.Streams[i], counter)
		}
	}
	if err := setVariables(spec, o.Set); err != nil {
		return coll, fmt.Errorf("%s: %w", path, err)
	}
	return coll, nil
}

// streamMaps lists the maps of streams, for errors.
func streamMaps(streams []Stream) string {
	var names []string
	for _, st := range streams {
		names = append(names, st.Map)
	}
	return strings.Join(names, ", ")
}

// setVariables assigns NAME=VALUE to the spec's global variables.
func setVariables(spec *ebpf.CollectionSpec, sets []string) error {
	for _, kv := range sets {
		name, val, ok := strings.Cut(kv, "=")
		if !ok {
			return fmt.Errorf("set %q: want NAME=VALUE", kv)
		}
		v, ok := spec.Variables[name]
		if !ok {
			var names []string
			for n := range spec.Variables {
				if !strings.HasPrefix(n, ".") {
					names = append(names, n)
				}
			}
			sort.Strings(names)
			return fmt.Errorf("set %s: no global variable %q (variables: %s)", kv, name, strings.Join(names, ", "))
		}
		n, err := strconv.ParseInt(val, 0, 64)
		if err != nil {
			u, uerr := strconv.ParseUint(val, 0, 64)
			if uerr != nil {
				return fmt.Errorf("set %s: %q is not an integer", kv, val)
			}
			n = int64(u)
		}
		var setErr error
		switch v.Size() {
		case 1:
			setErr = v.Set(uint8(n))
		case 2:
			setErr = v.Set(uint16(n))
		case 4:
			setErr = v.Set(uint32(n))
		case 8:
			setErr = v.Set(uint64(n))
		default:
			setErr = fmt.Errorf("variable of %d bytes is not an integer", v.Size())
		}
		if setErr != nil {
			return fmt.Errorf("set %s: %v", kv, setErr)
		}
	}
	return nil
}
