package toolchain

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// Dpkg is what lkbuild reads of the dpkg database of an unpacked rootfs:
// which packages are installed at which versions, which files they list,
// and which package ships a shared library.
type Dpkg struct {
	root string
	// versions are the installed packages' versions by name.
	versions map[string]string
	// libs maps a shared library's file name to "package version", for
	// the files the packages list in the loader's directories; built on
	// first use.
	libs map[string]string
	// files are the files each package lists, read on first use.
	files map[string]map[string]bool
}

// OpenDpkg reads the dpkg database of the tree at root. A tree without
// one gives an error that wraps fs.ErrNotExist.
func OpenDpkg(root string) (*Dpkg, error) {
	data, err := readSmall(filepath.Join(root, "var/lib/dpkg/status"))
	if err != nil {
		return nil, fmt.Errorf("dpkg database: %w", err)
	}
	versions, err := ParseDpkgStatus(data)
	if err != nil {
		return nil, fmt.Errorf("dpkg database: %w", err)
	}
	return &Dpkg{root: root, versions: versions}, nil
}

// ParseDpkgStatus maps each installed package of a dpkg status file to
// its version.
func ParseDpkgStatus(data []byte) (map[string]string, error) {
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
			return nil, fmt.Errorf("status file: %w", err)
		}
		if name != "" && status == "install ok installed" {
			versions[name] = version
		}
	}
	return versions, nil
}

// Version is the installed version of package pkg, or "".
func (d *Dpkg) Version(pkg string) string { return d.versions[pkg] }

// Owns reports whether package pkg lists the file p (or, after Debian's
// merged /usr, its name without /usr).
func (d *Dpkg) Owns(pkg, p string) bool {
	files, ok := d.files[pkg]
	if !ok {
		files = map[string]bool{}
		lists, _ := filepath.Glob(filepath.Join(d.root, "var/lib/dpkg/info", pkg+":*.list"))
		lists = append(lists, filepath.Join(d.root, "var/lib/dpkg/info", pkg+".list"))
		for _, l := range lists {
			data, err := readSmall(l)
			if err != nil {
				continue
			}
			for _, line := range strings.Split(string(data), "\n") {
				if line != "" {
					files[line] = true
				}
			}
		}
		if d.files == nil {
			d.files = map[string]map[string]bool{}
		}
		d.files[pkg] = files
	}
	short, merged := strings.CutPrefix(p, "/usr")
	return files[p] || merged && files[short]
}

// Library is "package version" of the package that ships the shared
// library named soname in one of the loader's directories, or "".
func (d *Dpkg) Library(soname string) string {
	if d.libs == nil {
		d.libs = map[string]string{}
		lists, _ := filepath.Glob(filepath.Join(d.root, "var/lib/dpkg/info", "*.list"))
		for _, l := range lists {
			pkg, _, _ := strings.Cut(strings.TrimSuffix(filepath.Base(l), ".list"), ":")
			version, ok := d.versions[pkg]
			if !ok {
				continue
			}
			data, err := readSmall(l)
			if err != nil {
				continue
			}
			for _, line := range strings.Split(string(data), "\n") {
				if libDir(path.Dir(line)) && strings.Contains(path.Base(line), ".so") {
					d.libs[path.Base(line)] = pkg + " " + version
				}
			}
		}
	}
	return d.libs[soname]
}

// libDir reports whether dir is one the dynamic loader searches: /lib,
// /lib64 or a multiarch /lib/<triplet>, with or without /usr. A cross
// toolchain's /usr/<triplet>/lib is not: the target's libc there is not
// the tree's own.
func libDir(dir string) bool {
	dir = strings.TrimPrefix(dir, "/usr")
	if dir == "/lib" || dir == "/lib64" {
		return true
	}
	sub, ok := strings.CutPrefix(dir, "/lib/")
	return ok && sub != "" && !strings.Contains(sub, "/")
}

// maxDpkgFile bounds what lkbuild reads of a file of an image's dpkg
// database: a full Debian system's status file is a few MB.
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
