package open_test

import "syscall"

// open(2) and creat(2) exist on x86_64, not on arm64.
const (
	haveLegacyOpen = true
	sysOpen        = syscall.SYS_OPEN
	sysCreat       = syscall.SYS_CREAT
)
