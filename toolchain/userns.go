package toolchain

import "strings"

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
