package kernel

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/lkbuild/lkbuild/internal/testenv"
	"github.com/lkbuild/lkbuild/oci"
)

// builtTree is a kernel source tree after a build, cut down to a few files
// of every kind that the kernel-dev.tar rules tell apart.
func builtTree() fstest.MapFS {
	file := &fstest.MapFile{Data: []byte("x\n")}
	exe := &fstest.MapFile{Data: []byte("\x7fELF"), Mode: 0o755}
	dir := &fstest.MapFile{Mode: fs.ModeDir | 0o755}
	link := func(target string) *fstest.MapFile {
		return &fstest.MapFile{Data: []byte(target), Mode: fs.ModeSymlink | 0o777}
	}
	return fstest.MapFS{
		".config":                       file,
		"Module.symvers":                file,
		"Makefile":                      file,
		"Kconfig":                       file,
		"vmlinux":                       exe,
		"System.map":                    file,
		".version":                      file,
		"COPYING":                       file,
		"Documentation/a.rst":           file,
		"Documentation/Makefile.sphinx": file,
		"Documentation/empty":           dir,

		// include/: everything, hidden, generated and empty included.
		"include/linux/module.h":       file,
		"include/generated/autoconf.h": file,
		"include/config/auto.conf":     file,
		"include/config/.hidden":       file,
		"include/empty":                dir,
		"include/linux/link.h":         link("module.h"),

		// arch/*/include, the * spanning folders; nothing else of arch/.
		"arch/x86/include/asm/io.h":             file,
		"arch/x86/include/generated/asm/foo.h":  file,
		"arch/x86/Makefile":                     file,
		"arch/x86/Makefile_32.cpu":              file,
		"arch/x86/Kconfig.debug":                file,
		"arch/x86/kernel/vmlinux.lds":           file,
		"arch/x86/kernel/vmlinux.lds.S":         file,
		"arch/x86/kernel/setup.c":               file,
		"arch/x86/kernel/setup.o":               file,
		"arch/x86/boot/bzImage":                 file,
		"arch/x86/tools/relocs":                 exe,
		"arch/x86/entry/syscalls/syscallhdr.sh": exe,
		"arch/x86/um/include":                   file, // a file named include is taken too
		"arch/arm/mach-foo/include/mach/irq.h":  file,
		"arch/include/nothing.h":                file, // arch/include is not arch/*/include

		// scripts/: everything.
		"scripts/basic/fixdep":                        exe,
		"scripts/basic/.fixdep.cmd":                   file,
		"scripts/mod/modpost":                         exe,
		"scripts/mod/modpost.c":                       file,
		"scripts/Makefile.build":                      file,
		"scripts/gcc-plugins/randomize_layout_seed.h": file,
		"scripts/dtc/empty":                           dir,

		// Elsewhere: only the named files, regular ones.
		"tools/objtool/objtool":            exe,
		"tools/objtool/objtool.c":          file,
		"tools/objtool/fixdep":             exe,
		"tools/objtool/Build":              file,
		"tools/build/Makefile.feature":     file,
		"drivers/net/Kconfig":              file,
		"drivers/net/Kbuild":               file,
		"drivers/net/e1000.c":              file,
		"drivers/net/.tmp.sh":              file, // * matches a leading dot
		"drivers/net/gen.pl":               file,
		"drivers/net/Makefile.link":        link("Makefile"), // -type f: not a symlink
		"drivers/net/Kconfig.d/readme":     file,             // a folder named Kconfig*: walked, not taken
		"security/randomize_layout_seed.h": file,
		"usr/.lds":                         file, // *.lds matches the bare suffix too
		"samples/plain/empty":              dir,
	}
}

func TestDevFiles(t *testing.T) {
	got, err := DevFiles(builtTree())
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		".config",
		"Documentation",
		"Documentation/Makefile.sphinx",
		"Kconfig",
		"Makefile",
		"Module.symvers",
		"arch",
		"arch/arm",
		"arch/arm/mach-foo",
		"arch/arm/mach-foo/include",
		"arch/arm/mach-foo/include/mach",
		"arch/arm/mach-foo/include/mach/irq.h",
		"arch/x86",
		"arch/x86/Kconfig.debug",
		"arch/x86/Makefile",
		"arch/x86/Makefile_32.cpu",
		"arch/x86/entry",
		"arch/x86/entry/syscalls",
		"arch/x86/entry/syscalls/syscallhdr.sh",
		"arch/x86/include",
		"arch/x86/include/asm",
		"arch/x86/include/asm/io.h",
		"arch/x86/include/generated",
		"arch/x86/include/generated/asm",
		"arch/x86/include/generated/asm/foo.h",
		"arch/x86/kernel",
		"arch/x86/kernel/vmlinux.lds",
		"arch/x86/um",
		"arch/x86/um/include",
		"drivers",
		"drivers/net",
		"drivers/net/.tmp.sh",
		"drivers/net/Kbuild",
		"drivers/net/Kconfig",
		"drivers/net/gen.pl",
		"include",
		"include/config",
		"include/config/.hidden",
		"include/config/auto.conf",
		"include/empty",
		"include/generated",
		"include/generated/autoconf.h",
		"include/linux",
		"include/linux/link.h",
		"include/linux/module.h",
		"scripts",
		"scripts/Makefile.build",
		"scripts/basic",
		"scripts/basic/.fixdep.cmd",
		"scripts/basic/fixdep",
		"scripts/dtc",
		"scripts/dtc/empty",
		"scripts/gcc-plugins",
		"scripts/gcc-plugins/randomize_layout_seed.h",
		"scripts/mod",
		"scripts/mod/modpost",
		"scripts/mod/modpost.c",
		"security",
		"security/randomize_layout_seed.h",
		"tools",
		"tools/build",
		"tools/build/Makefile.feature",
		"tools/objtool",
		"tools/objtool/fixdep",
		"tools/objtool/objtool",
		"usr",
		"usr/.lds",
	}
	if !slices.Equal(got, want) {
		for _, g := range got {
			if !slices.Contains(want, g) {
				t.Errorf("selected %s", g)
			}
		}
		for _, w := range want {
			if !slices.Contains(got, w) {
				t.Errorf("did not select %s", w)
			}
		}
	}
}

func TestDevFilesNeedsConfigAndSymvers(t *testing.T) {
	for _, name := range []string{".config", "Module.symvers"} {
		t.Run(name, func(t *testing.T) {
			tree := builtTree()
			delete(tree, name)
			_, err := DevFiles(tree)
			if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), name) {
				t.Errorf("err = %v, want one that names %s and wraps fs.ErrNotExist", err, name)
			}
		})
	}
	tree := builtTree()
	tree["Module.symvers"] = &fstest.MapFile{Mode: fs.ModeDir | 0o755}
	if _, err := DevFiles(tree); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("Module.symvers as a folder: err = %v", err)
	}
}

func TestDevPatterns(t *testing.T) {
	for name, want := range map[string]bool{
		"include/x":            true,
		"include":              false,
		"includes/x":           false,
		"scripts/x":            true,
		"scripts":              false,
		"arch/x86/include":     true,
		"arch/a/b/include":     true,
		"arch/include":         false,
		"arch/x86/include2":    false,
		"arch/x86/includes":    false,
		"tools/arch/x/include": false,
	} {
		if got := devWhole(name); got != want {
			t.Errorf("devWhole(%q) = %v, want %v", name, got, want)
		}
	}
	for name, want := range map[string]bool{
		"Makefile": true, "Makefile.lib": true, "makefile": false,
		"Kconfig": true, "Kconfig.debug": true, "Kbuild": true, "Kbuild.include": true,
		"x.lds": true, ".lds": true, "x.lds.S": false, "x.pl": true, "x.sh": true, "x.shx": false,
		"objtool": true, "objtool.o": false, "fixdep": true, "fixdep.c": false,
		"randomize_layout_seed.h": true, "Build": false,
	} {
		if got := devName(name); got != want {
			t.Errorf("devName(%q) = %v, want %v", name, got, want)
		}
	}
}

// TestDevTar writes kernel-dev.tar with oci.WriteTar as the runner does
// and checks its names: the selection, under the headers folder, and no
// other folder.
func TestDevTar(t *testing.T) {
	tree := builtTree()
	names, err := DevFiles(tree)
	if err != nil {
		t.Fatal(err)
	}
	prefix := DevPrefix("6.6.71-linuxkit")
	if prefix != "usr/src/linux-headers-6.6.71-linuxkit/" {
		t.Errorf("prefix = %q", prefix)
	}
	var buf bytes.Buffer
	err = oci.WriteTar(&buf, tree, oci.TarOptions{Epoch: time.Unix(1700000000, 0), Prefix: prefix, Include: IncludeNames(names)})
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(&buf)
	var got []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, h.Name)
		if h.Name == prefix+"include/linux/link.h" && (h.Typeflag != tar.TypeSymlink || h.Linkname != "module.h") {
			t.Errorf("include/linux/link.h: type %c -> %q, want the symlink kept", h.Typeflag, h.Linkname)
		}
	}
	want := []string{"usr/", "usr/src/", prefix}
	for _, n := range names {
		info, err := fs.Lstat(tree, n)
		if err != nil {
			t.Fatal(err)
		}
		if info.IsDir() {
			n += "/"
		}
		want = append(want, prefix+n)
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("tar names:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestDevFilesMatchesUpstream writes the synthetic tree to disk, runs
// upstream's own cp, find and tar commands on it and compares what they
// copy with DevFiles.
func TestDevFilesMatchesUpstream(t *testing.T) {
	sh, err := exec.LookPath("sh")
	testenv.Need(t, err == nil, "sh is not in PATH")
	for _, tool := range []string{"find", "tar"} {
		out, err := exec.Command(tool, "--version").Output()
		testenv.Need(t, err == nil && bytes.Contains(out, []byte("GNU")), "GNU "+tool+" is not in PATH")
	}
	tree := builtTree()
	root := filepath.Join(t.TempDir(), "linux")
	if err := os.CopyFS(root, tree); err != nil {
		t.Fatal(err)
	}
	dest := filepath.Join(t.TempDir(), "dev")
	// The RUN line of upstream's kernel/common/Dockerfile, with $dir given.
	script := `set -e
mkdir -p "$dir"
cp .config "$dir"
cp Module.symvers "$dir"
find . -path './include/*' -prune -o \
       -path './arch/*/include' -prune -o \
       -path './scripts/*' -prune -o \
       -type f \( -name 'Makefile*' -o -name 'Kconfig*' -o -name 'Kbuild*' -o \
                  -name '*.lds' -o -name '*.pl' -o -name '*.sh' -o \
                  -name 'objtool' -o -name 'fixdep' -o -name 'randomize_layout_seed.h' \) | \
     tar cf - -T - | (cd "$dir"; tar xf -)
`
	cmd := exec.Command(sh, "-c", script)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "dir="+dest, "LC_ALL=C")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("upstream commands: %v\n%s", err, out)
	}
	var upstream []string
	err = filepath.WalkDir(dest, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if rel, _ := filepath.Rel(dest, p); rel != "." {
			upstream = append(upstream, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	got, err := DevFiles(os.DirFS(root))
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(upstream)
	if !slices.Equal(got, upstream) {
		t.Errorf("DevFiles:\n%s\nupstream's commands:\n%s", strings.Join(got, "\n"), strings.Join(upstream, "\n"))
	}
}
