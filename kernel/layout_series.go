package kernel

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strings"
)

// isSeriesFolder reports whether a folder with a series name holds
// anything a series folder holds. Empty folders (left behind by git, say)
// are not series.
func isSeriesFolder(fsys fs.FS, name string) bool {
	entries, err := fs.ReadDir(fsys, name)
	if err != nil {
		return false
	}
	for _, e := range entries {
		switch n := e.Name(); {
		case n == "build-args", n == "deprecated", n == "patches" && e.IsDir():
			return true
		case strings.HasPrefix(n, "config-") && !e.IsDir():
			return true
		}
	}
	return false
}

// loadSeries reads the current layout: one folder per series.
func (d *Dir) loadSeries() error {
	entries, err := fs.ReadDir(d.FS, ".")
	if err != nil {
		return fmt.Errorf("read %s: %w", d.file("."), err)
	}
	byName := map[string]*Series{}
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		base, extra, ok := parseSeriesName(e.Name())
		if !ok || !isSeriesFolder(d.FS, e.Name()) {
			continue
		}
		s, err := d.readSeriesFolder(e.Name(), base, extra)
		if err != nil {
			return err
		}
		d.Series = append(d.Series, s)
		byName[s.Name] = s
	}
	// Bases first, so that a variant can take its base's version.
	for _, s := range d.Series {
		if s.Extra == "" {
			if err := d.resolveVersion(s); err != nil {
				return err
			}
		}
	}
	for _, s := range d.Series {
		if s.Extra == "" {
			continue
		}
		s.base = byName[s.Base]
		if s.base == nil {
			return &FileError{File: d.file(s.Name), Err: fmt.Errorf("variant of %s, but there is no %s folder", s.Base, s.Base)}
		}
		if err := d.resolveVersion(s); err != nil {
			return err
		}
	}
	return nil
}

func (d *Dir) readSeriesFolder(name, base, extra string) (*Series, error) {
	s := &Series{Name: name, Base: base, Extra: extra}
	entries, err := fs.ReadDir(d.FS, name)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", d.file(name), err)
	}
	for _, e := range entries {
		rel := path.Join(name, e.Name())
		switch n := e.Name(); {
		case n == "build-args" && !e.IsDir():
			if s.BuildArgs, err = d.parseBuildArgsFile(rel); err != nil {
				return nil, err
			}
		case n == "deprecated":
			s.Deprecated = true
		case n == "patches" && e.IsDir():
			if s.Patches, err = d.patches(rel); err != nil {
				return nil, err
			}
		case strings.HasPrefix(n, "config-") && !e.IsDir():
			// Only uname names: LinuxKit's Dockerfile picks the file with
			// `uname -m`. Others (config-s390x from older trees) are not
			// ours to build.
			if a, ok := archByUname(strings.TrimPrefix(n, "config-")); ok {
				s.Configs = append(s.Configs, Config{Arch: a, File: rel})
			}
		}
	}
	return s, nil
}

func (d *Dir) parseBuildArgsFile(rel string) (*BuildArgs, error) {
	f, err := d.FS.Open(rel)
	if err != nil {
		return nil, &FileError{File: d.file(rel), Err: err}
	}
	defer f.Close()
	return ParseBuildArgs(d.file(rel), f)
}

// patches lists the *.patch files of a folder in name order, which is the
// order the shell glob in LinuxKit's Dockerfile gives under a C locale.
// fs.ReadDir already sorts by name, byte by byte.
func (d *Dir) patches(rel string) ([]string, error) {
	entries, err := fs.ReadDir(d.FS, rel)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", d.file(rel), err)
	}
	var out []string
	for _, e := range entries {
		if !e.IsDir() && strings.HasSuffix(e.Name(), ".patch") {
			out = append(out, path.Join(rel, e.Name()))
		}
	}
	return out, nil
}

// resolveVersion checks a series' build-args and sets its Version.
func (d *Dir) resolveVersion(s *Series) error {
	if s.BuildArgs == nil {
		switch {
		case s.base != nil && !s.base.Version.IsZero():
			s.Version = s.base.Version
		case s.Deprecated:
			// LinuxKit keeps deprecated folders without build-args; they are
			// listed, not built.
		case s.base != nil:
			return &FileError{File: d.file(s.Name), Err: fmt.Errorf("no build-args, and %s has no KERNEL_VERSION either", s.Base)}
		default:
			return &FileError{File: d.file(path.Join(s.Name, "build-args")), Err: errors.New("missing: every series that is not deprecated needs one, with KERNEL_VERSION=<version>")}
		}
		return nil
	}
	file := s.BuildArgs.File
	v, ok := s.BuildArgs.Lookup(KeyKernelVersion)
	if !ok {
		return &FileError{File: file, Err: fmt.Errorf("no %s line (want e.g. %s=6.6.71)", KeyKernelVersion, KeyKernelVersion)}
	}
	ver, err := ParseVersion(v.Value)
	if err != nil {
		return &FileError{File: file, Line: v.Line, Err: fmt.Errorf("%s: %w", KeyKernelVersion, err)}
	}
	if ver.Series() != s.Base {
		return &FileError{File: file, Line: v.Line, Err: fmt.Errorf("%s=%s belongs to series %s, not %s", KeyKernelVersion, v.Value, ver.Series(), s.Base)}
	}
	if ks, ok := s.BuildArgs.Lookup(KeyKernelSeries); ok && ks.Value != s.Base {
		return &FileError{File: file, Line: ks.Line, Err: fmt.Errorf("%s=%s does not match folder %s (want %s=%s)", KeyKernelSeries, ks.Value, s.Name, KeyKernelSeries, s.Base)}
	}
	s.Version = ver
	return nil
}
