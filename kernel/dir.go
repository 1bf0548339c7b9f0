package kernel

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strings"
)

// Layout is one of the two ways LinuxKit has arranged its kernel directory.
type Layout int

const (
	// LayoutSeries is the current layout: a folder per series (6.6.x/)
	// holding build-args, config-<arch>, patches/ and an optional
	// deprecated marker, with shared files in common/.
	LayoutSeries Layout = iota + 1
	// LayoutFlat is the layout before 2024: config-<series>-<arch> files and
	// patches-<series>/ folders in the kernel directory itself, and the
	// versions in the Makefile.
	LayoutFlat
)

func (l Layout) String() string {
	switch l {
	case LayoutSeries:
		return "series folders"
	case LayoutFlat:
		return "flat"
	}
	return fmt.Sprintf("Layout(%d)", int(l))
}

// Series is one kernel series of a kernel directory, or a variant of one.
type Series struct {
	// Name is the series folder, e.g. "6.6.x" or "5.11.x-rt". In the flat
	// layout it is the <series> part of config-<series>-<arch>, plus the
	// variant suffix.
	Name string
	// Base is the plain series: "5.11.x" for "5.11.x-rt", Name otherwise.
	Base string
	// Extra is the variant suffix, "-rt" for "5.11.x-rt", or "". It is
	// LinuxKit's EXTRA.
	Extra string
	// Version is the kernel release, from KERNEL_VERSION. It is zero for a
	// deprecated folder that has no build-args (LinuxKit keeps some).
	// A variant without build-args of its own has its base's version.
	Version Version
	// BuildArgs holds the series' build-args, unknown keys included, in
	// file order. In the flat layout they are made up from the Makefile
	// (KERNEL_VERSION, KERNEL_SERIES, BUILD_IMAGE). Nil when the series
	// has none of its own.
	BuildArgs *BuildArgs
	// Configs are the series' own config files, by arch. For a variant they
	// are fragments appended to the base series' config.
	Configs []Config
	// Patches are the series' own *.patch files, paths relative to the
	// kernel directory, in name order: the order they are applied in.
	Patches []string
	// Deprecated is set by a "deprecated" file in the folder (or, in the
	// flat layout, by the Makefile's DEPRECATED lists): the series is not
	// built by default.
	Deprecated bool

	base *Series
}

// Config is a config file for one arch.
type Config struct {
	Arch Arch
	File string // relative to the kernel directory
}

// BaseSeries returns the series a variant builds on, or nil for a plain
// series.
func (s *Series) BaseSeries() *Series { return s.base }

// Args returns the build-args that apply: the series' own, or for a
// variant without any, its base's.
func (s *Series) Args() *BuildArgs {
	if s.BuildArgs == nil && s.base != nil {
		return s.base.BuildArgs
	}
	return s.BuildArgs
}

// BuildImage is the BUILD_IMAGE build-arg, the builder image reference.
func (s *Series) BuildImage() string { return s.Args().Get(KeyBuildImage) }

// Arches returns the arches the series has a config for. A variant builds
// for the arches of its base.
func (s *Series) Arches() []Arch {
	if s.base != nil {
		return s.base.Arches()
	}
	out := make([]Arch, 0, len(s.Configs))
	for _, c := range s.Configs {
		out = append(out, c.Arch)
	}
	return out
}

// ConfigFiles returns the config files to concatenate for arch a, relative
// to the kernel directory: the series' config-<arch>, then for a variant
// its fragment if it has one. It fails with ErrNoConfig when there is no
// config for a.
func (s *Series) ConfigFiles(a Arch) ([]string, error) {
	plain := s
	if s.base != nil {
		plain = s.base
	}
	base, ok := plain.config(a)
	if !ok {
		var have []string
		for _, h := range plain.Arches() {
			have = append(have, h.Uname)
		}
		detail := "it has none"
		if len(have) > 0 {
			detail = "it has " + strings.Join(have, ", ")
		}
		return nil, fmt.Errorf("series %s has no config for %s (%s): %w", plain.Name, a.Uname, detail, ErrNoConfig)
	}
	files := []string{base}
	if s.base != nil {
		if frag, ok := s.config(a); ok {
			files = append(files, frag)
		}
	}
	return files, nil
}

func (s *Series) config(a Arch) (string, bool) {
	for _, c := range s.Configs {
		if c.Arch.Uname == a.Uname {
			return c.File, true
		}
	}
	return "", false
}

// PatchFiles returns the patches to apply, in order: a variant's own, then
// its base's (LinuxKit's Dockerfile applies them in that order).
func (s *Series) PatchFiles() []string {
	if s.base == nil {
		return slices.Clone(s.Patches)
	}
	return slices.Concat(s.Patches, s.base.Patches)
}

// Dir is a parsed kernel directory.
type Dir struct {
	// FS is the kernel directory. File names in Series are relative to it.
	FS fs.FS
	// Path names the directory in messages, as the user gave it.
	Path string
	// Layout is the layout the directory uses.
	Layout Layout
	// Series are the series and variants, in the order LinuxKit's Makefile
	// lists them: by folder name as the shell sorts "<name>/" in the C
	// locale, so 5.11.x-rt comes before 5.11.x.
	Series []*Series
	// Tools are the tool images LinuxKit builds with each kernel, from the
	// Makefile's TOOLS variable.
	Tools []string

	makefile *makefile // nil when there is no Makefile
}

// Lookup returns the series or variant called name, e.g. "6.6.x" or
// "5.11.x-rt".
func (d *Dir) Lookup(name string) (*Series, error) {
	for _, s := range d.Series {
		if s.Name == name {
			return s, nil
		}
	}
	var names []string
	for _, s := range d.Series {
		names = append(names, s.Name)
	}
	return nil, fmt.Errorf("%s: series %s: %w (have %s)", d.Path, name, ErrNoSeries, strings.Join(names, ", "))
}

// file returns the name of a file of d as the user knows it.
func (d *Dir) file(rel string) string {
	if d.Path == "" {
		return rel
	}
	return path.Join(d.Path, rel)
}

// Detect tells which layout fsys uses. It fails with ErrNotKernelDir when
// fsys holds neither series folders nor flat config files.
func Detect(fsys fs.FS) (Layout, error) {
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return 0, fmt.Errorf("read kernel dir: %w", err)
	}
	flat := false
	for _, e := range entries {
		if e.IsDir() {
			if _, _, ok := parseSeriesName(e.Name()); ok && isSeriesFolder(fsys, e.Name()) {
				return LayoutSeries, nil
			}
			continue
		}
		if _, _, _, ok := parseFlatConfig(e.Name()); ok {
			flat = true
		}
	}
	if flat {
		return LayoutFlat, nil
	}
	return 0, ErrNotKernelDir
}

// Load reads the kernel directory fsys. name is how the user knows it
// ("kernel", "/src/linuxkit/kernel"); it only appears in messages. Every
// error about a file names it, and its line where there is one.
func Load(fsys fs.FS, name string) (*Dir, error) {
	d := &Dir{FS: fsys, Path: name}
	layout, err := Detect(fsys)
	if err != nil {
		return nil, fmt.Errorf("%s: %w (want folders like 6.6.x/ with build-args, or files like config-6.6.x-x86_64)", d.file("."), err)
	}
	d.Layout = layout
	if err := d.loadMakefile(); err != nil {
		return nil, err
	}
	if d.makefile != nil {
		d.Tools = d.makefile.words("TOOLS")
	}
	switch layout {
	case LayoutSeries:
		err = d.loadSeries()
	case LayoutFlat:
		err = d.loadFlat()
	}
	if err != nil {
		return nil, err
	}
	slices.SortStableFunc(d.Series, func(a, b *Series) int {
		return strings.Compare(a.Name+"/", b.Name+"/")
	})
	return d, nil
}

func (d *Dir) loadMakefile() error {
	f, err := d.FS.Open("Makefile")
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return &FileError{File: d.file("Makefile"), Err: err}
	}
	defer f.Close()
	m, err := readMakefile(d.file("Makefile"), f)
	if err != nil {
		return err
	}
	d.makefile = m
	return nil
}

// parseSeriesName splits a series folder name such as "5.11.x-rt" into its
// base series "5.11.x" and variant suffix "-rt".
func parseSeriesName(name string) (base, extra string, ok bool) {
	major, rest, ok1 := strings.Cut(name, ".")
	minor, rest, ok2 := strings.Cut(rest, ".")
	if !ok1 || !ok2 || !isDigits(major) || !isDigits(minor) {
		return "", "", false
	}
	rest, ok = strings.CutPrefix(rest, "x")
	if !ok {
		return "", "", false
	}
	base = major + "." + minor + ".x"
	if rest == "" {
		return base, "", true
	}
	if !isExtra(rest) {
		return "", "", false
	}
	return base, rest, true
}

// isExtra reports whether s can be a variant suffix (LinuxKit's EXTRA):
// a dash and then characters a tag may hold.
func isExtra(s string) bool {
	if len(s) < 2 || s[0] != '-' {
		return false
	}
	for _, c := range s[1:] {
		if !(c == '-' || c == '_' || c == '.' || '0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') {
			return false
		}
	}
	return true
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// archByUname finds an arch by the name LinuxKit uses in file names.
func archByUname(name string) (Arch, bool) {
	for _, a := range Arches() {
		if a.Uname == name {
			return a, true
		}
	}
	return Arch{}, false
}

// KeysFile is the file of PGP keys that sign the kernel sources, relative
// to the directory: common/keys.asc, which upstream's Dockerfile copies
// into the build, or keys.asc at the top where only that exists (older,
// flat checkouts).
func (d *Dir) KeysFile() string {
	if _, err := fs.Stat(d.FS, "common/keys.asc"); err != nil {
		if _, err := fs.Stat(d.FS, "keys.asc"); err == nil {
			return "keys.asc"
		}
	}
	return "common/keys.asc"
}

// Keyring reads KeysFile.
func (d *Dir) Keyring() (*Keyring, error) {
	rel := d.KeysFile()
	f, err := d.FS.Open(rel)
	if err != nil {
		return nil, fmt.Errorf("source signing keys: %w", err)
	}
	defer f.Close()
	return ReadKeyring(d.file(rel), f)
}
