//go:build !linux

package toolchain

import (
	"os"
	"os/exec"
)

// Host describes the running host for FindEmulator.
func Host() EmulatorHost {
	return EmulatorHost{LookPath: exec.LookPath, ReadFile: os.ReadFile, Stat: os.Stat}
}
