package syscalls

// Syscall numbers (x86_64) the tracer treats specially.
const (
	NRExit      = 60
	NRExitGroup = 231
)
