package open_test

// open(2) and creat(2) exist on x86_64, not on arm64.
const (
	haveLegacyOpen = false
	sysOpen        = ^uintptr(0)
	sysCreat       = ^uintptr(0)
)
