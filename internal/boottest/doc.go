// Package boottest boots a kernel under qemu-system-x86_64 with a small
// initramfs and reports what its /init saw, so tests can check that a
// kernel image built by lkbuild starts and that its modules (from
// kernel.tar, or built out of tree) load.
//
// Initramfs writes the image: a gzip-compressed newc cpio archive, written
// here rather than by cpio(1) so it is byte-for-byte reproducible (sorted
// members, uid 0, mtime 0), holding a static busybox, /dev/console, the
// modules (decompressed, since busybox's insmod reads only plain ELF), any
// extra files and a shell /init. Boot runs qemu under TCG with only a
// serial console and no network device, and parses the console.
//
// # Marker lines
//
// /init prints these on the console, one per line:
//
//	BOOTTEST start                      after mounting proc, sysfs, devtmpfs
//	BOOTTEST insmod <name> ok           for each module, in the given order
//	BOOTTEST insmod <name> failed: <N>  insmod's exit status N
//	BOOTTEST command <i> exit <N>       for each extra command
//	BOOTTEST done                       then poweroff -f
//
// The kernel is booted with panic=-1 and qemu with -no-reboot, so a panic
// or the power-off ends qemu.
//
// # Power-off
//
// A boot succeeds only when the guest powers off after "BOOTTEST done":
// the kernel prints "reboot: Power down" and qemu exits by itself with
// status 0 (Result.PoweredOff). That needs a power-off driver in the
// kernel: ACPI on x86_64 (S5 through the pc machine's PIIX4 power
// management; the kernel's ACPI also needs PCI to read QEMU's tables),
// PSCI on aarch64 and SBI (or the syscon-poweroff device) on riscv64
// under -M virt. Without one, poweroff -f only halts ("reboot: Power off
// not available: System halted instead") and qemu would run on: Boot
// kills it after a grace period and reports ErrNoPowerOff, with
// Result.Done set and the markers parsed.
//
// The package prints nothing: the console goes to BootSpec.Console and
// Result.Console.
package boottest
