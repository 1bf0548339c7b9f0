package toolchain

import (
	"strconv"
	"strings"
)

// ReadFileFunc reads a whole file; os.ReadFile in production, a map in
// tests.
type ReadFileFunc func(name string) ([]byte, error)

// UsernsBlocker explains why unprivileged user namespaces are unavailable
// and how to allow them, from the host's sysctls. It returns "" when no
// known setting blocks them (then seccomp, e.g. a container runtime's
// default profile, is the likely cause).
func UsernsBlocker(read ReadFileFunc) string {
	get := func(name string) (string, bool) {
		b, err := read(name)
		if err != nil {
			return "", false
		}
		return strings.TrimSpace(string(b)), true
	}
	if v, ok := get("/proc/sys/kernel/unprivileged_userns_clone"); ok && v == "0" {
		return "kernel.unprivileged_userns_clone=0; allow with: sysctl -w kernel.unprivileged_userns_clone=1"
	}
	if v, ok := get("/proc/sys/user/max_user_namespaces"); ok && v == "0" {
		return "user.max_user_namespaces=0; allow with: sysctl -w user.max_user_namespaces=15000"
	}
	if v, ok := get("/proc/sys/kernel/apparmor_restrict_unprivileged_userns"); ok && v == "1" {
		return "AppArmor restricts unprivileged user namespaces (kernel.apparmor_restrict_unprivileged_userns=1); " +
			"allow with: sysctl -w kernel.apparmor_restrict_unprivileged_userns=0, or an AppArmor profile granting 'userns' to lkbuild"
	}
	if v, ok := get("/proc/self/status"); ok {
		for _, line := range strings.Split(v, "\n") {
			if f := strings.Fields(line); len(f) == 2 && f[0] == "Seccomp:" && f[1] == "2" {
				return "a seccomp filter is active (running in a container?); its profile may deny clone(CLONE_NEWUSER): " +
					"run the container with a profile that allows it (e.g. --security-opt seccomp=unconfined)"
			}
		}
	}
	return ""
}

// UsernsHint is UsernsBlocker for the running host, with a generic fallback.
func UsernsHint(read ReadFileFunc) string {
	if b := UsernsBlocker(read); b != "" {
		return b
	}
	return "user namespaces are refused; check sysctls user.max_user_namespaces and kernel.unprivileged_userns_clone, AppArmor and seccomp (run lkbuild doctor)"
}

// SubIDCount adds up the subordinate id ranges of a user in an
// /etc/subuid-style file, whose lines are name-or-uid:start:count.
func SubIDCount(subuid, name, uid string) int {
	n := 0
	for _, line := range strings.Split(subuid, "\n") {
		f := strings.Split(strings.TrimSpace(line), ":")
		if len(f) != 3 || (f[0] != name && f[0] != uid) {
			continue
		}
		if c, err := strconv.Atoi(f[2]); err == nil && c > 0 {
			n += c
		}
	}
	return n
}

// SubIDRange returns the first subordinate id range of a user in an
// /etc/subuid-style file that holds at least count ids.
func SubIDRange(subid, name, uid string, count int) (start int, ok bool) {
	for _, line := range strings.Split(subid, "\n") {
		f := strings.Split(strings.TrimSpace(line), ":")
		if len(f) != 3 || (f[0] != name && f[0] != uid) {
			continue
		}
		s, err1 := strconv.Atoi(f[1])
		c, err2 := strconv.Atoi(f[2])
		if err1 == nil && err2 == nil && s >= 0 && c >= count {
			return s, true
		}
	}
	return 0, false
}
