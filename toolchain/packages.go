package toolchain

import (
	"archive/tar"
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"slices"
	"strings"

	"github.com/lkbuild/lkbuild/kernel"
	"github.com/lkbuild/lkbuild/oci"
)

// Packages is what a builder rootfs holds of one package manager: the
// program, what is installed, and the repositories it is set up with. It
// is read from an untrusted tree without following its links out of it.
type Packages struct {
	Manager string // kernel.ManagerApk or kernel.ManagerApt
	// Program is the manager's program in the rootfs, "" when it has none.
	Program string
	// Installed are the installed packages' names.
	Installed map[string]bool
	// Local are the repositories in the rootfs itself (paths), Remote the
	// others (URLs): the sandbox has no network to reach them.
	Local, Remote []string
	// Available are the names the local repositories' indexes offer,
	// packages and what they provide.
	Available map[string]bool
}

// Limits on what ReadPackages reads of a tree.
const (
	maxSourcesFile = 1 << 20
	maxIndexFile   = 256 << 20
)

// ReadPackages reads what the rootfs at root holds of manager. arch is the
// rootfs's arch (apk keeps an index per arch).
func ReadPackages(root, manager string, arch kernel.Arch) (*Packages, error) {
	r, err := os.OpenRoot(root)
	if err != nil {
		return nil, fmt.Errorf("builder packages: %w", err)
	}
	defer r.Close()
	p := &Packages{Manager: manager, Installed: map[string]bool{}, Available: map[string]bool{}}
	switch manager {
	case kernel.ManagerApt:
		err = p.readApt(r.FS(), arch)
	case kernel.ManagerApk:
		err = p.readApk(r.FS(), arch)
	default:
		err = fmt.Errorf("unknown package manager %q", manager)
	}
	if err != nil {
		return nil, fmt.Errorf("builder packages (%s): %w", manager, err)
	}
	return p, nil
}

// Missing splits pkgs (names, maybe with a version: name=1.2) into those
// to install from the local repositories and those neither installed nor
// there.
func (p *Packages) Missing(pkgs []string) (install, unavailable []string) {
	for _, pkg := range pkgs {
		name := PackageName(pkg)
		switch {
		case p.Installed[name]:
		case p.Available[name]:
			install = append(install, pkg)
		default:
			unavailable = append(unavailable, pkg)
		}
	}
	return install, unavailable
}

// PackageName is the name in a package argument: apk's name>=1.2 or
// name@tag, apt's name=1.2, name/bookworm or name:amd64.
func PackageName(arg string) string {
	if i := strings.IndexAny(arg, "=<>~@/:"); i > 0 {
		return arg[:i]
	}
	return arg
}

// validPackageArg reports whether arg is a package argument InstallCommand
// can pass through a shell unquoted.
func validPackageArg(arg string) bool {
	if arg == "" || arg[0] == '-' {
		return false
	}
	for _, c := range arg {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("+-._=<>~@/:", c)) {
			return false
		}
	}
	return true
}

// InstallCommand is the shell command that installs pkgs from the local
// repositories with manager, with no network.
func InstallCommand(manager string, pkgs []string) (string, error) {
	for _, p := range pkgs {
		if !validPackageArg(p) {
			return "", fmt.Errorf("package %q: not a package name", p)
		}
	}
	quoted := make([]string, len(pkgs))
	for i, p := range pkgs {
		quoted[i] = "'" + p + "'"
	}
	list := strings.Join(quoted, " ")
	switch manager {
	case kernel.ManagerApk:
		return "apk add --no-network --no-progress --quiet " + list, nil
	case kernel.ManagerApt:
		// apt's download sandbox user (_apt) may not exist in a single-id
		// user namespace; the repositories are local files anyway.
		// dpkg need not fsync: the result is packed after the command.
		apt := "apt-get -q -o APT::Sandbox::User=root -o Dpkg::Use-Pty=0 -o Acquire::Languages=none -o Dpkg::Options::=--force-unsafe-io"
		// apt's partial/ directories belong to _apt, readable by it
		// alone: a rootless lkbuild outside the sandbox could not pack
		// them, and they hold nothing.
		return apt + " update && " + apt + " install -y --no-install-recommends " + list +
			" && apt-get clean && rm -rf /var/lib/apt/lists/partial /var/cache/apt/archives/partial", nil
	}
	return "", fmt.Errorf("unknown package manager %q", manager)
}

// InstallEnv is the environment of InstallCommand.
func InstallEnv(manager string) []string {
	env := []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root", "LANG=C"}
	if manager == kernel.ManagerApt {
		env = append(env, "DEBIAN_FRONTEND=noninteractive")
	}
	return env
}

// readApt reads dpkg's status, apt's sources and the Packages indexes of
// the local ones.
func (p *Packages) readApt(fsys fs.FS, arch kernel.Arch) error {
	if isRegular(fsys, "usr/bin/apt-get") {
		p.Program = "/usr/bin/apt-get"
	}
	if data, err := readFileMax(fsys, "var/lib/dpkg/status", maxIndexFile); err == nil {
		installed, err := ParseDpkgStatus(data)
		if err != nil {
			return err
		}
		for name := range installed {
			p.Installed[name] = true
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	files := []string{"etc/apt/sources.list"}
	for _, pat := range []string{"etc/apt/sources.list.d/*.list", "etc/apt/sources.list.d/*.sources"} {
		m, _ := fs.Glob(fsys, pat)
		files = append(files, m...)
	}
	var indexes []string
	for _, f := range files {
		data, err := readFileMax(fsys, f, maxSourcesFile)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		for _, s := range aptSources(f, data) {
			dir, local := strings.CutPrefix(s.uri, "file:")
			if !local {
				p.Remote = append(p.Remote, s.uri)
				continue
			}
			dir = strings.TrimPrefix(path.Clean("/"+strings.TrimPrefix(dir, "//")), "/")
			p.Local = append(p.Local, "/"+dir)
			if strings.HasSuffix(s.suite, "/") { // a flat repository
				indexes = append(indexes, path.Join(dir, s.suite, "Packages"))
				continue
			}
			for _, c := range s.components {
				indexes = append(indexes, path.Join(dir, "dists", s.suite, c, "binary-"+arch.OCI, "Packages"), path.Join(dir, "dists", s.suite, c, "binary-all", "Packages"))
			}
		}
	}
	for _, idx := range indexes {
		data, err := readIndex(fsys, idx, ".xz", ".gz", "")
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		aptIndexNames(data, p.Available)
	}
	return nil
}

type aptSource struct {
	uri, suite string
	components []string
}

// aptSources reads the deb lines of a one-line sources.list or the stanzas
// of a deb822 .sources file.
func aptSources(name string, data []byte) []aptSource {
	var out []aptSource
	if strings.HasSuffix(name, ".sources") {
		for _, stanza := range strings.Split(string(data), "\n\n") {
			f := deb822Fields(stanza)
			if !slices.Contains(strings.Fields(f["Types"]), "deb") || strings.EqualFold(f["Enabled"], "no") {
				continue
			}
			for _, uri := range strings.Fields(f["URIs"]) {
				for _, suite := range strings.Fields(f["Suites"]) {
					out = append(out, aptSource{uri: uri, suite: suite, components: strings.Fields(f["Components"])})
				}
			}
		}
		return out
	}
	for _, line := range strings.Split(string(data), "\n") {
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		w := strings.Fields(line)
		if len(w) < 3 || w[0] != "deb" {
			continue
		}
		w = w[1:]
		if strings.HasPrefix(w[0], "[") { // options: [trusted=yes arch=amd64]
			for len(w) > 0 && !strings.HasSuffix(w[0], "]") {
				w = w[1:]
			}
			if len(w) > 0 {
				w = w[1:]
			}
		}
		if len(w) < 2 {
			continue
		}
		out = append(out, aptSource{uri: w[0], suite: w[1], components: w[2:]})
	}
	return out
}

// deb822Fields reads one stanza's fields (continuation lines joined).
func deb822Fields(stanza string) map[string]string {
	f := map[string]string{}
	last := ""
	for _, line := range strings.Split(stanza, "\n") {
		if strings.HasPrefix(line, "#") {
			continue
		}
		if (strings.HasPrefix(line, " ") || strings.HasPrefix(line, "\t")) && last != "" {
			f[last] += " " + strings.TrimSpace(line)
			continue
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		last = strings.TrimSpace(k)
		f[last] = strings.TrimSpace(v)
	}
	return f
}

// aptIndexNames adds the Package and Provides names of a Packages index.
func aptIndexNames(data []byte, names map[string]bool) {
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if v, ok := strings.CutPrefix(line, "Package:"); ok {
			names[strings.TrimSpace(v)] = true
		}
		if v, ok := strings.CutPrefix(line, "Provides:"); ok {
			for _, item := range strings.Split(v, ",") {
				if f := strings.Fields(item); len(f) > 0 {
					names[f[0]] = true
				}
			}
		}
	}
}

// readApk reads apk's installed database, its repositories and the
// APKINDEX of the local ones.
func (p *Packages) readApk(fsys fs.FS, arch kernel.Arch) error {
	for _, prog := range []string{"sbin/apk", "usr/bin/apk", "bin/apk"} {
		if isRegular(fsys, prog) {
			p.Program = "/" + prog
			break
		}
	}
	if data, err := readFileMax(fsys, "lib/apk/db/installed", maxIndexFile); err == nil {
		apkIndexNames(data, p.Installed, false)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	data, err := readFileMax(fsys, "etc/apk/repositories", maxSourcesFile)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	for _, line := range strings.Split(string(data), "\n") {
		repo := strings.TrimSpace(line)
		if repo == "" || strings.HasPrefix(repo, "#") {
			continue
		}
		if strings.HasPrefix(repo, "@") { // a tagged repository: @edge URL
			if f := strings.Fields(repo); len(f) == 2 {
				repo = f[1]
			}
		}
		dir, local := strings.CutPrefix(repo, "file:")
		if !local && !strings.HasPrefix(repo, "/") {
			p.Remote = append(p.Remote, repo)
			continue
		}
		dir = strings.TrimPrefix(path.Clean("/"+strings.TrimPrefix(dir, "//")), "/")
		p.Local = append(p.Local, "/"+dir)
		idx, err := readFileMax(fsys, path.Join(dir, arch.Uname, "APKINDEX.tar.gz"), maxIndexFile)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		text, err := apkIndexText(idx)
		if err != nil {
			return fmt.Errorf("%s: %w", path.Join("/", dir, arch.Uname, "APKINDEX.tar.gz"), err)
		}
		apkIndexNames(text, p.Available, true)
	}
	return nil
}

// apkIndexText returns the APKINDEX member of an APKINDEX.tar.gz (the
// signature's gzip stream, then the index's, read as one tar).
func apkIndexText(data []byte) ([]byte, error) {
	r, closer, err := oci.Decompress(bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	defer closer()
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil, errors.New("no APKINDEX in the archive")
		}
		if err != nil {
			return nil, fmt.Errorf("read: %w", err)
		}
		if h.Name == "APKINDEX" {
			return io.ReadAll(io.LimitReader(tr, maxIndexFile))
		}
	}
}

// apkIndexNames adds the P: names of an APKINDEX or installed database,
// and with provides the names of p: lines (name=version, so:..., cmd:...).
func apkIndexNames(data []byte, names map[string]bool, provides bool) {
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "P:"); ok {
			names[v] = true
		}
		if v, ok := strings.CutPrefix(line, "p:"); ok && provides {
			for _, item := range strings.Fields(v) {
				names[PackageName(item)] = true
			}
		}
	}
}

// readIndex reads the first of name+suffix that exists, decompressed.
func readIndex(fsys fs.FS, name string, suffixes ...string) ([]byte, error) {
	for _, s := range suffixes {
		data, err := readFileMax(fsys, name+s, maxIndexFile)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if s == "" {
			return data, nil
		}
		r, closer, err := oci.Decompress(bytes.NewReader(data))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name+s, err)
		}
		out, err := io.ReadAll(io.LimitReader(r, maxIndexFile))
		closer()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name+s, err)
		}
		return out, nil
	}
	return nil, fs.ErrNotExist
}

// readFileMax reads a regular file of fsys (an os.Root's: links stay in
// the tree) of at most max bytes.
func readFileMax(fsys fs.FS, name string, max int64) ([]byte, error) {
	fi, err := fs.Stat(fsys, name)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("/%s: not a regular file", name)
	}
	if fi.Size() > max {
		return nil, fmt.Errorf("/%s: larger than %d bytes", name, max)
	}
	f, err := fsys.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, max))
}

// isRegular reports whether name is a regular file (after links in the
// tree) of fsys.
func isRegular(fsys fs.FS, name string) bool {
	fi, err := fs.Stat(fsys, name)
	return err == nil && fi.Mode().IsRegular()
}
