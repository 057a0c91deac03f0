package syscalls

// Syscall numbers (arm64) the tracer treats specially.
const (
	NRExit      = 93
	NRExitGroup = 94
)
