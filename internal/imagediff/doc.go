// Package imagediff says how two OCI images differ, down to the members of
// tars held inside their layers. It serves `lkbuild verify`, which rebuilds
// an image and, when the digests differ, must show the user the first
// files that differ: a kernel image's layer holds kernel.tar,
// kernel-dev.tar and the source tarball, so the interesting difference is
// usually two tars deep.
//
// Compare returns a Report: the manifest and config fields that differ,
// compared as parsed JSON key by key, and for each layer that differs the
// tar members that differ, as a flat list. A member that differs and is
// itself a tar (by its name: .tar, .tar.gz, .tgz, .tar.xz, .tar.zst) is
// opened on both sides and its differing members follow it in the list,
// their paths joined to its own with "/", e.g.
// "kernel.tar/lib/modules/6.12.117-linuxkit/kernel/fs/foo.ko".
//
// Layers and nested tars are streamed, never held in memory or written to
// disk: a first pass hashes every member, and the rare passes that need a
// member's bytes (a text diff, a nested tar) read the layer again from the
// start. Memory therefore depends on the number of members, not on their
// sizes, but a layer may be read several times: give Compare images whose
// layers are cheap to re-read (a local store rather than a registry).
//
// The package writes no files. Member names are taken from tar headers as
// they are and only ever reported, so a hostile name ("../../etc/passwd",
// "/etc/passwd") shows up verbatim in a Path and nowhere else.
//
// The package prints nothing; the caller decides what to show. Every
// exported type has JSON tags, so a Report can be printed as it is.
package imagediff
