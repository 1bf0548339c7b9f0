package kernel

import (
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strings"
)

// DevPrefix is where kernel-dev.tar puts the tree: the folder that
// lib/modules/<release>/build points to, "usr/src/linux-headers-<release>/".
func DevPrefix(release string) string {
	return "usr/src/linux-headers-" + release + "/"
}

// DevFiles selects, from a built kernel source tree, the entries of
// kernel-dev.tar: enough to build out-of-tree modules against the kernel.
// It returns them in lexical order, relative to the tree, directories
// included, ready for IncludeNames and oci.WriteTar under DevPrefix.
//
// The rules are those of upstream's Dockerfile, which copies .config and
// Module.symvers and then archives what
//
//	find . -path './include/*' -prune -o \
//	       -path './arch/*/include' -prune -o \
//	       -path './scripts/*' -prune -o \
//	       -type f \( -name 'Makefile*' -o -name 'Kconfig*' -o -name 'Kbuild*' -o \
//	                  -name '*.lds' -o -name '*.pl' -o -name '*.sh' -o \
//	                  -name 'objtool' -o -name 'fixdep' -o -name 'randomize_layout_seed.h' \)
//
// prints, with tar, which takes a printed directory whole. Read as GNU
// find reads it (no -print, so a pruned path is printed too; "*" in -path
// matches "/" and in both tests a leading "."):
//
//   - every entry under include/, under scripts/, and under any folder
//     arch/<anything>/include (arch/x86/include, arch/arm/mach-foo/include),
//     of any type, hidden and generated files and empty folders included;
//   - elsewhere, regular files (not symlinks) named Makefile*, Kconfig*,
//     Kbuild*, *.lds, *.pl, *.sh, objtool, fixdep or
//     randomize_layout_seed.h, such as tools/objtool/objtool;
//   - .config and Module.symvers, which must be regular files;
//   - the folders that hold any of these, and no other folder: tar creates
//     them when it unpacks the list, and archives them with it.
//
// A missing .config or Module.symvers is an error wrapping
// fs.ErrNotExist: the build did not finish.
func DevFiles(tree fs.FS) ([]string, error) {
	set := map[string]bool{}
	// Upstream cp's these two before it looks for the rest, so a tree
	// without them fails the build.
	for _, name := range []string{".config", "Module.symvers"} {
		info, err := fs.Lstat(tree, name)
		if err != nil {
			return nil, fmt.Errorf("kernel-dev.tar needs %s: %w", name, err)
		}
		if !info.Mode().IsRegular() {
			return nil, fmt.Errorf("kernel-dev.tar needs %s: it is not a regular file (%v)", name, info.Mode().Type())
		}
		set[name] = true
	}
	err := fs.WalkDir(tree, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		switch {
		case name == ".":
			return nil
		case devWhole(name):
			return addTree(tree, name, d, set)
		case d.Type().IsRegular() && devName(path.Base(name)):
			set[name] = true
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("select kernel-dev.tar files: %w", err)
	}
	for name := range set {
		for dir := path.Dir(name); dir != "."; dir = path.Dir(dir) {
			if set[dir] {
				break // and so are its parents
			}
			set[dir] = true
		}
	}
	out := make([]string, 0, len(set))
	for name := range set {
		out = append(out, name)
	}
	slices.Sort(out)
	return out, nil
}

// addTree adds name and, for a directory, everything under it, and tells
// the walk not to descend again.
func addTree(tree fs.FS, name string, d fs.DirEntry, set map[string]bool) error {
	set[name] = true
	if !d.IsDir() {
		return nil
	}
	err := fs.WalkDir(tree, name, func(sub string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		set[sub] = true
		return nil
	})
	if err != nil {
		return err
	}
	return fs.SkipDir
}

// devWhole reports whether find prunes and prints name: './include/*',
// './scripts/*' or './arch/*/include'.
func devWhole(name string) bool {
	if strings.HasPrefix(name, "include/") || strings.HasPrefix(name, "scripts/") {
		return true
	}
	rest, ok := strings.CutPrefix(name, "arch/")
	if !ok {
		return false
	}
	mid, ok := strings.CutSuffix(rest, "/include")
	return ok && mid != ""
}

// devName reports whether a regular file's name matches one of find's
// -name patterns.
func devName(base string) bool {
	switch base {
	case "objtool", "fixdep", "randomize_layout_seed.h":
		return true
	}
	for _, p := range []string{"Makefile", "Kconfig", "Kbuild"} {
		if strings.HasPrefix(base, p) {
			return true
		}
	}
	for _, s := range []string{".lds", ".pl", ".sh"} {
		if strings.HasSuffix(base, s) {
			return true
		}
	}
	return false
}

// IncludeNames returns a filter for oci.TarOptions.Include that keeps
// exactly names (as DevFiles returns them: every directory on the way to
// a kept entry listed too) and skips every other entry and folder.
func IncludeNames(names []string) func(name string, d fs.DirEntry) bool {
	set := make(map[string]bool, len(names))
	for _, n := range names {
		set[n] = true
	}
	return func(name string, _ fs.DirEntry) bool { return set[name] }
}
