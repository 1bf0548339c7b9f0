package sandbox

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
)

// InitName is argv[0] of the re-executed lkbuild when it runs as the
// sandbox's init. main calls MaybeInit first thing to catch it.
const InitName = "lkbuild-sandbox-init"

// ExitSetupFailed is the exit code of a sandbox whose setup failed before
// the command started (as docker run uses 125).
const ExitSetupFailed = 125

// ErrUnsupported is returned on platforms without the Linux namespaces the
// sandbox needs.
var ErrUnsupported = errors.New("the sandbox is only supported on Linux")

// Mount is a bind mount from the host into the sandbox, or an overlay.
type Mount struct {
	Source   string // host path
	Target   string // absolute path inside the sandbox
	ReadOnly bool
	// Overlay, when set, mounts an overlay of host directories at Target
	// instead of binding Source (which is then unused).
	Overlay *Overlay `json:",omitempty"`
}

// Overlay is an overlayfs mount: Lower directories (topmost first) under
// an optional Upper that receives the changes. With no Upper the mount is
// read-only, and its lower directories may be shared by other sandboxes
// running at the same time. Work must be an empty directory on Upper's
// filesystem. None of the paths may hold ',' or ':'.
type Overlay struct {
	Lower       []string
	Upper, Work string
}

// ParseMount reads SRC:DST[:ro|:rw], the form of lkbuild run --bind.
func ParseMount(s string) (Mount, error) {
	parts := strings.Split(s, ":")
	var m Mount
	switch len(parts) {
	case 2:
	case 3:
		switch parts[2] {
		case "ro":
			m.ReadOnly = true
		case "rw":
		default:
			return Mount{}, fmt.Errorf("bind %q: option %q is not ro or rw", s, parts[2])
		}
	default:
		return Mount{}, fmt.Errorf("bind %q: want SRC:DST[:ro]", s)
	}
	m.Source, m.Target = parts[0], parts[1]
	if m.Source == "" || !strings.HasPrefix(m.Target, "/") {
		return Mount{}, fmt.Errorf("bind %q: source must be set and target must be absolute", s)
	}
	return m, nil
}

// Emulator runs foreign-arch binaries in the sandbox through QEMU
// user-mode, registered with binfmt_misc inside the sandbox's own user
// namespace.
type Emulator struct {
	// Name is the binfmt_misc entry name, e.g. "qemu-aarch64".
	Name string
	// Interpreter is the host path of a static qemu-user binary. With the F
	// flag it is opened at registration, before pivot_root, so it need not
	// exist inside the rootfs.
	Interpreter string
	// Magic and Mask are the ELF header bytes to match, as binfmt_misc
	// escapes (\x7fELF...).
	Magic, Mask string
	// Env is added to the command's environment (e.g. QEMU_CPU).
	Env []string
}

// Spec is one command to run in the sandbox.
type Spec struct {
	// Rootfs is the pristine root filesystem. It is never modified: it is
	// the read-only lower layer of an overlay.
	Rootfs string
	// Writable mounts Rootfs itself read-write instead of an overlay, so
	// the command changes it in place. Only for bootstrapping a rootfs
	// (debootstrap --second-stage); builds never set it.
	Writable bool
	// UpperDir, when set, receives every change the command makes to the
	// root filesystem and is kept after the run (for builder-image). By
	// default the changes go to a tmpfs of the sandbox's own and are gone
	// with it (so they take memory, as /tmp's do; where the kernel's
	// tmpfs has no user.* xattrs, a temporary dir in StateDir instead).
	UpperDir string
	// StateDir holds the per-run directories (upper, work, merged root).
	// It must be on a filesystem that supports overlay upper dirs. The
	// default is the system temporary directory.
	StateDir string
	// Args is the command and its arguments. Args[0] is looked up in the
	// sandbox's PATH (from Env) when it has no slash.
	Args []string
	// Env is the command's whole environment; nothing of the caller's
	// environment leaks in.
	Env []string
	// Dir is the working directory inside the sandbox (default "/").
	Dir string
	// Hostname is the sandbox's host name (default "lkbuild").
	Hostname string
	// Mounts are bind mounts, applied in order.
	Mounts []Mount
	// HostNetwork keeps the host's network namespace. Only for explicit
	// setup commands such as builder-image; builds never set it.
	HostNetwork bool
	// Emulator, when set, registers QEMU for a foreign architecture.
	Emulator *Emulator
	// Stdin, Stdout and Stderr are the command's streams (nil: /dev/null,
	// discarded).
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	// Terminal, when set, runs the command on a pseudo-terminal (see
	// Terminal): Stdin and Stdout are copied to and from it.
	Terminal *Terminal
	// noOverlay makes the init skip overlayfs and take the copy fallback;
	// tests use it to exercise that path.
	noOverlay bool
	// Notify receives notes about how the sandbox was set up that a user
	// may want to know (such as falling back from overlay to a copy).
	Notify func(string)
}

// SetupError is returned when the sandbox could not be set up; the command
// never ran. Where the failure came from a syscall, Err wraps its errno,
// even when the init found it in the sandbox's own process, so
// errors.Is(err, syscall.EPERM) and the like work.
type SetupError struct {
	Step string // what failed, e.g. "mount overlay"
	Err  error
}

func (e *SetupError) Error() string { return "sandbox setup: " + e.Step + ": " + e.Err.Error() }
func (e *SetupError) Unwrap() error { return e.Err }

// ErrCommandNotFound is matched (errors.Is) by the *StartError of a
// command whose program is not in the sandbox: not in its PATH, or no file
// at the path given.
var ErrCommandNotFound = errors.New("command not found in the sandbox")

// StartError is returned when the sandbox was set up but its command could
// not be started: the program is missing from the rootfs
// (errors.Is(err, ErrCommandNotFound)), is not executable, or is not of the
// sandbox's architecture. Err wraps the errno exec gave (ENOENT, EACCES,
// ENOEXEC...), so errors.Is(err, syscall.EACCES) and the like work.
type StartError struct {
	Name string // the program, Spec.Args[0]
	Err  error
}

func (e *StartError) Error() string { return "sandbox: start command: " + e.Err.Error() }
func (e *StartError) Unwrap() error { return e.Err }

// Is makes a missing program (ENOENT, which exec also gives for a missing
// ELF interpreter) match ErrCommandNotFound.
func (e *StartError) Is(target error) bool {
	return target == ErrCommandNotFound && errors.Is(e.Err, fs.ErrNotExist)
}

// ExitError reports a command that ran and exited with a non-zero status.
// A command killed by signal N is reported as 128+N, as shells do.
type ExitError struct {
	Code int
}

func (e *ExitError) Error() string { return fmt.Sprintf("command exited with status %d", e.Code) }

// MaybeInit runs the sandbox init and exits when this process was started
// as one (argv[0] is InitName). main must call it before anything else.
func MaybeInit(args []string) {
	if len(args) > 0 && args[0] == InitName {
		os.Exit(initMain())
	}
	if len(args) > 0 && args[0] == execName {
		os.Exit(execMain(args))
	}
}
