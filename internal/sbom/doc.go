// Package sbom writes the SPDX 2.3 SBOM of a kernel build and reads the
// package database of the builder image's rootfs that goes into it.
//
// # The document
//
// Kernel turns a KernelInfo into one SPDX 2.3 JSON document, which lkbuild
// attaches to the kernel image as an OCI referrer. The model follows the
// SPDX 2.3 relationship vocabulary the way the Linux kernel's own SBOM work
// uses it: the kernel is the primary package (DESCRIBES), built from
// (GENERATED_FROM) its source tarball, its patches and its config, by
// (BUILD_TOOL_OF) the builder image, whose installed packages it CONTAINS.
// The kernel CONTAINS one package per module, built-in or loadable; the
// microcode shipped in the image is a PACKAGE_OF it.
//
// Modules and patches are packages, not SPDX files: a 2.3 file must carry
// a SHA-1 checksum, which a build does not have for a patch (LinuxKit pins
// patches by SHA-256) and which a built-in module, being no file at all,
// cannot have. Package checksums may use any algorithm and are optional.
//
// The document is reproducible: the same KernelInfo gives the same bytes.
// Nothing reads the clock (creationInfo.created is the build's epoch), the
// lists are sorted, and documentNamespace ends in the SHA-256 of the rest
// of the document, so two different builds never share a namespace and
// one build always gets the same one.
//
// # The package database
//
// Packages reads the dpkg or apk database of an unpacked builder rootfs.
// The rootfs comes from an image lkbuild does not trust, so every path is
// resolved as if the rootfs were "/" (a symlink to /etc/shadow leads to
// <root>/etc/shadow, never out of the root), only regular files are read,
// and their size and line length are capped.
package sbom
