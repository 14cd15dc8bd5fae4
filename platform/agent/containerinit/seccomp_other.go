//go:build linux && !amd64 && !arm64

package containerinit

const (
	auditArch        = 0
	x32Bit           = 0
	cloneFlagsOffset = offArg0Lo
)

var deniedSyscalls []int
