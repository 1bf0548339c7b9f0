package boottest

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lkbuild/lkbuild/internal/testenv"
)

// debianKernel returns the fixture that testdata/debian-kernel.sh made
// (vmlinuz and lib/modules/<release>/), skipping or failing the test
// without it or without qemu and busybox.
func debianKernel(t *testing.T) string {
	t.Helper()
	testenv.LookPath(t, DefaultQEMU, "qemu-system-x86")
	_, err := os.Stat(DefaultBusybox)
	testenv.Need(t, err == nil, DefaultBusybox+" is missing (Debian package busybox-static; scripts/deps.sh installs it)")
	dir := testenv.Getenv(t, "LKBUILD_TEST_DEBIAN_KERNEL", "a directory made by internal/boottest/testdata/debian-kernel.sh")
	if _, err := os.Stat(filepath.Join(dir, "vmlinuz")); err != nil {
		t.Fatalf("LKBUILD_TEST_DEBIAN_KERNEL: %v", err)
	}
	return dir
}

func writeInitramfs(t *testing.T, spec InitramfsSpec) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "initramfs.cpio.gz")
	var buf bytes.Buffer
	if err := Initramfs(&buf, spec); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// qemuProcesses lists the processes whose command line mentions s.
func qemuProcesses(t *testing.T, s string) []string {
	t.Helper()
	procs, err := filepath.Glob("/proc/[0-9]*/cmdline")
	if err != nil {
		t.Fatal(err)
	}
	var found []string
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err == nil && bytes.Contains(b, []byte(s)) && bytes.Contains(b, []byte("qemu")) {
			found = append(found, p+": "+strings.ReplaceAll(string(b), "\x00", " "))
		}
	}
	return found
}

// TestBootDebianKernel boots Debian's cloud kernel under TCG. The
// out-of-tree module is played by one of the kernel's own modules,
// xz-compressed and given by host path.
func TestBootDebianKernel(t *testing.T) {
	dir := debianKernel(t)
	kernel := filepath.Join(dir, "vmlinuz")
	release, err := moduleRelease(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	plain, err := os.ReadFile(filepath.Join(dir, "lib", "modules", release, "kernel", "lib", "ts_kmp.ko"))
	if err != nil {
		t.Fatal(err)
	}
	outOfTree := filepath.Join(t.TempDir(), "ts_kmp.ko.xz")
	write(t, outOfTree, xzBytes(t, plain))

	t.Run("modules", func(t *testing.T) {
		t.Parallel()
		initrd := writeInitramfs(t, InitramfsSpec{
			ModuleTree: dir,
			Modules: []Module{
				{Path: "kernel/lib/crc7.ko"},
				// A dependency listed first, then the module that needs it.
				{Path: "kernel/crypto/cast_common.ko"},
				{Path: "kernel/crypto/cast5_generic.ko"},
				{HostPath: outOfTree},
				// Unknown symbols: its dependency blowfish_common is missing.
				{Path: "kernel/crypto/blowfish_generic.ko"},
				{Name: "garbage", Data: []byte("not an ELF file")},
				{Guest: "/lib/modules/nosuch.ko"},
			},
			Commands: []string{"grep -q '^crc7 ' /proc/modules", "exit 3"},
		})
		var console bytes.Buffer
		res, err := Boot(context.Background(), BootSpec{Kernel: kernel, Initramfs: initrd, Timeout: 3 * time.Minute, Console: &console})
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("BOOTTEST done %.2f s after qemu started (%s, TCG)", res.Elapsed.Seconds(), release)
		if !res.Started || !res.Done || !res.PoweredOff {
			t.Errorf("Started %v, Done %v, PoweredOff %v", res.Started, res.Done, res.PoweredOff)
		}
		if !strings.Contains(console.String(), "BOOTTEST done\r\n") {
			t.Error("the Console writer did not get the console")
		}
		want := []ModuleResult{
			{Name: "crc7", OK: true},
			{Name: "cast_common", OK: true},
			{Name: "cast5_generic", OK: true},
			{Name: "ts_kmp", OK: true},
			{Name: "blowfish_generic", Status: 1},
			{Name: "garbage", Status: 1},
			{Name: "nosuch", Status: 1},
		}
		if len(res.Modules) != len(want) {
			t.Fatalf("modules %+v, want %+v\n%s", res.Modules, want, res.Console)
		}
		for i, w := range want {
			got := res.Modules[i]
			// Busybox's exit statuses for failures vary (1, 254): only
			// failure itself is asserted.
			if got.Name != w.Name || got.OK != w.OK || (!w.OK && got.Status == 0) {
				t.Errorf("module %d: %+v, want %+v", i, got, w)
			}
		}
		if m, ok := res.Module("nosuch"); !ok || m.OK {
			t.Errorf("Module(nosuch) = %+v, %v", m, ok)
		}
		if want := []int{0, 3}; len(res.Commands) != 2 || res.Commands[0] != 0 || res.Commands[1] != 3 {
			t.Errorf("commands exited %v, want %v", res.Commands, want)
		}
		if !strings.Contains(res.Console, "BOOTTEST insmod nosuch failed: ") {
			t.Errorf("no failed marker for nosuch:\n%s", res.Console)
		}
	})

	t.Run("timeout", func(t *testing.T) {
		t.Parallel()
		initrd := writeInitramfs(t, InitramfsSpec{Commands: []string{"echo waiting forever", "sleep 600"}})
		began := time.Now()
		res, err := Boot(context.Background(), BootSpec{Kernel: kernel, Initramfs: initrd, Timeout: 20 * time.Second})
		if !errors.Is(err, ErrTimeout) {
			t.Fatalf("err = %v, want ErrTimeout", err)
		}
		if took := time.Since(began); took > 40*time.Second {
			t.Errorf("Boot returned %s after starting, with a 20 s timeout", took)
		}
		lines := strings.Split(strings.TrimRight(res.Console, "\n"), "\n")
		last := lines[len(lines)-1]
		if !strings.Contains(err.Error(), "timed out after 20s") || !strings.Contains(err.Error(), last) {
			t.Errorf("error %q names neither the timeout nor the last console line %q", err, last)
		}
		if res.Done {
			t.Error("Done without the marker")
		}
		if p := qemuProcesses(t, initrd); len(p) > 0 {
			t.Errorf("qemu still running after the timeout: %q", p)
		}
	})

	t.Run("cancel", func(t *testing.T) {
		t.Parallel()
		initrd := writeInitramfs(t, InitramfsSpec{Commands: []string{"echo waiting forever", "sleep 600"}})
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		res, err := Boot(ctx, BootSpec{Kernel: kernel, Initramfs: initrd, Timeout: 3 * time.Minute,
			Console: &cancelOn{marker: "waiting forever", cancel: cancel}})
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
		if !res.Started {
			t.Errorf("cancelled before BOOTTEST start:\n%s", res.Console)
		}
		if p := qemuProcesses(t, initrd); len(p) > 0 {
			t.Errorf("qemu still running after the cancel: %q", p)
		}
	})

	t.Run("halt", func(t *testing.T) {
		t.Parallel()
		initrd := writeInitramfs(t, InitramfsSpec{})
		// Without ACPI the kernel has no power-off driver: poweroff -f
		// halts and qemu runs on, as with a kernel built without
		// CONFIG_ACPI.
		res, err := Boot(context.Background(), BootSpec{Kernel: kernel, Initramfs: initrd, Append: "acpi=off", Timeout: 3 * time.Minute})
		if !errors.Is(err, ErrNoPowerOff) {
			t.Fatalf("err = %v, want ErrNoPowerOff", err)
		}
		if !res.Done || res.PoweredOff {
			t.Errorf("Done %v, PoweredOff %v", res.Done, res.PoweredOff)
		}
		if !strings.Contains(err.Error(), "the kernel halted") {
			t.Errorf("error does not say the kernel halted: %v", err)
		}
		if p := qemuProcesses(t, initrd); len(p) > 0 {
			t.Errorf("qemu still running after the halt: %q", p)
		}
	})

	t.Run("panic", func(t *testing.T) {
		t.Parallel()
		initrd := writeInitramfs(t, InitramfsSpec{})
		// mkdir without arguments fails at once: init exits, the kernel
		// panics, and with panic=-1 and -no-reboot qemu ends.
		res, err := Boot(context.Background(), BootSpec{Kernel: kernel, Initramfs: initrd, Append: "rdinit=/bin/mkdir", Timeout: 3 * time.Minute})
		if !errors.Is(err, ErrKernelPanic) {
			t.Fatalf("err = %v, want ErrKernelPanic", err)
		}
		if !strings.Contains(res.Panic, "Attempted to kill init") || !strings.Contains(err.Error(), "Attempted to kill init") {
			t.Errorf("panic line %q, error %q", res.Panic, err)
		}
	})
}

// cancelOn cancels when the console shows marker.
type cancelOn struct {
	mu     sync.Mutex
	seen   strings.Builder
	marker string
	cancel context.CancelFunc
}

func (c *cancelOn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seen.Write(p)
	if strings.Contains(c.seen.String(), c.marker+"\r\n") {
		c.cancel()
	}
	return len(p), nil
}
