package sbom

import (
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
)

// Package managers whose databases Packages reads; Package.Manager holds
// one of them.
const (
	Dpkg = "dpkg"
	Apk  = "apk"
)

// PURL returns p's package URL: pkg:deb/debian/NAME@VERSION?arch=ARCH for
// dpkg, pkg:apk/alpine/NAME@VERSION?arch=ARCH for apk, and "" for an
// unknown manager or a package without a name. The namespace is fixed
// because lkbuild's builders are Debian and Alpine (linuxkit/alpine)
// images; a derivative's packages are named as their base's.
func (p Package) PURL() string {
	var typ string
	switch p.Manager {
	case Dpkg:
		typ = "deb/debian/"
	case Apk:
		typ = "apk/alpine/"
	default:
		return ""
	}
	if p.Name == "" {
		return ""
	}
	var b strings.Builder
	b.WriteString("pkg:" + typ + purlEscape(p.Name))
	if p.Version != "" {
		b.WriteString("@" + purlEscape(p.Version))
	}
	if p.Arch != "" {
		b.WriteString("?arch=" + purlEscape(p.Arch))
	}
	return b.String()
}

// imagePURL returns the pkg:oci URL of an image reference and its digest,
// or "" when the digest is unknown (an oci purl's version is the digest)
// or the reference does not parse.
func imagePURL(ref, digest string) string {
	if digest == "" || ref == "" {
		return ""
	}
	r, err := name.ParseReference(ref, name.WeakValidation)
	if err != nil {
		return ""
	}
	repo := r.Context()
	reg := repo.RegistryStr()
	if reg == name.DefaultRegistry {
		reg = "docker.io"
	}
	path := repo.RepositoryStr()
	last := path[strings.LastIndexByte(path, '/')+1:]

	// Qualifiers in key order, as the canonical form wants.
	s := "pkg:oci/" + purlEscape(strings.ToLower(last)) + "@" + purlEscape(digest) +
		"?repository_url=" + purlEscape(reg+"/"+path)
	if tag := explicitTag(ref); tag != "" {
		s += "&tag=" + purlEscape(tag)
	}
	return s
}

// explicitTag returns the tag written in ref, or "" when there is none
// (ggcr's name.Tag would report its default, "latest").
func explicitTag(ref string) string {
	if i := strings.IndexByte(ref, '@'); i >= 0 {
		ref = ref[:i]
	}
	last := ref[strings.LastIndexByte(ref, '/')+1:]
	if i := strings.IndexByte(last, ':'); i >= 0 {
		return last[i+1:]
	}
	return ""
}

// purlEscape percent-encodes a purl component: everything but letters,
// digits, ".-_~" and ':' (which the purl spec says to leave alone), so a
// Debian version such as 1:2.38-5+deb12u3 becomes 1:2.38-5%2Bdeb12u3.
func purlEscape(s string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
			c == '.' || c == '-' || c == '_' || c == '~' || c == ':' {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	return b.String()
}
