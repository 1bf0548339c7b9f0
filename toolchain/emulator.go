package toolchain

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/lkbuild/lkbuild/kernel"
)

// ErrNoEmulator is returned when a foreign architecture cannot be run:
// no qemu-user binary, or no way to register it.
var ErrNoEmulator = errors.New("no emulator for foreign architecture")

// Emulation says how the sandbox runs a foreign architecture's binaries.
type Emulation struct {
	// Register is true when the sandbox must register the interpreter with
	// binfmt_misc in its own user namespace (Linux 6.7+). When false, a
	// host-wide registration with the F flag already covers it.
	Register bool
	// Name is the binfmt_misc entry name (qemu-aarch64).
	Name string
	// Interpreter is the host path of the static qemu-user binary.
	Interpreter string
	// Magic and Mask select the architecture's ELF binaries.
	Magic, Mask string
	// Env is added to every command (QEMU_CPU where it helps).
	Env []string
}

// EmulatorHost is what FindEmulator needs to know about the host.
type EmulatorHost struct {
	// LookPath finds a program on PATH (exec.LookPath).
	LookPath func(string) (string, error)
	// KernelRelease is uname -r.
	KernelRelease string
	// ReadFile reads host files (for /proc/sys/fs/binfmt_misc entries).
	ReadFile ReadFileFunc
	// Dirs are searched for qemu binaries before PATH: the bin
	// directories of an unpacked image that carries static qemu-user
	// binaries (see QEMUImageDirs).
	Dirs []string
	// Stat checks a candidate in Dirs (os.Stat).
	Stat func(string) (fs.FileInfo, error)
}

// QEMUImageDirs are the directories of an unpacked image where static
// qemu-user binaries live.
func QEMUImageDirs(root string) []string {
	return []string{
		filepath.Join(root, "usr/bin"), filepath.Join(root, "usr/local/bin"),
		filepath.Join(root, "bin"), root,
	}
}

// FindEmulator decides how to run arch a's binaries: find
// qemu-<arch>-static (or qemu-<arch>) on PATH and register it in the
// sandbox's user namespace where the kernel allows (6.7+); otherwise rely
// on an existing host registration with the F flag; otherwise fail with
// what to install or change.
func FindEmulator(a kernel.Arch, h EmulatorHost) (Emulation, error) {
	magic, mask, cpu := binfmt(a)
	if magic == "" {
		return Emulation{}, fmt.Errorf("%w: no binfmt_misc pattern for %s", ErrNoEmulator, a.Uname)
	}
	e := Emulation{Name: QEMUName(a), Magic: magic, Mask: mask}
	if cpu != "" {
		e.Env = append(e.Env, "QEMU_CPU="+cpu)
	}
	if kernelAtLeast(h.KernelRelease, 6, 7) {
		for _, name := range []string{QEMUName(a) + "-static", QEMUName(a)} {
			for _, dir := range h.Dirs {
				p := filepath.Join(dir, name)
				if fi, err := h.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
					e.Interpreter, e.Register = p, true
					return e, nil
				}
			}
		}
		for _, name := range []string{QEMUName(a) + "-static", QEMUName(a)} {
			if p, err := h.LookPath(name); err == nil {
				e.Interpreter, e.Register = p, true
				return e, nil
			}
		}
	}
	if entry, err := h.ReadFile("/proc/sys/fs/binfmt_misc/" + e.Name); err == nil {
		interp, flags, enabled := parseBinfmtEntry(string(entry))
		if enabled && strings.Contains(flags, "F") {
			e.Interpreter = interp
			return e, nil
		}
		if enabled {
			return Emulation{}, fmt.Errorf("%w: the host's binfmt_misc entry %s lacks the F flag, so %s is not reachable inside the sandbox: re-register it with flags F (e.g. update-binfmts or systemd-binfmt with qemu-user-static)", ErrNoEmulator, e.Name, interp)
		}
	}
	if !kernelAtLeast(h.KernelRelease, 6, 7) {
		return Emulation{}, fmt.Errorf("%w: %s binaries need QEMU: kernel %s cannot register it per user namespace (needs 6.7+) and the host has no %s binfmt_misc entry; install qemu-user-static with binfmt support (Debian: apt-get install qemu-user-static binfmt-support)", ErrNoEmulator, a.Uname, h.KernelRelease, e.Name)
	}
	return Emulation{}, fmt.Errorf("%w: %s binaries need %s-static on PATH; install it (Debian: apt-get install qemu-user-static; lkbuild doctor checks it)", ErrNoEmulator, a.Uname, QEMUName(a))
}

// parseBinfmtEntry reads /proc/sys/fs/binfmt_misc/<name>.
func parseBinfmtEntry(s string) (interpreter, flags string, enabled bool) {
	for _, line := range strings.Split(s, "\n") {
		switch {
		case line == "enabled":
			enabled = true
		case strings.HasPrefix(line, "interpreter "):
			interpreter = strings.TrimPrefix(line, "interpreter ")
		case strings.HasPrefix(line, "flags: "):
			flags = strings.TrimPrefix(line, "flags: ")
		}
	}
	return interpreter, flags, enabled
}

// kernelAtLeast compares a uname -r string such as "6.18.44-fc-v769".
func kernelAtLeast(release string, major, minor int) bool {
	parts := strings.SplitN(release, ".", 3)
	if len(parts) < 2 {
		return false
	}
	maj, err1 := strconv.Atoi(parts[0])
	digits := parts[1]
	if i := strings.IndexFunc(digits, func(r rune) bool { return r < '0' || r > '9' }); i >= 0 {
		digits = digits[:i] // "7-rc1" -> "7"
	}
	mnr, err2 := strconv.Atoi(digits)
	if err1 != nil || err2 != nil {
		return false
	}
	return maj > major || (maj == major && mnr >= minor)
}
