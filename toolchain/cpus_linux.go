package toolchain

import (
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

// UsableCPUs reports the CPUs this process may actually use: its affinity
// mask and the cgroup CPU quota, not the host's CPU count.
func UsableCPUs() CPULimit {
	var l CPULimit
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err == nil {
		l.Affinity = set.Count()
	} else {
		l.Affinity = runtime.NumCPU()
	}
	l.Quota, l.Cgroup = CgroupQuota(os.ReadFile)
	return l
}
