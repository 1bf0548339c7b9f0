package kernel

import (
	"fmt"
	"io/fs"
	"strings"
)

// parseFlatConfig splits a flat-layout config file name,
// config-<series>-<arch>[<extra>], e.g. "config-5.11.x-x86_64-rt".
func parseFlatConfig(name string) (base string, a Arch, extra string, ok bool) {
	rest, ok := strings.CutPrefix(name, "config-")
	if !ok {
		return "", Arch{}, "", false
	}
	series, archPart, ok := strings.Cut(rest, "-")
	if !ok {
		return "", Arch{}, "", false
	}
	base, x, ok := parseSeriesName(series)
	if !ok || x != "" {
		return "", Arch{}, "", false
	}
	for _, cand := range Arches() {
		if archPart == cand.Uname {
			return base, cand, "", true
		}
		if x, found := strings.CutPrefix(archPart, cand.Uname); found && isExtra(x) {
			return base, cand, x, true
		}
	}
	return "", Arch{}, "", false
}

// flatEntry is a kernel as a flat-layout Makefile lists it: "5.11.4-rt".
type flatEntry struct {
	version    Version
	extra      string
	word       string // as written, for `lkbuild list`
	line       int
	arch       string // uname name for KERNELS_<arch> lists, "" for all arches
	deprecated bool
}

// loadFlat reads the flat layout: config-<series>-<arch>[<extra>] files,
// patches-<series>[<extra>]/ folders and the versions in the Makefile.
func (d *Dir) loadFlat() error {
	entries, err := fs.ReadDir(d.FS, ".")
	if err != nil {
		return fmt.Errorf("read %s: %w", d.file("."), err)
	}
	byName := map[string]*Series{}
	get := func(base, extra string) *Series {
		name := base + extra
		s := byName[name]
		if s == nil {
			s = &Series{Name: name, Base: base, Extra: extra}
			byName[name] = s
			d.Series = append(d.Series, s)
		}
		return s
	}
	for _, e := range entries {
		if e.IsDir() {
			if rest, ok := strings.CutPrefix(e.Name(), "patches-"); ok {
				if base, extra, ok := parseSeriesName(rest); ok {
					s := get(base, extra)
					if s.Patches, err = d.patches(e.Name()); err != nil {
						return err
					}
				}
			}
			continue
		}
		if base, a, extra, ok := parseFlatConfig(e.Name()); ok {
			s := get(base, extra)
			s.Configs = append(s.Configs, Config{Arch: a, File: e.Name()})
		}
	}
	for _, s := range d.Series {
		if s.Extra == "" {
			continue
		}
		if s.base = byName[s.Base]; s.base == nil {
			return &FileError{File: d.file("config-" + s.Base + "-*"), Err: fmt.Errorf("variant %s needs the configs of %s, and there are none", s.Name, s.Base)}
		}
	}

	list, err := d.flatEntries()
	if err != nil {
		return err
	}
	mf := d.file("Makefile")
	var image makeVar
	if d.makefile != nil {
		image = d.makefile.vars["IMAGE_BUILDER"]
	}
	for _, k := range list {
		s := byName[k.version.Series()+k.extra]
		if s == nil {
			return &FileError{File: mf, Line: k.line, Err: fmt.Errorf("kernel %s: no config-%s-<arch> files", k.word, k.version.Series()+k.extra)}
		}
		if k.deprecated {
			s.Deprecated = true
		}
		switch {
		case s.Version.IsZero():
			s.Version = k.version
			s.BuildArgs = &BuildArgs{File: mf, Args: []BuildArg{
				{Key: KeyKernelVersion, Value: k.version.String(), Line: k.line},
				{Key: KeyKernelSeries, Value: s.Base, Line: k.line},
				{Key: KeyBuildImage, Value: strings.TrimSpace(image.Value), Line: image.Line},
			}}
		case s.Version != k.version:
			return &FileError{File: mf, Line: k.line, Err: fmt.Errorf("%s is listed as %s here and as %s on line %d", s.Name, k.version, s.Version, s.BuildArgs.Args[0].Line)}
		}
	}
	for _, s := range d.Series {
		if s.base != nil && s.Version.IsZero() {
			s.Version = s.base.Version
		}
	}
	return nil
}

// flatEntries reads the kernels a flat-layout Makefile declares, in either
// of the two forms LinuxKit used: KERNELS_all/KERNELS_<arch> and
// DEPRECATED_all/DEPRECATED_<arch> lists, or one
// `$(eval $(call kernel,VERSION,SERIES,EXTRA,DEBUG))` line per kernel.
func (d *Dir) flatEntries() ([]flatEntry, error) {
	if d.makefile == nil {
		return nil, nil
	}
	mf := d.file("Makefile")
	var out []flatEntry
	for _, list := range []struct {
		prefix     string
		deprecated bool
	}{{"KERNELS_", false}, {"DEPRECATED_", true}} {
		for _, arch := range append([]string{"all"}, unames()...) {
			name := list.prefix + arch
			for _, w := range d.makefile.words(name) {
				line := d.makefile.vars[name].Line
				v, extra, err := parseKernelWord(w)
				if err != nil {
					return nil, &FileError{File: mf, Line: line, Err: fmt.Errorf("%s: %w", name, err)}
				}
				e := flatEntry{version: v, extra: extra, word: w, line: line, deprecated: list.deprecated}
				if arch != "all" {
					e.arch = arch
				}
				out = append(out, e)
			}
		}
	}
	seen := map[string]bool{}
	for _, c := range d.makefile.calls {
		if len(c.Args) < 2 {
			return nil, &FileError{File: mf, Line: c.Line, Err: fmt.Errorf("$(call kernel,...) needs a version and a series")}
		}
		v, err := ParseVersion(c.Args[0])
		if err != nil {
			return nil, &FileError{File: mf, Line: c.Line, Err: err}
		}
		if c.Args[1] != v.Series() {
			return nil, &FileError{File: mf, Line: c.Line, Err: fmt.Errorf("kernel %s is declared in series %s, but belongs to %s", c.Args[0], c.Args[1], v.Series())}
		}
		extra := literalArg(c.Args, 2)
		if literalArg(c.Args, 3) != "" {
			continue // a debug build of a kernel declared on its own line
		}
		word := v.String() + extra
		if seen[word] {
			continue // declared again for another arch (an ifeq branch)
		}
		seen[word] = true
		out = append(out, flatEntry{version: v, extra: extra, word: word, line: c.Line})
	}
	return out, nil
}

// literalArg returns args[i] unless it is missing or a make reference such
// as $(EXTRA), whose value comes from the command line.
func literalArg(args []string, i int) string {
	if i >= len(args) || strings.Contains(args[i], "$") {
		return ""
	}
	return args[i]
}

// parseKernelWord splits "5.11.4-rt" into version and variant suffix.
func parseKernelWord(w string) (Version, string, error) {
	vs, extra, _ := strings.Cut(w, "-")
	v, err := ParseVersion(vs)
	if err != nil {
		return Version{}, "", err
	}
	if extra != "" {
		extra = "-" + extra
		if !isExtra(extra) {
			return Version{}, "", fmt.Errorf("%q: bad variant suffix %q", w, extra)
		}
	}
	return v, extra, nil
}

func unames() []string {
	var out []string
	for _, a := range Arches() {
		out = append(out, a.Uname)
	}
	return out
}
