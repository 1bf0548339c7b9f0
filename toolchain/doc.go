// Package toolchain owns the build environment for one architecture: the
// builder image resolved to a digest and unpacked into a cached rootfs,
// foreign-arch emulation with QEMU user-mode, the default parallelism, and
// the host checks behind lkbuild doctor. It knows nothing about kernels.
package toolchain
