package builder

import (
	"debug/elf"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	securejoin "github.com/cyphar/filepath-securejoin"

	"github.com/lkbuild/lkbuild/sandbox"
	"github.com/lkbuild/lkbuild/toolchain"
)

// Besides the toolchain, the fast path runs make, the shell and the text
// tools of the kernel's recipes natively: under emulation each start of a
// program costs tens of milliseconds before it does anything, and a build
// starts a shell, rm and fixdep per object, and sh, sed, unifdef, grep and
// sort per header in headers_install. A program is taken from the cross
// image only when the builder holds the same program, at the same path,
// from the same Debian package at the same version: then both are built
// from the same source, and their output depends on their input alone.
// Left emulated on purpose: uname and arch, which print the machine;
// nproc; bash, whose HOSTTYPE and MACHTYPE name it; perl, whose
// configuration does; and the kernel's own host tools (fixdep, conf,
// unifdef, ...), which are target programs that kernel-dev.tar ships.

// nativePackage is a Debian package and the programs of it that the fast
// path may run natively, as names in /usr/bin.
type nativePackage struct {
	name     string
	programs []string
}

// nativePackages are the packages whose programs the kernel's Makefiles
// and scripts start most.
func nativePackages() []nativePackage {
	return []nativePackage{
		{"make", []string{"make"}},
		{"dash", []string{"dash"}},
		{"coreutils", []string{
			"basename", "cat", "chmod", "cp", "cut", "date", "dirname", "echo", "env", "expr",
			"false", "head", "ln", "ls", "mkdir", "mktemp", "mv", "od", "printf", "readlink",
			"realpath", "rm", "rmdir", "sort", "stat", "tail", "tee", "touch", "tr", "true",
			"uniq", "wc",
		}},
		{"sed", []string{"sed"}},
		{"grep", []string{"grep"}},
		{"diffutils", []string{"cmp", "diff"}},
		{"findutils", []string{"find", "xargs"}},
		{"mawk", []string{"mawk"}},
		// Image.gz on arm64 and riscv: gzip -n -9 of the whole kernel.
		{"gzip", []string{"gzip"}},
	}
}

// NativeTools binds, over the builder's own programs (the unpacked
// builder rootfs at builderRoot), the cross image's builds of the same
// packages at the same versions (nativePackages), so that they run
// natively. A program is taken only when the libraries it links are the
// same packages at the same versions on both sides too (glibc's regex is
// sed's and grep's). It returns the programs it took and, per package or
// program it left emulated, why.
func (f *FastPath) NativeTools(builderRoot string) (taken, left []string, err error) {
	// Without a dpkg database on either side nothing can be compared,
	// and everything stays emulated.
	builder, err := toolchain.OpenDpkg(builderRoot)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, []string{"everything (the builder has no dpkg database)"}, nil
	} else if err != nil {
		return nil, nil, fmt.Errorf("fast path: the builder's packages: %w", err)
	}
	cross, err := toolchain.OpenDpkg(f.root)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, []string{"everything (the cross image has no dpkg database)"}, nil
	} else if err != nil {
		return nil, nil, fmt.Errorf("fast path: cross image %s: its packages: %w", f.image, err)
	}
	for _, p := range nativePackages() {
		bv, cv := builder.Version(p.name), cross.Version(p.name)
		switch {
		case bv == "":
			left = append(left, p.name+" (not in the builder)")
			continue
		case cv == "":
			left = append(left, p.name+" (not in the cross image)")
			continue
		case bv != cv:
			left = append(left, fmt.Sprintf("%s (builder %s, cross image %s)", p.name, bv, cv))
			continue
		}
		for _, prog := range p.programs {
			target, dst, src, ok := samePackagedFile(builder, cross, builderRoot, f.root, p.name, "/usr/bin/"+prog)
			if !ok {
				continue
			}
			if why := sameLibraries(builder, cross, dst, src); why != "" {
				left = append(left, prog+" ("+why+")")
				continue
			}
			f.mounts = append(f.mounts, sandbox.Mount{Source: src, Target: target, ReadOnly: true})
			taken = append(taken, prog)
		}
	}
	f.native = taken
	return taken, left, nil
}

// sameLibraries says how the shared libraries the builder's program and
// the cross image's (host paths) link differ, or "" when each is the same
// package at the same version on both sides.
func sameLibraries(builder, cross *toolchain.Dpkg, builderProg, crossProg string) string {
	needed := func(p string) ([]string, error) {
		ef, err := elf.Open(p)
		if err != nil {
			return nil, err
		}
		defer ef.Close()
		libs, err := ef.ImportedLibraries()
		// Some arches name their dynamic loader (ld-linux-aarch64.so.1):
		// it is glibc's, like libc.so.6, which is compared.
		libs = slices.DeleteFunc(libs, func(l string) bool { return strings.HasPrefix(l, "ld-") || strings.HasPrefix(l, "ld64.") })
		slices.Sort(libs)
		return libs, err
	}
	bl, err := needed(builderProg)
	if err != nil {
		return "the builder's is not an ELF program: " + err.Error()
	}
	cl, err := needed(crossProg)
	if err != nil {
		return "the cross image's is not an ELF program: " + err.Error()
	}
	if !slices.Equal(bl, cl) {
		return fmt.Sprintf("links %s in the builder, %s in the cross image", strings.Join(bl, " "), strings.Join(cl, " "))
	}
	for _, lib := range bl {
		b, c := builder.Library(lib), cross.Library(lib)
		if b == "" || b != c {
			return fmt.Sprintf("%s: builder %s, cross image %s", lib, orNone(b), orNone(c))
		}
	}
	return ""
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// samePackagedFile resolves p (following symlinks inside each tree) in
// both trees and, when that is the same path and a regular file of
// package pkg in both, returns the path and where it is on the host in
// the builder's tree and in the cross tree.
func samePackagedFile(builder, cross *toolchain.Dpkg, builderRoot, crossRoot, pkg, p string) (target, builderFile, crossFile string, ok bool) {
	resolve := func(root string) (rel, full string, ok bool) {
		full, err := securejoin.SecureJoin(root, p)
		if err != nil {
			return "", "", false
		}
		fi, err := os.Lstat(full)
		if err != nil || !fi.Mode().IsRegular() {
			return "", "", false
		}
		r, err := filepath.Rel(root, full)
		if err != nil || strings.HasPrefix(r, "..") {
			return "", "", false
		}
		return "/" + filepath.ToSlash(r), full, true
	}
	b, builderFile, ok := resolve(builderRoot)
	if !ok {
		return "", "", "", false
	}
	c, crossFile, ok := resolve(crossRoot)
	if !ok || b != c || !builder.Owns(pkg, b) || !cross.Owns(pkg, c) {
		return "", "", "", false
	}
	return b, builderFile, crossFile, true
}
