package kernel

import "testing"

func TestParseArch(t *testing.T) {
	for _, tc := range []struct {
		in                   string
		uname, oci, platform string
		make, defconfig      string
		boot                 string // first boot image candidate
	}{
		{"x86_64", "x86_64", "amd64", "linux/amd64", "x86", "arch/x86/configs/x86_64_defconfig", "arch/x86/boot/bzImage"},
		{"amd64", "x86_64", "amd64", "linux/amd64", "x86", "arch/x86/configs/x86_64_defconfig", "arch/x86/boot/bzImage"},
		{"aarch64", "aarch64", "arm64", "linux/arm64", "arm64", "arch/arm64/configs/defconfig", "arch/arm64/boot/Image.gz"},
		{"arm64", "aarch64", "arm64", "linux/arm64", "arm64", "arch/arm64/configs/defconfig", "arch/arm64/boot/Image.gz"},
		{"riscv64", "riscv64", "riscv64", "linux/riscv64", "riscv", "arch/riscv/configs/defconfig", "arch/riscv/boot/Image.gz"},
	} {
		a, err := ParseArch(tc.in)
		if err != nil {
			t.Errorf("ParseArch(%q): %v", tc.in, err)
			continue
		}
		if a.Uname != tc.uname || a.OCI != tc.oci || a.Platform() != tc.platform || a.Make != tc.make || a.Defconfig != tc.defconfig || a.BootImages[0] != tc.boot {
			t.Errorf("ParseArch(%q) = %+v", tc.in, a)
		}
	}
	for _, bad := range []string{"", "AMD64", "i386", "x86", "arm", "riscv", "s390x"} {
		if a, err := ParseArch(bad); err == nil {
			t.Errorf("ParseArch(%q) = %+v, want an error", bad, a)
		}
	}
	// The error lists each arch once, by both names where they differ.
	_, err := ParseArch("s390x")
	if want := `unknown arch "s390x" (want one of aarch64/arm64, riscv64, x86_64/amd64)`; err == nil || err.Error() != want {
		t.Errorf("error %v, want %s", err, want)
	}
}

func TestArchBootImagesFallBack(t *testing.T) {
	// aarch64 and riscv64 produce Image.gz, or vmlinuz.efi with EFI zboot.
	for _, name := range []string{"arm64", "riscv64"} {
		a, _ := ParseArch(name)
		if len(a.BootImages) != 2 || a.BootImages[1] != "arch/"+a.Src+"/boot/vmlinuz.efi" {
			t.Errorf("%s boot images = %q", name, a.BootImages)
		}
	}
}
