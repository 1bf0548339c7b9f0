package toolchain

import (
	"os"
	"os/exec"

	"golang.org/x/sys/unix"
)

// Host describes the running host for FindEmulator.
func Host() EmulatorHost {
	var u unix.Utsname
	release := ""
	if err := unix.Uname(&u); err == nil {
		release = unix.ByteSliceToString(u.Release[:])
	}
	return EmulatorHost{LookPath: exec.LookPath, KernelRelease: release, ReadFile: os.ReadFile, Stat: os.Stat}
}
