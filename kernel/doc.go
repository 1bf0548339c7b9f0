// Package kernel models a LinuxKit kernel directory and computes what
// LinuxKit's kernel/Makefile computes from it: the list of kernels, the
// series hash and the image tags.
//
// A kernel directory comes in one of two layouts (see Layout). The current
// one has a folder per series:
//
//	kernel/
//	  Makefile, common/           # shared by every series; part of the hash
//	  6.6.x/build-args            # KERNEL_VERSION=6.6.71 ...
//	  6.6.x/config-x86_64         # one final .config per arch (uname -m names)
//	  6.6.x/patches/0001-*.patch  # optional, applied in name order
//	  6.6.x/deprecated            # optional marker: not built by default
//	  5.11.x-rt/                  # a variant: its patches, then 5.11.x's
//
// The older, flat one keeps config-<series>-<arch> files and
// patches-<series>/ folders side by side and the versions in the Makefile.
//
// The package is pure: it reads an fs.FS and io.Readers, never runs a
// program, makes no system call of its own and opens no connection. What it
// needs from git (ls-tree output, whether the tree is dirty) comes through
// the Revision interface, which internal/kernelgit implements with go-git.
// A test (depcheck_test.go) keeps os/exec, net/http and x/sys/unix out of
// its imports.
package kernel
