package kernel

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Query picks a kernel of a checkout and says how to name it. It mirrors
// LinuxKit's `make show-tag-<version> ORG=... IMAGE=... EXTRA=... DEBUG=...`.
type Query struct {
	// Series is a series folder, "6.6.x", or a variant folder,
	// "5.11.x-rt". The version comes from its build-args.
	Series string
	// Version is a kernel release, "6.6.71"; its series folder (6.6.x)
	// must exist. With Series, it must belong to that series; it may differ
	// from KERNEL_VERSION, as `make show-tag-<version>` allows.
	Version string
	// Extra selects a variant, "-rt" for the folder <series>-rt.
	Extra string
	// Debug names the debug kernel ("-dbg").
	Debug bool
	// Org and Image default to DefaultOrg and DefaultImage.
	Org, Image string
	// Tool names a tool image of the kernel (ToolPerf) instead of the
	// kernel: <org>/<image>-<tool>, with the kernel's tags but -builder.
	// A tool has no debug build.
	Tool string
}

// Resolve finds the series q names and the image name to use for it.
func (c *Checkout) Resolve(q Query) (*Series, Name, error) {
	var base, extra string
	var version Version
	if q.Version != "" {
		v, err := ParseVersion(q.Version)
		if err != nil {
			return nil, Name{}, err
		}
		version, base = v, v.Series()
	}
	if q.Series != "" {
		b, x, ok := parseSeriesName(q.Series)
		if !ok {
			return nil, Name{}, fmt.Errorf("%q is not a series name like 6.6.x or 5.11.x-rt", q.Series)
		}
		if base != "" && b != base {
			return nil, Name{}, fmt.Errorf("version %s is not in series %s", q.Version, q.Series)
		}
		base, extra = b, x
	}
	if base == "" {
		return nil, Name{}, errors.New("no series or version given")
	}
	if q.Extra != "" {
		if !isExtra(q.Extra) {
			return nil, Name{}, fmt.Errorf("variant suffix %q must start with '-' and hold only letters, digits, '.', '_' and '-'", q.Extra)
		}
		if extra != "" && extra != q.Extra {
			return nil, Name{}, fmt.Errorf("series %s already names variant %s, not %s", q.Series, extra, q.Extra)
		}
		extra = q.Extra
	}
	s, err := c.Dir.Lookup(base + extra)
	if err != nil {
		return nil, Name{}, err
	}
	if version.IsZero() {
		version = s.Version
	}
	image := q.Image
	if q.Tool != "" {
		if err := CheckTool(q.Tool); err != nil {
			return nil, Name{}, err
		}
		if q.Debug {
			return nil, Name{}, fmt.Errorf("%s has no debug build: the debug kernel's source is the plain one's", q.Tool)
		}
		image = ToolImage(image, q.Tool)
	}
	if version.IsZero() {
		return nil, Name{}, fmt.Errorf("%s: %w (no build-args with %s)", c.Dir.file(s.Name), ErrNoVersion, KeyKernelVersion)
	}
	return s, Name{Org: q.Org, Image: image, Version: version, Extra: s.Extra, Debug: q.Debug}, nil
}

// ShowTag returns what `make show-tag-<version>` prints for q:
// "<org>/<image>:<version><extra><-dbg>-<hash>[-dirty]".
func (c *Checkout) ShowTag(q Query) (string, error) {
	s, name, err := c.Resolve(q)
	if err != nil {
		return "", err
	}
	hash, err := c.Hash(s)
	if err != nil {
		return "", err
	}
	return name.ShowTag(hash), nil
}

// Tags returns every tag a build of q for arch a pushes (see Name.Tags).
// It fails with ErrNoConfig when the series has no config for a.
func (c *Checkout) Tags(q Query, a Arch) ([]Tag, error) {
	s, name, err := c.Resolve(q)
	if err != nil {
		return nil, err
	}
	if _, err := s.ConfigFiles(a); err != nil {
		return nil, fmt.Errorf("%s: %w", c.Dir.file(s.Name), err)
	}
	hash, err := c.Hash(s)
	if err != nil {
		return nil, err
	}
	tags, err := name.Tags(hash, a)
	if err != nil || q.Tool == "" {
		return tags, err
	}
	// A tool image has no builder of its own to publish.
	return slices.DeleteFunc(tags, func(t Tag) bool { return t.Kind == TagBuilder }), nil
}

// Listing is what `make list` prints.
type Listing struct {
	Arch       Arch
	Kernels    []string // versions LinuxKit builds by default
	Deprecated []string // series folders (flat layout: versions) marked deprecated
	Tools      []string
	// SharedHash is the hash of Makefile and common/; "" in the flat
	// layout, which has none, and outside git.
	SharedHash string
	// NoGit is set when the directory is not in a git work tree.
	NoGit  bool
	Layout Layout
}

// List returns what `make list ARCH=<a>` prints. In the series layout the
// kernels are the KERNEL_VERSION of every folder with build-args that is
// not deprecated, whatever the arch (as in the Makefile); in the flat
// layout they are the Makefile's lists for all arches and for a.
func (c *Checkout) List(a Arch) (*Listing, error) {
	l := &Listing{Arch: a, Tools: c.Dir.Tools, Layout: c.Dir.Layout}
	switch c.Dir.Layout {
	case LayoutFlat:
		entries, err := c.Dir.flatEntries()
		if err != nil {
			return nil, err
		}
		for _, e := range entries {
			if e.arch != "" && e.arch != a.Uname {
				continue
			}
			if e.deprecated {
				l.Deprecated = append(l.Deprecated, e.word)
			} else {
				l.Kernels = append(l.Kernels, e.word)
			}
		}
		return l, nil
	default:
		for _, s := range c.Dir.Series {
			switch {
			case s.Deprecated:
				l.Deprecated = append(l.Deprecated, s.Name)
			case s.BuildArgs != nil:
				l.Kernels = append(l.Kernels, s.BuildArgs.Get(KeyKernelVersion))
			}
		}
	}
	if c.Rev == nil {
		l.NoGit = true
		return l, nil
	}
	h, err := c.SharedHash()
	if err != nil {
		return nil, err
	}
	l.SharedHash = h
	return l, nil
}

// String formats l as `make list` does, one "Key: value" line each.
func (l *Listing) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "Arch: %s\n", l.Arch.Uname)
	fmt.Fprintf(&b, "Kernels: %s\n", strings.Join(l.Kernels, " "))
	fmt.Fprintf(&b, "Deprecated: %s\n", strings.Join(l.Deprecated, " "))
	fmt.Fprintf(&b, "Tools: %s\n", strings.Join(l.Tools, " "))
	switch {
	case l.Layout == LayoutFlat:
		// The flat-layout Makefile printed no shared hash.
	case l.NoGit:
		b.WriteString("Shared hash: none (not in a git work tree)\n")
	default:
		fmt.Fprintf(&b, "Shared hash: %s\n", l.SharedHash)
	}
	return b.String()
}
