// Package kernelsrc fetches a kernel release's source the way LinuxKit's
// kernel Dockerfile does (LINUXKIT-COMPAT.md, section 3 step 2), verifies
// it, and keeps the verified, extracted tree in lkbuild's cache:
//
//  1. get v<MAJOR>.x/sha256sums.asc from the mirror and check that a key of
//     the keyring (LinuxKit's kernel/common/keys.asc) clear-signed it (a
//     copy kept from an earlier fetch that verifies and lists the release
//     is used instead: a cached release costs no request);
//  2. get linux-<version>.tar.sign and check that a key of the keyring made
//     it (the signature itself is checked in step 4);
//  3. download linux-<version>.tar.xz into the cache while hashing it,
//     resuming with HTTP Range requests when a transfer breaks, and check
//     its SHA-256 against its line in sha256sums.asc;
//  4. decompress it once (in parallel when the .xz has several blocks, see
//     kernel.XZReader) and tee the plain tar into the detached-signature
//     check and into oci.ExtractLayer, which writes the tree into a
//     temporary directory;
//  5. only when the signature over the whole .tar verifies, rename that
//     directory into the cache, where later calls find it at once.
//
// Nothing is held in memory whole: the tarball streams to disk, the tar
// streams through the decoder's bounded window.
//
// # Why two packages
//
// Package kernel does the verifying from io.Readers (URL scheme,
// sha256sums parsing, OpenPGP checks, the parallel xz decoder) and stays
// pure: no network, no system calls, no programs. This package does the
// I/O around it: HTTP and local mirrors, the cache on disk, temporary
// files, atomic renames and flock(2) locks between concurrent lkbuild
// processes. It also uses package oci's safe extractor.
//
// # The cache
//
// Under Options.Dir:
//
//	sha256/<hex>          tarballs whose SHA-256 matched a signed sums line
//	trees/<hex>/<top>/    extracted trees whose .tar signature verified
//	sums/v<MAJOR>.x-sha256sums.asc  the last verified sha256sums.asc
//	signatures/<hex>.tar.sign       the .tar.sign the tree was checked with
//	tmp/                  downloads and extractions in progress
//	locks/<hex>.lock      flock(2) files, one per tarball
//
// where <hex> is the tarball's SHA-256 and <top> the tar's top directory
// (linux-<version>/ for kernel.org). Anything in sha256/ and trees/ is
// complete and verified: it got there by rename(2) after the checks. A
// failure removes what it wrote to tmp/; what a killed process left there
// is removed by the next one that takes the same lock. Trees are shared
// read-only: callers must not change them (mount them read-only or put an
// overlay on top), since a later call returns the same directory without
// checking it again. Files are not fsynced one by one; the tarball is,
// before its rename.
package kernelsrc
