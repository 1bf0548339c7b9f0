package builder

import (
	"context"
	"fmt"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/lkbuild/lkbuild/kernel"
	"github.com/lkbuild/lkbuild/oci"
	"github.com/lkbuild/lkbuild/toolchain"
)

// PushOptions says what Push sends where.
type PushOptions struct {
	Registry *oci.Registry
	// Image is the single-arch kernel image, for Platform.
	Image    v1.Image
	Platform v1.Platform
	// Tags are the build's tags (kernel.Name.Tags).
	Tags []kernel.Tag
	// BuilderImage is the builder image's reference, copied registry-side
	// to the -builder tag. An oci: layout reference is pushed from the
	// layout instead.
	BuilderImage string
	// BuilderSource, when set, is pushed to the -builder tag instead of
	// copying BuilderImage.
	BuilderSource v1.Image
	// Attachments are attached to the image in the registry (its
	// provenance and SBOM; LayoutAttachments reads them from a layout).
	Attachments []oci.Attachment
	// Notify is told each tag as it is done.
	Notify func(string)
}

// Push publishes a kernel image under every tag of LINUXKIT-COMPAT.md §5:
// the single-arch tags first (blobs and manifest by digest, then the tag),
// then the multi-arch indexes, merged with the arches the registry already
// holds, then the builder image. It returns the tags it pushed, also when
// it fails part way.
func Push(ctx context.Context, o PushOptions) ([]string, error) {
	var pushed []string
	note := func(s string) {
		pushed = append(pushed, s)
		if o.Notify != nil {
			o.Notify("pushed " + s)
		}
	}
	for _, kinds := range [][]kernel.TagKind{
		{kernel.TagArchImage, kernel.TagReleaseArchImage},
		{kernel.TagIndex, kernel.TagReleaseIndex},
		{kernel.TagBuilder},
	} {
		for _, t := range o.Tags {
			if !containsKind(kinds, t.Kind) {
				continue
			}
			ref := t.String()
			var err error
			switch t.Kind {
			case kernel.TagArchImage, kernel.TagReleaseArchImage:
				_, err = o.Registry.Push(ctx, o.Image, ref)
			case kernel.TagIndex, kernel.TagReleaseIndex:
				_, err = o.Registry.MergeIndex(ctx, ref, o.Image, o.Platform)
			case kernel.TagBuilder:
				err = pushBuilder(ctx, o, ref)
			}
			if err != nil {
				return pushed, fmt.Errorf("%s: %w", ref, err)
			}
			note(ref)
			if t.Kind == kernel.TagArchImage && len(o.Attachments) > 0 {
				// One repository holds every tag: attach once, to the
				// image by digest (the tag could move meanwhile).
				d, err := o.Image.Digest()
				if err != nil {
					return pushed, fmt.Errorf("%s: %w", ref, err)
				}
				byDigest, err := digestRef(ref, d)
				if err != nil {
					return pushed, fmt.Errorf("%s: %w", ref, err)
				}
				for _, a := range o.Attachments {
					if _, err := o.Registry.Attach(ctx, byDigest, a); err != nil {
						return pushed, fmt.Errorf("%s: attach %s: %w", ref, a.ArtifactType, err)
					}
					if o.Notify != nil {
						o.Notify("attached " + a.ArtifactType + " to " + ref)
					}
				}
			}
		}
	}
	return pushed, nil
}

func pushBuilder(ctx context.Context, o PushOptions, ref string) error {
	src := o.BuilderSource
	if src == nil {
		if dir, name, ok := toolchain.ParseLayoutRef(o.BuilderImage); ok {
			img, err := toolchain.LayoutImage(dir, name)
			if err != nil {
				return err
			}
			src = img
		}
	}
	if src != nil {
		_, err := o.Registry.Push(ctx, src, ref)
		return err
	}
	_, err := o.Registry.Copy(ctx, o.BuilderImage, ref)
	return err
}

func containsKind(kinds []kernel.TagKind, k kernel.TagKind) bool {
	for _, x := range kinds {
		if x == k {
			return true
		}
	}
	return false
}
