package toolchain

import (
	"debug/elf"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// elfHeader is the 64-byte header of an ELF executable for machine, with
// no program or section headers: enough for debug/elf.
func elfHeader(class elf.Class, machine elf.Machine) []byte {
	h := make([]byte, 64)
	copy(h, "\x7fELF")
	h[elf.EI_CLASS] = byte(class)
	h[elf.EI_DATA] = byte(elf.ELFDATA2LSB)
	h[elf.EI_VERSION] = byte(elf.EV_CURRENT)
	binary.LittleEndian.PutUint16(h[16:], uint16(elf.ET_DYN))
	binary.LittleEndian.PutUint16(h[18:], uint16(machine))
	binary.LittleEndian.PutUint32(h[20:], uint32(elf.EV_CURRENT))
	if class == elf.ELFCLASS32 {
		return h[:52]
	}
	return h
}

func TestDetectArch(t *testing.T) {
	// A merged-/usr tree: bin -> usr/bin, sh -> an absolute link to dash,
	// which must resolve inside the tree, not on the host.
	debianLike := func(t *testing.T, dash []byte) string {
		root := t.TempDir()
		os.MkdirAll(filepath.Join(root, "usr/bin"), 0o755)
		os.Symlink("usr/bin", filepath.Join(root, "bin"))
		os.WriteFile(filepath.Join(root, "usr/bin/dash"), dash, 0o755)
		os.Symlink("/usr/bin/dash", filepath.Join(root, "usr/bin/sh"))
		return root
	}
	tests := []struct {
		name    string
		root    func(t *testing.T) string
		want    string
		wantErr string
	}{
		{"x86_64", func(t *testing.T) string { return debianLike(t, elfHeader(elf.ELFCLASS64, elf.EM_X86_64)) }, "x86_64", ""},
		{"aarch64", func(t *testing.T) string { return debianLike(t, elfHeader(elf.ELFCLASS64, elf.EM_AARCH64)) }, "aarch64", ""},
		{"riscv64", func(t *testing.T) string { return debianLike(t, elfHeader(elf.ELFCLASS64, elf.EM_RISCV)) }, "riscv64", ""},
		{"busybox only", func(t *testing.T) string {
			root := t.TempDir()
			os.MkdirAll(filepath.Join(root, "bin"), 0o755)
			os.WriteFile(filepath.Join(root, "bin/busybox"), elfHeader(elf.ELFCLASS64, elf.EM_RISCV), 0o755)
			return root
		}, "riscv64", ""},
		{"32-bit arm", func(t *testing.T) string { return debianLike(t, elfHeader(elf.ELFCLASS32, elf.EM_ARM)) }, "", "ELFCLASS32 EM_ARM program"},
		{"riscv32", func(t *testing.T) string { return debianLike(t, elfHeader(elf.ELFCLASS32, elf.EM_RISCV)) }, "", "ELFCLASS32 EM_RISCV"},
		{"script", func(t *testing.T) string { return debianLike(t, []byte("#!/bin/true\n")) }, "", "/bin/sh"},
		{"empty dir", func(t *testing.T) string { return t.TempDir() }, "", "is it a rootfs?"},
		{"escaping link", func(t *testing.T) string {
			root := t.TempDir()
			os.Symlink("../../../../../../../usr/bin", filepath.Join(root, "bin"))
			return root
		}, "", "is it a rootfs?"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := DetectArch(tt.root(t))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("DetectArch: %v, %v; want an error saying %q", a, err, tt.wantErr)
				}
				return
			}
			if err != nil || a.Uname != tt.want {
				t.Fatalf("DetectArch: %v, %v; want %s", a, err, tt.want)
			}
		})
	}
}
