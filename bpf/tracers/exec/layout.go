package exec

import "unsafe"

// LayoutSize returns the size of the generated struct exec_event (for tests
// that check the decoder's offsets against the compiled C).
func LayoutSize() int { return int(unsafe.Sizeof(bpfExecEvent{})) }

func init() {
	var e bpfExecEvent
	if unsafe.Offsetof(e.Comm) != offComm || unsafe.Offsetof(e.Filename) != offFilename ||
		unsafe.Offsetof(e.FilenameTrunc) != offFilenameTrunc || unsafe.Offsetof(e.OldPid) != offOldPID ||
		unsafe.Offsetof(e.ArgsLen) != offArgsLen || unsafe.Offsetof(e.Args) != offArgs ||
		unsafe.Offsetof(e.Cpu) != offCPU || unsafe.Sizeof(e) != EventSize {
		panic("exec: decoder offsets do not match struct exec_event")
	}
}
