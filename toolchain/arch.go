package toolchain

import (
	"runtime"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/lkbuild/lkbuild/kernel"
)

// The arch type is kernel.Arch, the one table of the arches lkbuild
// builds for (uname and OCI names); this file adds what running an arch's
// binaries needs.

// The ELF header up to e_machine: 64-bit little-endian, any ABI, type
// EXEC or DYN (the mask's \xfe on e_type accepts both), then the machine.
const (
	elf64Magic = `\x7f\x45\x4c\x46\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00`
	elf64Mask  = `\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff`
)

// binfmt is how binfmt_misc recognises an arch's ELF binaries, in its \x
// escapes, and the QEMU_CPU that emulates it best ("" for QEMU's default).
func binfmt(a kernel.Arch) (magic, mask, qemuCPU string) {
	switch a.Uname {
	case "x86_64":
		return elf64Magic + `\x3e\x00`, elf64Mask, ""
	case "aarch64":
		// pauth-impdef makes pointer authentication use QEMU's cheap
		// implementation-defined algorithm instead of QARMA: the same
		// semantics for guest code, several times faster to emulate.
		return elf64Magic + `\xb7\x00`, elf64Mask, "max,pauth-impdef=on"
	case "riscv64":
		return elf64Magic + `\xf3\x00`, elf64Mask, ""
	}
	return "", "", ""
}

// HostArch is the architecture lkbuild runs on.
func HostArch() (kernel.Arch, error) { return kernel.ParseArch(runtime.GOARCH) }

// Platform is the OCI platform of an arch.
func Platform(a kernel.Arch) v1.Platform { return v1.Platform{OS: "linux", Architecture: a.OCI} }

// QEMUName is the arch's name in qemu-user binaries (qemu-aarch64).
func QEMUName(a kernel.Arch) string { return "qemu-" + a.Uname }

// Triplet is the GNU target triplet of an arch's Debian toolchain, the
// prefix of its cross tools (aarch64-linux-gnu-gcc) and the multiarch
// library directory (/usr/lib/aarch64-linux-gnu).
func Triplet(a kernel.Arch) string { return a.Uname + "-linux-gnu" }
