package toolchain

import (
	"fmt"
	"runtime"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Arch is a target architecture as the build environment sees it.
type Arch struct {
	// Uname is what `uname -m` prints inside (x86_64, aarch64, riscv64).
	Uname string
	// GoArch is the OCI/Go name (amd64, arm64, riscv64).
	GoArch string
	// elfMagic and elfMask select the architecture's ELF binaries for
	// binfmt_misc, in its \x escapes.
	elfMagic, elfMask string
	// qemuCPU is the QEMU_CPU setting used for emulation, if any.
	qemuCPU string
}

// The ELF header up to e_machine: 64-bit little-endian, any ABI, type
// EXEC or DYN (the mask's \xfe on e_type accepts both), then the machine.
const (
	elf64Magic = `\x7f\x45\x4c\x46\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00`
	elf64Mask  = `\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff`
)

var arches = []Arch{
	{Uname: "x86_64", GoArch: "amd64", elfMagic: elf64Magic + `\x3e\x00`, elfMask: elf64Mask},
	// pauth-impdef makes pointer authentication use QEMU's cheap
	// implementation-defined algorithm instead of QARMA: the same
	// semantics for guest code, several times faster to emulate.
	{Uname: "aarch64", GoArch: "arm64", elfMagic: elf64Magic + `\xb7\x00`, elfMask: elf64Mask, qemuCPU: "max,pauth-impdef=on"},
	{Uname: "riscv64", GoArch: "riscv64", elfMagic: elf64Magic + `\xf3\x00`, elfMask: elf64Mask},
}

// ParseArch accepts either name of an architecture: x86_64 or amd64,
// aarch64 or arm64, riscv64.
func ParseArch(s string) (Arch, error) {
	for _, a := range arches {
		if s == a.Uname || s == a.GoArch {
			return a, nil
		}
	}
	names := make([]string, 0, len(arches))
	for _, a := range arches {
		names = append(names, a.Uname+"/"+a.GoArch)
	}
	return Arch{}, fmt.Errorf("unknown architecture %q (known: %s)", s, strings.Join(names, ", "))
}

// HostArch is the architecture lkbuild runs on.
func HostArch() (Arch, error) { return ParseArch(runtime.GOARCH) }

// Platform is the OCI platform of the architecture.
func (a Arch) Platform() v1.Platform { return v1.Platform{OS: "linux", Architecture: a.GoArch} }

// QEMUName is the architecture's name in qemu-user binaries (qemu-aarch64).
func (a Arch) QEMUName() string { return "qemu-" + a.Uname }

func (a Arch) String() string { return a.Uname }
