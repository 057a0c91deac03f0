// Package all registers every built-in tracer: import it for its side
// effect, then use the tracers registry (tracers.New, tracers.Names).
package all

import (
	// Each registers itself in init.
	_ "github.com/ebpfrec/ebpfrec/bpf/tracers/bash"
	_ "github.com/ebpfrec/ebpfrec/bpf/tracers/dns"
	_ "github.com/ebpfrec/ebpfrec/bpf/tracers/exec"
	_ "github.com/ebpfrec/ebpfrec/bpf/tracers/exit"
	_ "github.com/ebpfrec/ebpfrec/bpf/tracers/gofunc"
	_ "github.com/ebpfrec/ebpfrec/bpf/tracers/open"
	_ "github.com/ebpfrec/ebpfrec/bpf/tracers/proc"
	_ "github.com/ebpfrec/ebpfrec/bpf/tracers/syscalls"
	_ "github.com/ebpfrec/ebpfrec/bpf/tracers/tcp"
)

// Default are the tracers `ebpfrec record` runs when none is named.
var Default = []string{"exec", "exit", "open", "tcp"}
