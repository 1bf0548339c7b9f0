package builder

import (
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/lkbuild/lkbuild/kernel"
	"github.com/lkbuild/lkbuild/oci"
)

// layoutEntries is what a build names in its output layout: every tag a
// push writes (LINUXKIT-COMPAT.md §5), so that linuxkit build, FROM lines
// and skopeo find in the layout what they would find in the registry.
// The image goes under its single-arch tags; the index tags become
// indexes that list it and every other arch's image of the same release
// in the layout (an arch tag is its index tag plus -<arch>); builder, when
// there is one, joins the index under the -builder tag, one image per
// platform built, as the registry-side copy of a multi-arch builder gives.
// oci.Store.Publish qualifies the names and adds the bare-tag aliases.
func layoutEntries(tags []kernel.Tag, img v1.Image, p v1.Platform, builder v1.Image, bp v1.Platform) []oci.LayoutEntry {
	e := oci.LayoutEntry{Image: img, Platform: p}
	var more []oci.LayoutEntry
	for _, t := range tags {
		switch t.Kind {
		case kernel.TagArchImage, kernel.TagReleaseArchImage:
			e.Tags = append(e.Tags, t.String())
		case kernel.TagIndex, kernel.TagReleaseIndex:
			ix := oci.LayoutIndex{Name: t.String()}
			for _, a := range kernel.Arches() {
				ix.Gather = append(ix.Gather, t.String()+"-"+a.OCI)
			}
			e.Indexes = append(e.Indexes, ix)
		case kernel.TagBuilder:
			if builder != nil {
				more = append(more, oci.LayoutEntry{Image: builder, Platform: bp, Indexes: []oci.LayoutIndex{{Name: t.String()}}})
			}
		}
	}
	return append([]oci.LayoutEntry{e}, more...)
}

// imagePlatform is the platform img's config states, else def.
func imagePlatform(img v1.Image, def v1.Platform) v1.Platform {
	cf, err := img.ConfigFile()
	if err != nil || cf.OS == "" || cf.Architecture == "" {
		return def
	}
	return v1.Platform{OS: cf.OS, Architecture: cf.Architecture, Variant: cf.Variant}
}
