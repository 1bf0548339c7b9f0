package kernel

import (
	"fmt"
	"strings"
)

// Arch is one target architecture under its several names. LinuxKit's
// kernel directory uses the `uname -m` names (config-x86_64); images and
// tags use the Go/OCI names (amd64); the kernel's own build uses a third
// set (ARCH=x86, sources under arch/x86).
type Arch struct {
	Uname string // x86_64, aarch64, riscv64: file names in the kernel dir, `make list`
	OCI   string // amd64, arm64, riscv64: GOARCH, OCI platform, tag suffix
	// Make is the value for the kernel's `make ARCH=`: what the kernel's
	// Makefile derives from `uname -m` when ARCH is unset, as in
	// upstream's Dockerfile. It is recorded in the .config's first line
	// ("# Linux/x86 6.6.71 Kernel Configuration"), so LinuxKit's stored
	// configs only match with it. ARCH=x86 picks x86_64_defconfig because
	// the sandbox's uname -m is x86_64 (QEMU user-mode reports the guest's).
	Make string
	// Src is the folder under arch/ that holds this arch's sources.
	Src string
	// Defconfig is where the stored config is copied before
	// `make defconfig`, relative to the source tree.
	Defconfig string
	// BootImages are the boot image paths a build produces, relative to the
	// source tree; the first that exists is the image.
	BootImages []string
}

// Platform is the OCI platform, e.g. "linux/amd64".
func (a Arch) Platform() string { return "linux/" + a.OCI }

// ELFMachine is e_machine of the arch's ELF files (EM_X86_64,
// EM_AARCH64, EM_RISCV).
func (a Arch) ELFMachine() uint16 {
	switch a.Uname {
	case "x86_64":
		return 62
	case "aarch64":
		return 183
	case "riscv64":
		return 243
	}
	return 0
}

// String returns the uname name, the one LinuxKit's kernel directory uses.
func (a Arch) String() string { return a.Uname }

// IsZero reports whether a is the zero Arch (no arch chosen).
func (a Arch) IsZero() bool { return a.Uname == "" }

// Arches returns the architectures LinuxKit builds kernels for, in the
// order of their uname names.
func Arches() []Arch {
	return []Arch{
		{
			Uname:      "aarch64",
			OCI:        "arm64",
			Make:       "arm64",
			Src:        "arm64",
			Defconfig:  "arch/arm64/configs/defconfig",
			BootImages: []string{"arch/arm64/boot/Image.gz", "arch/arm64/boot/vmlinuz.efi"},
		},
		{
			Uname:      "riscv64",
			OCI:        "riscv64",
			Make:       "riscv",
			Src:        "riscv",
			Defconfig:  "arch/riscv/configs/defconfig",
			BootImages: []string{"arch/riscv/boot/Image.gz", "arch/riscv/boot/vmlinuz.efi"},
		},
		{
			Uname:      "x86_64",
			OCI:        "amd64",
			Make:       "x86",
			Src:        "x86",
			Defconfig:  "arch/x86/configs/x86_64_defconfig",
			BootImages: []string{"arch/x86/boot/bzImage"},
		},
	}
}

// ParseArch accepts either name of an arch, as LinuxKit's Makefile does:
// x86_64 or amd64, aarch64 or arm64, riscv64. Case matters, as it does for
// uname and GOARCH.
func ParseArch(s string) (Arch, error) {
	var names []string
	for _, a := range Arches() {
		if s == a.Uname || s == a.OCI {
			return a, nil
		}
		if a.OCI == a.Uname {
			names = append(names, a.Uname)
		} else {
			names = append(names, a.Uname+"/"+a.OCI)
		}
	}
	return Arch{}, fmt.Errorf("unknown arch %q (want one of %s)", s, strings.Join(names, ", "))
}
