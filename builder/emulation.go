package builder

import (
	"strings"

	"github.com/lkbuild/lkbuild/toolchain"
)

// UseEmulation makes the sandbox run a foreign architecture as e says:
// register QEMU in the sandbox's own binfmt_misc when e.Register, else
// rely on the host's registration; either way add e's environment.
func (s *Spec) UseEmulation(e toolchain.Emulation) {
	if e.Register {
		s.Emulator = &Emulator{Name: e.Name, Interpreter: e.Interpreter, Magic: e.Magic, Mask: e.Mask, Env: e.Env}
		return
	}
	s.Env = withDefaults(s.Env, e.Env)
}

// withDefaults adds the defaults' variables that env does not set: what
// the caller set explicitly (say QEMU_CPU) wins.
func withDefaults(env, defaults []string) []string {
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
