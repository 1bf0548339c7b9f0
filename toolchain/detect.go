package toolchain

import (
	"debug/elf"
	"errors"
	"fmt"
	"os"

	securejoin "github.com/cyphar/filepath-securejoin"

	"github.com/lkbuild/lkbuild/kernel"
)

// DetectArch says which arch a rootfs tree is for, from the ELF header of
// the first of its programs every Linux userland has (the shell, env,
// busybox). Symlinks are followed inside root, as the sandbox would.
func DetectArch(root string) (kernel.Arch, error) {
	var tried []string
	for _, p := range []string{"bin/sh", "usr/bin/sh", "usr/bin/env", "bin/busybox"} {
		full, err := securejoin.SecureJoin(root, p)
		if err != nil {
			return kernel.Arch{}, fmt.Errorf("detect the arch of %s: %w", root, err)
		}
		f, err := elf.Open(full)
		if errors.Is(err, os.ErrNotExist) {
			tried = append(tried, "/"+p)
			continue
		}
		if err != nil {
			return kernel.Arch{}, fmt.Errorf("detect the arch of %s: /%s: %w", root, p, err)
		}
		machine, class := f.Machine, f.Class
		f.Close()
		name := ""
		switch {
		case class == elf.ELFCLASS64 && machine == elf.EM_X86_64:
			name = "x86_64"
		case class == elf.ELFCLASS64 && machine == elf.EM_AARCH64:
			name = "aarch64"
		case class == elf.ELFCLASS64 && machine == elf.EM_RISCV:
			name = "riscv64"
		default:
			return kernel.Arch{}, fmt.Errorf("detect the arch of %s: /%s is a %s %s program, not one lkbuild builds for (give --arch if the tree is for another)", root, p, class, machine)
		}
		return kernel.ParseArch(name)
	}
	return kernel.Arch{}, fmt.Errorf("detect the arch of %s: none of %v is there: is it a rootfs? (give --arch to say its arch)", root, tried)
}
