package proc

import "unsafe"

// Sizes of the generated structs, for tests that check the decoder's
// offsets against the compiled C.
func headSize() int { return int(unsafe.Sizeof(bpfProcHead{})) }
func execSize() int { return int(unsafe.Sizeof(bpfProcExecEvent{})) }

func init() {
	var h bpfProcHead
	var e bpfProcExecEvent
	if headSize() != HeadSize || execSize() != ExecSize ||
		unsafe.Offsetof(h.Kind) != offKind || unsafe.Offsetof(h.Pid) != offPID ||
		unsafe.Offsetof(h.CgroupId) != offCgroupID || unsafe.Offsetof(h.StartNs) != offStart ||
		unsafe.Offsetof(h.Comm) != offComm || unsafe.Offsetof(h.Cpu) != offCPU ||
		unsafe.Offsetof(e.Filename) != offFilename || unsafe.Offsetof(e.FilenameTrunc) != offFilenameTrunc ||
		unsafe.Offsetof(e.ArgsLen) != offArgsLen || unsafe.Offsetof(e.Args) != offArgs {
		panic("proc: decoder offsets do not match struct proc_head / proc_exec_event")
	}
}
