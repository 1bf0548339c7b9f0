package toolchain

import (
	"math"
	"strconv"
	"strings"
)

// CPULimit is what limits the CPUs a process may use.
type CPULimit struct {
	// Affinity is the number of CPUs in the scheduler affinity mask.
	Affinity int
	// Quota is the cgroup v2 CPU bandwidth limit in CPUs (cpu.max quota /
	// period), 0 when unlimited.
	Quota float64
	// Cgroup is the cgroup path the quota came from.
	Cgroup string
}

// Jobs is the make -j a build should use: the affinity count, lowered to
// the cgroup quota rounded up, and at least 1.
func (l CPULimit) Jobs() int {
	n := max(l.Affinity, 1)
	if l.Quota > 0 {
		n = min(n, max(int(math.Ceil(l.Quota)), 1))
	}
	return n
}

// ParseCgroupPath finds the cgroup v2 path in /proc/self/cgroup ("0::/x").
func ParseCgroupPath(procSelfCgroup string) (string, bool) {
	for _, line := range strings.Split(procSelfCgroup, "\n") {
		if p, ok := strings.CutPrefix(line, "0::"); ok {
			return p, true
		}
	}
	return "", false
}

// ParseCPUMax reads a cgroup v2 cpu.max file ("max 100000" or
// "150000 100000") and returns the quota in CPUs, 0 for no limit.
func ParseCPUMax(s string) float64 {
	f := strings.Fields(s)
	if len(f) != 2 || f[0] == "max" {
		return 0
	}
	quota, err1 := strconv.ParseFloat(f[0], 64)
	period, err2 := strconv.ParseFloat(f[1], 64)
	if err1 != nil || err2 != nil || period <= 0 || quota <= 0 {
		return 0
	}
	return quota / period
}

// CgroupQuota walks from the process's cgroup up to the root and returns
// the tightest cpu.max quota on the way, as the kernel enforces every
// ancestor's limit.
func CgroupQuota(read ReadFileFunc) (float64, string) {
	b, err := read("/proc/self/cgroup")
	if err != nil {
		return 0, ""
	}
	p, ok := ParseCgroupPath(string(b))
	if !ok {
		return 0, ""
	}
	best, where := 0.0, ""
	for {
		if c, err := read("/sys/fs/cgroup" + strings.TrimSuffix(p, "/") + "/cpu.max"); err == nil {
			if q := ParseCPUMax(string(c)); q > 0 && (best == 0 || q < best) {
				best, where = q, p
			}
		}
		if p == "/" || p == "" {
			return best, where
		}
		i := strings.LastIndex(strings.TrimSuffix(p, "/"), "/")
		p = p[:max(i, 1)]
		if i <= 0 {
			p = "/"
		}
	}
}
