package builder

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/lkbuild/lkbuild/oci"
	"github.com/lkbuild/lkbuild/toolchain"
)

// Subject is a kernel image read for verify or sbom: from an OCI layout
// (oci:DIR:NAME) or a registry, with where its attachments are.
type Subject struct {
	// Ref is the reference it was read by; Image the image.
	Ref   string
	Image v1.Image
	store *oci.Store    // a layout's, else nil
	reg   *oci.Registry // for a registry reference
}

// OpenSubject reads the image ref names for platform: oci:DIR:NAME from
// that layout (read, never created; NAME a full name, a short one or a
// bare tag), else from reg, into blobs.
func OpenSubject(ctx context.Context, reg *oci.Registry, blobs *oci.Store, ref string, platform v1.Platform) (*Subject, error) {
	s := &Subject{Ref: ref, reg: reg}
	if rest, ok := strings.CutPrefix(ref, toolchain.LayoutPrefix); ok {
		dir, n, err := splitLayoutRef(rest)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", ref, err)
		}
		store, err := oci.OpenStore(dir)
		if err != nil {
			return nil, err
		}
		// A multi-arch name (6.6.71, linuxkit/kernel:6.6.71-<hash>) is
		// an index in the layout: platform picks the image.
		if s.Image, _, err = store.ImageForPlatform(n, platform); err != nil {
			return nil, err
		}
		s.store = store
		return s, nil
	}
	img, err := reg.Pull(ctx, ref, platform, blobs, nil)
	if err != nil {
		return nil, err
	}
	s.Image = img
	return s, nil
}

// splitLayoutRef splits DIR:NAME where NAME, an image name in a layout,
// has colons of its own (registry:5000/linuxkit/kernel:6.6.71-…): DIR is
// the shortest prefix that is an OCI layout.
func splitLayoutRef(rest string) (dir, name string, _ error) {
	for i := range len(rest) {
		if rest[i] != ':' {
			continue
		}
		if _, err := os.Stat(filepath.Join(rest[:i], "oci-layout")); err == nil {
			if rest[i+1:] == "" {
				break
			}
			return rest[:i], rest[i+1:], nil
		}
	}
	if _, err := os.Stat(filepath.Join(strings.TrimSuffix(rest, ":"), "oci-layout")); err == nil {
		return "", "", fmt.Errorf("name the image: %s%s:NAME", toolchain.LayoutPrefix, rest)
	}
	return "", "", fmt.Errorf("no OCI layout (a directory holding oci-layout) before a colon: write %sDIR:NAME", toolchain.LayoutPrefix)
}

// BuiltImage finds t's image in the layout s: under t.Ref, else under the
// same image name and tag in another repository (a build with another
// --org: the tag names the version, series hash and arch, so the image is
// the same).
func BuiltImage(s *oci.Store, t *Target) (v1.Image, v1.Descriptor, error) {
	img, d, err := s.ImageByName(t.Ref)
	if err == nil || !errors.Is(err, oci.ErrNotFound) {
		return img, d, err
	}
	repo, tag, _ := strings.Cut(t.Ref[strings.LastIndex(t.Ref, "/")+1:], ":")
	im, ierr := s.Layout().ImageIndex()
	if ierr != nil {
		return nil, v1.Descriptor{}, err
	}
	m, ierr := im.IndexManifest()
	if ierr != nil {
		return nil, v1.Descriptor{}, err
	}
	var found []string
	digests := map[v1.Hash]bool{}
	for _, e := range m.Manifests {
		n := e.Annotations[oci.RefNameAnnotation]
		if n != "" && strings.HasSuffix(n, "/"+repo+":"+tag) || n == repo+":"+tag {
			found = append(found, n)
			digests[e.Digest] = true
		}
	}
	switch {
	case len(digests) == 0:
		return nil, v1.Descriptor{}, err
	case len(digests) > 1:
		return nil, v1.Descriptor{}, fmt.Errorf("%s is not in %s, and %s name different images: build it with this --org", t.Ref, s.Dir(), strings.Join(found, ", "))
	}
	return s.ImageByName(found[0])
}

// Attachment returns the document of artifactType attached to the image,
// nil when there is none. Of several (attached by different pushes) the
// first by digest is returned.
func (s *Subject) Attachment(ctx context.Context, artifactType string) ([]byte, error) {
	d, err := s.Image.Digest()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", s.Ref, err)
	}
	if s.store != nil {
		atts, err := storeAttachments(s.store, d, artifactType)
		if err != nil || len(atts) == 0 {
			return nil, err
		}
		return atts[0].Data, nil
	}
	// By digest: the tag may have moved since the image was read.
	ref, err := digestRef(s.Ref, d)
	if err != nil {
		return nil, err
	}
	refs, err := s.reg.Referrers(ctx, ref, artifactType)
	if err != nil || len(refs) == 0 {
		return nil, err
	}
	return s.reg.ReadAttachment(ctx, ref, refs[0])
}

// LayoutAttachments reads the provenance and SBOM of the image digest from
// an OCI layout (what Build wrote there), to push them with it.
func LayoutAttachments(s *oci.Store, digest v1.Hash) ([]oci.Attachment, error) {
	var atts []oci.Attachment
	for _, t := range []string{ArtifactProvenance, ArtifactSBOM} {
		a, err := storeAttachments(s, digest, t)
		if err != nil {
			return nil, err
		}
		atts = append(atts, a...)
	}
	return atts, nil
}

// storeAttachments reads the attachments of artifactType to digest.
func storeAttachments(s *oci.Store, digest v1.Hash, artifactType string) ([]oci.Attachment, error) {
	refs, err := s.Referrers(digest, artifactType)
	if err != nil {
		return nil, err
	}
	var atts []oci.Attachment
	for _, r := range refs {
		data, err := s.ReadAttachment(r)
		if err != nil {
			return nil, err
		}
		atts = append(atts, oci.Attachment{ArtifactType: r.ArtifactType, MediaType: r.ArtifactType, Data: data, Annotations: r.Annotations})
	}
	return atts, nil
}

// verifyMarker is the file a layout lkbuild verify made holds: only such a
// layout's images are taken as rebuilds.
const verifyMarker = "lkbuild-verify"

// OpenVerifyLayout opens dir as the layout a verify rebuilds into: a new
// or empty directory, or one an earlier verify made, whose rebuild of the
// same inputs is then compared instead of building again. Any other
// layout (a build's output, the verified image's own) is refused: an image
// there under the rebuild's tag need not be a rebuild.
func OpenVerifyLayout(dir string) (*oci.Store, error) {
	ents, err := os.ReadDir(dir)
	switch {
	case err == nil && len(ents) > 0:
		if _, err := os.Stat(filepath.Join(dir, verifyMarker)); err != nil {
			return nil, fmt.Errorf("%s holds images lkbuild verify did not rebuild: give verify a new directory to keep its rebuild in", dir)
		}
	case err == nil || os.IsNotExist(err):
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
		text := "rebuilds by lkbuild verify: an image here is taken as the rebuild of its inputs\n"
		if err := os.WriteFile(filepath.Join(dir, verifyMarker), []byte(text), 0o644); err != nil {
			return nil, err
		}
	default:
		return nil, err
	}
	return oci.OpenStore(dir)
}

// digestRef is ref's repository at digest d.
func digestRef(ref string, d v1.Hash) (string, error) {
	n, err := name.ParseReference(ref)
	if err != nil {
		return "", err
	}
	return n.Context().Digest(d.String()).String(), nil
}

// CheckAttachedProvenance says what the provenance attached to the
// subject is: "none attached", "checked: it agrees with the image", or
// why it was not read or was refused (ReadStatement, Statement.Check). It
// does not fail the verify: the rebuild is what proves the image.
func CheckAttachedProvenance(ctx context.Context, s *Subject, rec *Recorded) string {
	data, err := s.Attachment(ctx, ArtifactProvenance)
	switch {
	case err != nil:
		return "not read: " + err.Error()
	case data == nil:
		return "none attached"
	}
	d, err := s.Image.Digest()
	if err != nil {
		return "not read: " + err.Error()
	}
	st, err := ReadStatement(data, d)
	if err == nil {
		err = st.Check(rec)
	}
	if err != nil {
		return "refused: " + err.Error()
	}
	return "checked: it agrees with the image"
}
