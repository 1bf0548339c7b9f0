// Package sandbox runs commands in lkbuild's rootless, hermetic sandbox.
// It knows nothing of kernels or images: a Spec names a rootfs directory,
// mounts, a command and its streams, and Run runs it.
//
// Run re-executes the current binary as the init process of new user,
// mount, pid, uts, ipc and network namespaces; main must call MaybeInit
// first thing to catch that. A Go program cannot safely unshare namespaces
// or chroot once its runtime has started threads, so all namespace setup
// happens in the re-executed child, which gets its namespaces from
// clone(2) before the Go runtime starts.
//
// Inside, the root is an overlay of a pristine rootfs (read-only lower) and
// a per-run upper directory (the caller's, or a tmpfs of the init's own
// when nothing is kept), with /proc, a minimal /dev, a tmpfs /tmp and the
// caller's bind mounts, entered with pivot_root. The network namespace
// holds only loopback. The init starts the command with fewer privileges
// than its own (exec_linux.go), reaps every process, forwards signals, and
// when the command ends, kills whatever is left. A run starts the binary
// twice: the caller, and the init.
//
// Probe tries one thing the sandbox needs (for lkbuild doctor), RemoveTree
// removes a tree whose files belong to the sandbox's subordinate ids, and
// OwnerMap maps the owners in an upper dir back to the sandbox's view.
// Everything that makes a syscall is in a _linux.go file; elsewhere Run
// returns ErrUnsupported.
package sandbox
