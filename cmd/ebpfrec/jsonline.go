package main

import (
	"strconv"

	"github.com/ebpfrec/ebpfrec/bpf/tracers"
	"github.com/ebpfrec/ebpfrec/bpf/tracers/proc"
)

// processFields are the fields of the resolved process that a JSON event
// line adds, in this order, where the event's own JSON lacks the key.
var processFields = [...]struct {
	key   string
	value func(b []byte, pr *proc.Process) []byte
}{
	{"comm", func(b []byte, pr *proc.Process) []byte { return appendJSONString(b, pr.Comm) }},
	{"ppid", func(b []byte, pr *proc.Process) []byte { return strconv.AppendUint(b, uint64(pr.Ppid), 10) }},
	{"cgroup_id", func(b []byte, pr *proc.Process) []byte { // a 64-bit id: a string
		b = append(b, '"')
		b = strconv.AppendUint(b, pr.CgroupID, 10)
		return append(b, '"')
	}},
	{"container_id", func(b []byte, pr *proc.Process) []byte { return appendJSONString(b, pr.ContainerID) }},
	{"exe", func(b []byte, pr *proc.Process) []byte { return appendJSONString(b, pr.Exe) }},
}

// appendEventMembers appends the members of an event's JSON object j, each
// after a comma, but for the event's own "cpu" (a tracers.CPUEvent's),
// which the line's "cpu" gives already; has says which of processFields'
// keys the event has. j is read member by member (jsonMember); an object
// that does not read (encoding/json does not write one) is appended whole.
func appendEventMembers(b, j []byte, ev tracers.Event) (_ []byte, has [len(processFields)]bool) {
	_, ownCPU := ev.(tracers.CPUEvent)
	start := len(b)
	for i := 1; ; {
		key, end, ok := jsonMember(j, i)
		if !ok {
			b = append(b[:start], ',')
			return append(b, j[1:len(j)-1]...), has
		}
		if !(ownCPU && string(key) == "cpu") {
			for k := range processFields {
				if string(key) == processFields[k].key {
					has[k] = true
				}
			}
			b = append(b, ',')
			b = append(b, j[i:end]...)
		}
		if j[end] == '}' {
			return b, has
		}
		i = end + 1
	}
}

// jsonMember reads the member of a compact JSON object (as encoding/json
// writes it) that starts at j[i]: its key as written, between the quotes,
// and the index of the ',' or '}' after its value. ok is false if j[i:]
// does not start with a member followed by one of them.
func jsonMember(j []byte, i int) (key []byte, end int, ok bool) {
	k := jsonStringEnd(j, i)
	if k < 0 || k >= len(j) || j[k] != ':' {
		return nil, 0, false
	}
	depth := 0
	for p := k + 1; p < len(j); p++ {
		switch j[p] {
		case '"':
			q := jsonStringEnd(j, p)
			if q < 0 {
				return nil, 0, false
			}
			p = q - 1
		case '{', '[':
			depth++
		case '}', ']':
			if depth == 0 {
				return j[i+1 : k-1], p, j[p] == '}'
			}
			depth--
		case ',':
			if depth == 0 {
				return j[i+1 : k-1], p, true
			}
		}
	}
	return nil, 0, false
}

// jsonStringEnd returns the index after the JSON string that starts at
// j[i], -1 if none does.
func jsonStringEnd(j []byte, i int) int {
	if i >= len(j) || j[i] != '"' {
		return -1
	}
	for p := i + 1; p < len(j); p++ {
		switch j[p] {
		case '\\':
			p++
		case '"':
			return p + 1
		}
	}
	return -1
}
