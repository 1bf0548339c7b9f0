package builder

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	securejoin "github.com/cyphar/filepath-securejoin"

	"github.com/lkbuild/lkbuild/sandbox"
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
// natively. It returns the programs it took and, per package it left
// emulated, why.
func (f *FastPath) NativeTools(builderRoot string) (taken, left []string, err error) {
	// Without a dpkg database on either side nothing can be compared,
	// and everything stays emulated.
	builder, err := dpkgVersions(builderRoot)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, []string{"everything (the builder has no dpkg database)"}, nil
	} else if err != nil {
		return nil, nil, fmt.Errorf("fast path: the builder's packages: %w", err)
	}
	cross, err := dpkgVersions(f.root)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, []string{"everything (the cross image has no dpkg database)"}, nil
	} else if err != nil {
		return nil, nil, fmt.Errorf("fast path: cross image %s: its packages: %w", f.image, err)
	}
	for _, p := range nativePackages() {
		bv, cv := builder[p.name], cross[p.name]
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
			target, ok := samePackagedFile(builderRoot, f.root, p.name, "/usr/bin/"+prog)
			if !ok {
				continue
			}
			src, err := securejoin.SecureJoin(f.root, target)
			if err != nil {
				return nil, nil, err
			}
			f.mounts = append(f.mounts, sandbox.Mount{Source: src, Target: target, ReadOnly: true})
			taken = append(taken, prog)
		}
	}
	f.native = taken
	return taken, left, nil
}

// samePackagedFile resolves p (following symlinks inside each tree) in
// both trees and returns the path it names when that is the same regular
// file of package pkg in both.
func samePackagedFile(builderRoot, crossRoot, pkg, p string) (string, bool) {
	resolve := func(root string) (string, bool) {
		full, err := securejoin.SecureJoin(root, p)
		if err != nil {
			return "", false
		}
		fi, err := os.Lstat(full)
		if err != nil || !fi.Mode().IsRegular() {
			return "", false
		}
		rel, err := filepath.Rel(root, full)
		if err != nil || strings.HasPrefix(rel, "..") {
			return "", false
		}
		return "/" + filepath.ToSlash(rel), true
	}
	b, ok := resolve(builderRoot)
	if !ok {
		return "", false
	}
	c, ok := resolve(crossRoot)
	if !ok || b != c || !dpkgOwns(builderRoot, pkg, b) || !dpkgOwns(crossRoot, pkg, c) {
		return "", false
	}
	return b, true
}

// dpkgVersions reads the installed packages' versions from the dpkg
// database of the tree at root.
func dpkgVersions(root string) (map[string]string, error) {
	data, err := readSmall(filepath.Join(root, "var/lib/dpkg/status"))
	if err != nil {
		return nil, err
	}
	versions := map[string]string{}
	for _, para := range bytes.Split(data, []byte("\n\n")) {
		var name, version, status string
		sc := bufio.NewScanner(bytes.NewReader(para))
		sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
		for sc.Scan() {
			k, v, ok := strings.Cut(sc.Text(), ": ")
			if !ok {
				continue
			}
			switch k {
			case "Package":
				name = v
			case "Version":
				version = v
			case "Status":
				status = v
			}
		}
		if err := sc.Err(); err != nil {
			return nil, err
		}
		if name != "" && status == "install ok installed" {
			versions[name] = version
		}
	}
	return versions, nil
}

// dpkgOwns reports whether package pkg of the tree at root lists the file
// p (or, after Debian's merged /usr, its name without /usr).
func dpkgOwns(root, pkg, p string) bool {
	lists, _ := filepath.Glob(filepath.Join(root, "var/lib/dpkg/info", pkg+":*.list"))
	lists = append(lists, filepath.Join(root, "var/lib/dpkg/info", pkg+".list"))
	want := []string{p}
	if short, ok := strings.CutPrefix(p, "/usr"); ok {
		want = append(want, short)
	}
	for _, l := range lists {
		data, err := readSmall(l)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(data), "\n") {
			if slices.Contains(want, line) {
				return true
			}
		}
	}
	return false
}

// maxDpkgFile bounds what lkbuild reads of an image's dpkg database: a
// full Debian system's status file is a few MB.
const maxDpkgFile = 64 << 20

// readSmall reads the regular file at p, refusing one over maxDpkgFile.
func readSmall(p string) ([]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() || fi.Size() > maxDpkgFile {
		return nil, fmt.Errorf("%s: not a regular file of at most %d MiB", p, maxDpkgFile>>20)
	}
	return io.ReadAll(io.LimitReader(f, maxDpkgFile))
}
