package kernel_test

import (
	"fmt"
	"testing/fstest"
	"time"

	"github.com/lkbuild/lkbuild/kernel"
)

// ExampleNewPlan prints the steps of a plain x86_64 build of a series
// with one patch.
func ExampleNewPlan() {
	dir, err := kernel.Load(fstest.MapFS{
		"common/config-dbg":            {Data: []byte("CONFIG_LOCKDEP=y\n")},
		"6.6.x/build-args":             {Data: []byte("KERNEL_VERSION=6.6.71\nKERNEL_SERIES=6.6.x\nBUILD_IMAGE=linuxkit/alpine:35b33c6b\n")},
		"6.6.x/config-x86_64":          {Data: []byte("CONFIG_LOCALVERSION=\"-linuxkit\"\n")},
		"6.6.x/config-aarch64":         {Data: []byte("CONFIG_LOCALVERSION=\"-linuxkit\"\n")},
		"6.6.x/patches/0001-fix.patch": {Data: []byte("--- a/x\n+++ b/x\n")},
	}, "kernel")
	if err != nil {
		fmt.Println(err)
		return
	}
	arch, _ := kernel.ParseArch("amd64")
	plan, err := kernel.NewPlan(dir, kernel.Query{Series: "6.6.x"}, arch, kernel.PlanOptions{
		Jobs:  8,
		Epoch: time.Unix(1735689600, 0),
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	for i, s := range plan.Steps {
		fmt.Printf("%d. %s\n", i+1, s)
	}
	// Output:
	// 1. intel-ucode.cpio: iucode_tool --normal-earlyfw --write-earlyfw=/out/intel-ucode.cpio ./intel-ucode (in /ucode)
	// 2. intel-ucode-license.txt: copy /ucode/license to /out/intel-ucode-license.txt
	// 3. patch 0001-fix.patch: patch -t -F0 -N -u -p1 -i /src/6.6.x/patches/0001-fix.patch (in /linux)
	// 4. src/linux.tar.xz: tar /linux under linux/, xz to /out/src/linux.tar.xz
	// 5. install config: write /linux/arch/x86/configs/x86_64_defconfig (32 bytes)
	// 6. defconfig: make defconfig (in /linux)
	// 7. oldconfig: make oldconfig (in /linux)
	// 8. check config: compare /linux/.config to kernel/6.6.x/config-x86_64
	// 9. make: make -j8 KCFLAGS=-fno-pie (in /linux)
	// 10. kernelrelease: make -s kernelrelease (in /linux), prints the release
	// 11. kernel: copy /linux/arch/x86/boot/bzImage to /out/kernel
	// 12. System.map: copy /linux/System.map to /out/System.map
	// 13. modules_install: make -j8 INSTALL_MOD_PATH=/work/kernel-modules modules_install (in /linux)
	// 14. remove modules build and source links: rm -f /work/kernel-modules/lib/modules/@KERNELRELEASE@/build /work/kernel-modules/lib/modules/@KERNELRELEASE@/source (in /)
	// 15. link modules build to headers: ln -s /usr/src/linux-headers-@KERNELRELEASE@ /work/kernel-modules/lib/modules/@KERNELRELEASE@/build (in /)
	// 16. kernel.tar: tar /work/kernel-modules under ./ to /out/kernel.tar
	// 17. create headers dir: mkdir -p /work/kernel-headers/usr (in /)
	// 18. headers_install: make -j8 INSTALL_HDR_PATH=/work/kernel-headers/usr headers_install (in /linux)
	// 19. kernel-headers.tar: tar /work/kernel-headers to /out/kernel-headers.tar
	// 20. kernel-dev.tar: tar the kernel-dev files of /linux under usr/src/linux-headers-@KERNELRELEASE@/ to /out/kernel-dev.tar
	// 21. kernel-builder: write /out/kernel-builder (24 bytes)
	// 22. kernel-source-info: write /out/kernel-source-info (79 bytes)
}
