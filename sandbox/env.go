package sandbox

import "strings"

// EnvDefaults adds the variables of defaults that env does not set: what
// the caller set explicitly (say QEMU_CPU) wins.
func EnvDefaults(env, defaults []string) []string {
	out := append([]string{}, env...)
	for _, d := range defaults {
		k, _, _ := strings.Cut(d, "=")
		set := false
		for _, e := range env {
			if strings.HasPrefix(e, k+"=") {
				set = true
			}
		}
		if !set {
			out = append(out, d)
		}
	}
	return out
}
