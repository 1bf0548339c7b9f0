package builder

import (
	"github.com/lkbuild/lkbuild/sandbox"
	"github.com/lkbuild/lkbuild/toolchain"
)

// Emulate makes the sandbox run a foreign architecture as e says: register
// QEMU in the sandbox's own binfmt_misc when e.Register, else rely on the
// host's registration; either way add e's environment.
func Emulate(s *sandbox.Spec, e toolchain.Emulation) {
	if e.Register {
		s.Emulator = &sandbox.Emulator{Name: e.Name, Interpreter: e.Interpreter, Magic: e.Magic, Mask: e.Mask, Env: e.Env}
		return
	}
	s.Env = sandbox.EnvDefaults(s.Env, e.Env)
}
