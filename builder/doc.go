// Package builder runs commands in lkbuild's rootless, hermetic sandbox and
// (later) ties the kernel build pipeline together.
//
// The sandbox re-executes the lkbuild binary itself as the init process of
// new user, mount, pid, uts, ipc and network namespaces (see Run and
// MaybeInit). A Go program cannot safely unshare namespaces or chroot once
// its runtime has started threads, so all namespace setup happens in the
// re-executed child, which gets its namespaces from clone(2) before the Go
// runtime starts.
//
// Inside, the root is an overlay of a pristine rootfs (read-only lower) and
// a per-run upper directory, with /proc, a minimal /dev, a tmpfs /tmp and
// the caller's bind mounts, entered with pivot_root. The network namespace
// holds only loopback. The init reaps every process, forwards signals, and
// when the command ends, kills whatever is left.
package builder
