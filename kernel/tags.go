package kernel

import (
	"errors"
	"fmt"
	"strings"
)

// Defaults for Name, as in LinuxKit's Makefile (ORG, IMAGE).
const (
	DefaultOrg   = "linuxkit"
	DefaultImage = "kernel"
	// DebugSuffix marks debug kernels; it follows the version and variant.
	DebugSuffix = "-dbg"
)

// Name says what a kernel image is called, apart from the hash:
// <org>/<image>:<version><extra><-dbg>.
type Name struct {
	Org, Image string  // default DefaultOrg, DefaultImage
	Version    Version // 6.6.71
	Extra      string  // variant suffix such as "-rt", or ""
	Debug      bool    // a debug kernel: "-dbg" after Extra
}

// Repository is "<org>/<image>".
func (n Name) Repository() string {
	org, image := n.Org, n.Image
	if org == "" {
		org = DefaultOrg
	}
	if image == "" {
		image = DefaultImage
	}
	return org + "/" + image
}

// Release is the plain tag, "<version><extra><-dbg>", e.g. "5.11.4-rt-dbg".
func (n Name) Release() string {
	s := n.Version.String() + n.Extra
	if n.Debug {
		s += DebugSuffix
	}
	return s
}

// ShowTag is what `make show-tag-<version>` prints:
// "<org>/<image>:<release>-<hash>".
func (n Name) ShowTag(hash string) string {
	return n.Repository() + ":" + n.Release() + "-" + hash
}

// TagKind says what a tag points to.
type TagKind int

const (
	// TagArchImage is <release>-<hash>-<arch>: the single-arch image.
	TagArchImage TagKind = iota + 1
	// TagIndex is <release>-<hash>: the index of every <release>-<hash>-*
	// image in the registry.
	TagIndex
	// TagReleaseArchImage is <release>-<arch>: the image again, under the
	// plain release name.
	TagReleaseArchImage
	// TagReleaseIndex is <release>: the index again, under the plain name.
	TagReleaseIndex
	// TagBuilder is <version><extra>-builder: the builder image, copied
	// registry-side.
	TagBuilder
)

func (k TagKind) String() string {
	switch k {
	case TagArchImage:
		return "image"
	case TagIndex:
		return "index"
	case TagReleaseArchImage:
		return "release image"
	case TagReleaseIndex:
		return "release index"
	case TagBuilder:
		return "builder"
	}
	return fmt.Sprintf("TagKind(%d)", int(k))
}

// Tag is one tag a build pushes.
type Tag struct {
	Repository string // "linuxkit/kernel"
	Tag        string // "6.6.71-<hash>-amd64"
	Kind       TagKind
}

func (t Tag) String() string { return t.Repository + ":" + t.Tag }

// Tags returns every tag a build of n for arch a pushes, in push order:
// the image by hash and arch, the index by hash, the same two under the
// plain release name, and the builder. hash is the series hash, with its
// -dirty suffix if any. The builder tag carries no -dbg: plain and debug
// kernels of a release share one builder, as in LinuxKit's Makefile.
func (n Name) Tags(hash string, a Arch) ([]Tag, error) {
	if n.Version.IsZero() {
		return nil, errors.New("no version to tag")
	}
	if hash == "" || strings.ContainsAny(hash, ":/@ ") {
		return nil, fmt.Errorf("bad series hash %q", hash)
	}
	if a.IsZero() {
		return nil, errors.New("no arch to tag")
	}
	repo, rel := n.Repository(), n.Release()
	return []Tag{
		{repo, rel + "-" + hash + "-" + a.OCI, TagArchImage},
		{repo, rel + "-" + hash, TagIndex},
		{repo, rel + "-" + a.OCI, TagReleaseArchImage},
		{repo, rel, TagReleaseIndex},
		{repo, n.Version.String() + n.Extra + "-builder", TagBuilder},
	}, nil
}
