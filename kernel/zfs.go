package kernel

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"strconv"
	"strings"
)

// ToolZFS is the ZFS modules image (LinuxKit's make push_zfs_<series>):
// every module of the kernel plus OpenZFS's spl and zfs built against it,
// with depmod run over them, as /lib/modules. Its image name is fixed,
// zfs-kmod (upstream's IMAGE_ZFS), whatever the kernel image's name.
const ToolZFS = "zfs-kmod"

// ZFSImage is the image name of the ZFS modules image.
const ZFSImage = "zfs-kmod"

// ZFSDockerfile is the Dockerfile that names the OpenZFS release to
// build (upstream's `ENV VERSION=0.8.1`), relative to the kernel
// directory: common/Dockerfile.zfs (Dockerfile.zfs in the flat layout).
func (d *Dir) ZFSDockerfile() string {
	if d.Layout == LayoutFlat {
		return "Dockerfile.zfs"
	}
	return "common/Dockerfile.zfs"
}

// DefaultZFSMirror is where OpenZFS publishes its release tarballs and
// their signatures: <mirror>/zfs-<version>/zfs-<version>.tar.gz(.asc).
const DefaultZFSMirror = "https://github.com/openzfs/zfs/releases/download"

// ZFS is the OpenZFS source a ZFS modules plan builds.
type ZFS struct {
	// Version is the OpenZFS release, "2.3.2".
	Version string
	// Dir is where the runner puts the verified source tree in the
	// sandbox (writable: configure and make write into it), "/zfs".
	Dir string
}

// ZFSPaths are the release files of OpenZFS version v, relative to a
// mirror: the tarball and its detached, armored signature (over the
// .tar.gz itself).
func ZFSPaths(v string) (tarball, signature string) {
	tarball = "zfs-" + v + "/zfs-" + v + ".tar.gz"
	return tarball, tarball + ".asc"
}

// ZFSFiles are ZFSPaths under mirror.
func ZFSFiles(mirror, v string) (tarball, signature string) {
	tarball, signature = ZFSPaths(v)
	base := strings.TrimSuffix(mirror, "/") + "/"
	return base + tarball, base + signature
}

// ZFSVersion is the OpenZFS release d builds: the VERSION its ZFS
// Dockerfile sets (ENV VERSION=2.3.2, as upstream's does).
func (d *Dir) ZFSVersion() (string, error) {
	name := d.ZFSDockerfile()
	f, err := d.FS.Open(name)
	if errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("%s is missing: it names the OpenZFS release to build (ENV VERSION=2.3.2), or give the version (--zfs-version)", d.file(name))
	}
	if err != nil {
		return "", err
	}
	defer f.Close()
	insts, err := dockerInstructions(io.LimitReader(f, 1<<20))
	if err != nil {
		return "", fmt.Errorf("%s: %w", d.file(name), err)
	}
	for _, in := range insts {
		if in.cmd != "ENV" {
			continue
		}
		key, value, ok := strings.Cut(strings.TrimSpace(in.args), "=")
		if !ok {
			key, value, _ = strings.Cut(strings.TrimSpace(in.args), " ")
		}
		if key == "VERSION" {
			v := strings.Trim(strings.TrimSpace(value), `"`)
			if err := CheckZFSVersion(v); err != nil {
				return "", fmt.Errorf("%s: %w", d.file(name), err)
			}
			return v, nil
		}
	}
	return "", fmt.Errorf("%s sets no VERSION (want ENV VERSION=2.3.2, the OpenZFS release)", d.file(name))
}

// CheckZFSVersion checks an OpenZFS release number: "2.3.2", "2.4.0-rc1".
func CheckZFSVersion(v string) error {
	num, rc, _ := strings.Cut(v, "-")
	parts := strings.Split(num, ".")
	ok := len(parts) == 3 && (rc == "" || strings.HasPrefix(rc, "rc") && isDigits(rc[2:]))
	for _, p := range parts {
		ok = ok && isDigits(p)
	}
	if !ok {
		return fmt.Errorf("OpenZFS version %q: want a release like 2.3.2 or 2.4.0-rc1", v)
	}
	return nil
}

// ZFSMeta is what an OpenZFS source tree's META file says of it.
type ZFSMeta struct {
	Version string
	// LinuxMinimum and LinuxMaximum bound the kernels it supports
	// ("4.18", "6.14": a series, any patch release of it).
	LinuxMinimum, LinuxMaximum string
}

// ParseZFSMeta reads an OpenZFS META file: "Key: value" lines.
func ParseZFSMeta(data []byte) (ZFSMeta, error) {
	var m ZFSMeta
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		key, value, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		value = strings.TrimSpace(value)
		switch strings.TrimSpace(key) {
		case "Version":
			m.Version = value
		case "Linux-Minimum":
			m.LinuxMinimum = value
		case "Linux-Maximum":
			m.LinuxMaximum = value
		}
	}
	if m.Version == "" || m.LinuxMinimum == "" || m.LinuxMaximum == "" {
		return m, errors.New("META lacks Version, Linux-Minimum or Linux-Maximum: not an OpenZFS source tree")
	}
	return m, nil
}

// Supports says whether the OpenZFS release supports kernel v, as its
// configure would decide: an error naming both when it does not.
func (m ZFSMeta) Supports(v Version) error {
	lo, err1 := parseSeries(m.LinuxMinimum)
	hi, err2 := parseSeries(m.LinuxMaximum)
	if err1 != nil || err2 != nil {
		return fmt.Errorf("OpenZFS %s: META's kernel range %s to %s is not two versions like 4.18", m.Version, m.LinuxMinimum, m.LinuxMaximum)
	}
	if k := (Version{Major: v.Major, Minor: v.Minor}); k.Compare(lo) < 0 || k.Compare(hi) > 0 {
		return fmt.Errorf("OpenZFS %s supports kernels %s to %s, not %s: build a release that supports it (VERSION in the ZFS Dockerfile, or --zfs-version)",
			m.Version, m.LinuxMinimum, m.LinuxMaximum, v)
	}
	return nil
}

// parseSeries reads "6.14" as version 6.14.0.
func parseSeries(s string) (Version, error) {
	a, b, ok := strings.Cut(s, ".")
	major, err1 := strconv.Atoi(a)
	minor, err2 := strconv.Atoi(b)
	if !ok || err1 != nil || err2 != nil {
		return Version{}, fmt.Errorf("%q is not MAJOR.MINOR", s)
	}
	return Version{Major: major, Minor: minor}, nil
}

// ZFSModules is the tree the ZFS modules image holds, relative to its
// root and to Paths.Out.
const ZFSModules = "lib/modules"

// depmodScript runs depmod over the modules root $1 for release $3 with
// the kernel's System.map $2, and fails when a module needs a symbol the
// kernel does not export (depmod only warns).
const depmodScript = `out=$(depmod -b "$1" -e -F "$2" -a "$3" 2>&1) || { printf '%s\n' "$out" >&2; exit 1; }
[ -z "$out" ] || printf '%s\n' "$out" >&2
case $out in *"unknown symbol"*)
	echo "a module needs a symbol this kernel does not export: the kernel's config lacks something the module uses" >&2
	exit 1 ;;
esac`

// planZFS sets Steps and Outputs for the ZFS modules image: the kernel's
// own steps up to its modules_install (the same tree a kernel build
// makes, so a kept object tree serves both), then OpenZFS's configure for
// the kernel alone, its modules built against the kernel's tree and
// installed beside the kernel's, depmod over them all, and lib/modules
// copied out. There is no microcode, kernel, kernel-dev.tar or source
// archive: upstream's image holds /lib/modules only.
func (p *Plan) planZFS(d *Dir) {
	b := &planner{p: p}
	src, zfs := p.Paths.Source, p.ZFS.Dir
	modules := path.Join(p.Paths.Work, modulesDir)
	jobs := "-j" + strconv.Itoa(p.Jobs)
	b.phase = PhasePatch
	b.patches(d)
	b.configure()
	b.compile()
	b.modulesInstall()

	b.phase = PhaseZFS
	// --with-config=kernel: the modules only, which need nothing but the
	// kernel's toolchain (upstream's Dockerfile builds the tools too, with
	// their libraries, and keeps only the modules).
	b.add(b.run("zfs configure", zfs, "./configure", "--with-config=kernel", "--with-linux="+src, "--with-linux-obj="+src))
	compile := b.run("zfs modules", zfs, "make", "-C", "module", jobs)
	compile.CountsObjects = true
	b.add(compile,
		b.run("zfs modules_install", zfs, "make", "-C", "module", "modules_install", "INSTALL_MOD_PATH="+modules),
		b.run("depmod", "/", "sh", "-c", depmodScript, "depmod", modules, path.Join(src, "System.map"), ReleasePlaceholder),
	)
	b.phase = PhasePackage
	b.produce(ZFSModules, OutputTree, b.run(ZFSModules, "/", "cp", "-R", path.Join(modules, "lib"), p.Paths.Out+"/"))
	p.Steps, p.Outputs = b.steps, b.outputs
}
