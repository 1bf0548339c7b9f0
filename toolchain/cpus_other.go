//go:build !linux

package toolchain

import "runtime"

// UsableCPUs reports the host's CPU count; limits are only read on Linux.
func UsableCPUs() CPULimit { return CPULimit{Affinity: runtime.NumCPU()} }
