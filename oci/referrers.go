package oci

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// An attachment (OCI 1.1 "referrer") is an artifact manifest whose subject
// is the image it describes: attaching leaves the image, and so its
// digest, as it was. A registry lists an image's referrers through the
// referrers API (GET /v2/<repo>/referrers/<digest>) or, when it has none
// (Distribution 2.8), through the referrers tag schema: an image index
// under the tag sha256-<hex> that each writer of a referrer updates.
// go-containerregistry's remote.Write maintains that tag whenever it
// pushes a manifest with a subject, and remote.Referrers reads whichever
// of the two the registry has.
//
// An OCI layout has no referrers API. Store keeps an artifact's manifest
// and blobs in the layout and lists the manifest in index.json without a
// ref name annotation, so that tools that list the layout's images by name
// do not see it.

// maxReferrers is how many referrers of one image Registry.Referrers
// reads.
const maxReferrers = 256

// MaxAttachmentSize is the largest document NewArtifact takes and
// ReadAttachment reads.
const MaxAttachmentSize = 64 << 20

// maxReferrerManifest bounds the manifests Store reads to find and read
// attachments: registries refuse manifests over 4 MiB.
const maxReferrerManifest = 4 << 20

// emptyJSON is the OCI 1.1 empty descriptor's content, the config of an
// artifact that needs none.
const emptyJSON = "{}"

// Attachment is a document attached to an image.
type Attachment struct {
	// ArtifactType says what the document is, such as
	// "application/vnd.in-toto+json" or "application/spdx+json".
	ArtifactType string
	// MediaType is the media type of the document itself, the artifact's
	// only layer. The default is ArtifactType.
	MediaType string
	// Data is the document, at most MaxAttachmentSize bytes.
	Data []byte
	// Annotations go onto the artifact manifest. Like the rest of the
	// attachment they decide its digest: pass a fixed
	// org.opencontainers.image.created, never the wall clock.
	Annotations map[string]string
}

// Referrer is an attachment found for a subject.
type Referrer struct {
	// Descriptor is the artifact manifest's.
	Descriptor   v1.Descriptor
	ArtifactType string
	// Annotations are the artifact manifest's.
	Annotations map[string]string
}

// NewArtifact returns the OCI artifact that attaches a to subject: an OCI
// image manifest with artifactType set, the empty config
// (application/vnd.oci.empty.v1+json, "{}"), one layer holding a.Data and
// subject's media type, digest and size as its subject. The same subject
// and attachment always give the same digest.
func NewArtifact(subject v1.Descriptor, a Attachment) (v1.Image, error) {
	if a.ArtifactType == "" {
		return nil, errors.New("new artifact: no artifact type")
	}
	if subject.MediaType == "" || subject.Digest == (v1.Hash{}) || subject.Size <= 0 {
		return nil, fmt.Errorf("new artifact %s: subject needs media type, digest and size", a.ArtifactType)
	}
	if len(a.Data) > MaxAttachmentSize {
		return nil, fmt.Errorf("new artifact %s: %d bytes, over the limit of %d", a.ArtifactType, len(a.Data), MaxAttachmentSize)
	}
	mt := types.MediaType(a.MediaType)
	if mt == "" {
		mt = types.MediaType(a.ArtifactType)
	}
	doc := static.NewLayer(a.Data, mt)
	d, err := doc.Digest()
	if err != nil {
		return nil, fmt.Errorf("new artifact %s: %w", a.ArtifactType, err)
	}
	m := v1.Manifest{
		SchemaVersion: 2,
		MediaType:     types.OCIManifestSchema1,
		ArtifactType:  a.ArtifactType,
		Config:        v1.Descriptor{MediaType: types.OCIEmptyJSON, Size: int64(len(emptyJSON)), Digest: digestOf([]byte(emptyJSON))},
		Layers:        []v1.Descriptor{{MediaType: mt, Size: int64(len(a.Data)), Digest: d}},
		Annotations:   a.Annotations,
		Subject:       &v1.Descriptor{MediaType: subject.MediaType, Size: subject.Size, Digest: subject.Digest},
	}
	raw, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("new artifact %s: %w", a.ArtifactType, err)
	}
	img, err := partial.CompressedToImage(&builtImage{
		config:    []byte(emptyJSON),
		manifest:  raw,
		mediaType: types.OCIManifestSchema1,
		layers:    map[v1.Hash]v1.Layer{d: doc},
	})
	if err != nil {
		return nil, fmt.Errorf("new artifact %s: %w", a.ArtifactType, err)
	}
	return img, nil
}

// DescriptorOf returns img's descriptor as an attachment's subject:
// media type, size and digest.
func DescriptorOf(img v1.Image) (v1.Descriptor, error) {
	mt, err := img.MediaType()
	if err != nil {
		return v1.Descriptor{}, fmt.Errorf("image media type: %w", err)
	}
	size, err := img.Size()
	if err != nil {
		return v1.Descriptor{}, fmt.Errorf("image manifest size: %w", err)
	}
	d, err := img.Digest()
	if err != nil {
		return v1.Descriptor{}, fmt.Errorf("image digest: %w", err)
	}
	return v1.Descriptor{MediaType: mt, Size: size, Digest: d}, nil
}

// artifactTypeOf is a referrer's artifact type as the distribution spec
// defines it: the manifest's artifactType, else its config's media type.
func artifactTypeOf(m *v1.Manifest) string {
	if m.ArtifactType != "" {
		return m.ArtifactType
	}
	return string(m.Config.MediaType)
}

// documentOf returns the descriptor of an attachment's document: its
// manifest's only layer, within MaxAttachmentSize.
func documentOf(raw []byte) (v1.Descriptor, error) {
	m, err := v1.ParseManifest(bytes.NewReader(raw))
	if err != nil {
		return v1.Descriptor{}, fmt.Errorf("parse artifact manifest: %w", err)
	}
	if len(m.Layers) != 1 {
		return v1.Descriptor{}, fmt.Errorf("artifact has %d layers, want 1", len(m.Layers))
	}
	l := m.Layers[0]
	if l.Size < 0 || l.Size > MaxAttachmentSize {
		return v1.Descriptor{}, fmt.Errorf("document %s of %d bytes: over the limit of %d", l.Digest, l.Size, MaxAttachmentSize)
	}
	return l, nil
}

// readBlob reads the blob that d describes from r: no more than its size
// plus one byte, checked against its size and digest.
func readBlob(r io.Reader, d v1.Descriptor) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, d.Size+1))
	if int64(len(data)) > d.Size {
		return nil, fmt.Errorf("blob %s: more than its %d bytes: %w", d.Digest, d.Size, ErrDigestMismatch)
	}
	// Checked before the read error: a reader that verifies digests
	// itself (go-containerregistry's) fails at the end of a wrong body,
	// and this says why.
	if int64(len(data)) == d.Size {
		if got := digestOf(data); got != d.Digest {
			return nil, fmt.Errorf("blob %s: content hashes to %s: %w", d.Digest, got, ErrDigestMismatch)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("blob %s: %w", d.Digest, err)
	}
	if int64(len(data)) != d.Size {
		return nil, fmt.Errorf("blob %s: %d bytes, want %d: %w", d.Digest, len(data), d.Size, ErrDigestMismatch)
	}
	return data, nil
}

func sortReferrers(refs []Referrer) {
	slices.SortFunc(refs, func(a, b Referrer) int {
		return strings.Compare(a.Descriptor.Digest.String(), b.Descriptor.Digest.String())
	})
}

// resolve returns the descriptor n names, asking the registry itself: a
// mirror serves pulls, and its copy may lag behind what attachments are
// about.
func resolve(op string, n name.Reference, opts []remote.Option) (v1.Descriptor, error) {
	d, err := remote.Head(n, opts...)
	if err != nil {
		if isNotFound(err) {
			return v1.Descriptor{}, fmt.Errorf("%s %s: %w", op, n, ErrNotFound)
		}
		return v1.Descriptor{}, fmt.Errorf("%s %s: %w", op, n, err)
	}
	return *d, nil
}

// Attach pushes a as an artifact whose subject is the image (or index)
// subjectRef names, a tag or a digest, into the same repository, by
// digest. The image is left as it is. A registry without the referrers API
// gets the artifact listed under the referrers tag (sha256-<hex>) too.
// It returns the artifact manifest's digest.
func (r *Registry) Attach(ctx context.Context, subjectRef string, a Attachment) (v1.Hash, error) {
	n, err := r.parse(subjectRef)
	if err != nil {
		return v1.Hash{}, err
	}
	if err := r.online("attach to", subjectRef); err != nil {
		return v1.Hash{}, err
	}
	opts := r.remoteOptions(ctx)
	subject, err := resolve("attach to", n, opts)
	if err != nil {
		return v1.Hash{}, err
	}
	img, err := NewArtifact(subject, a)
	if err != nil {
		return v1.Hash{}, fmt.Errorf("attach to %s: %w", subjectRef, err)
	}
	d, err := img.Digest()
	if err != nil {
		return v1.Hash{}, fmt.Errorf("attach to %s: %w", subjectRef, err)
	}
	// remote.Write sees the subject and, when the registry has no
	// referrers API, adds the artifact to the referrers tag.
	if err := remote.Write(n.Context().Digest(d.String()), img, opts...); err != nil {
		return v1.Hash{}, fmt.Errorf("attach %s to %s: %w", a.ArtifactType, subjectRef, err)
	}
	return d, nil
}

// Referrers lists the attachments of the manifest ref names (a tag or a
// digest) whose artifact type is artifactType, or of every type for "".
// It uses the registry's referrers API or, without one, the referrers tag.
// Each artifact's manifest is read to check that its subject is ref's
// manifest (the referrers tag is written by clients, so anyone who can
// push may list anything there) and to take its artifact type and
// annotations from the manifest itself, not from the listing. The result
// is sorted by digest.
func (r *Registry) Referrers(ctx context.Context, ref string, artifactType string) ([]Referrer, error) {
	n, err := r.parse(ref)
	if err != nil {
		return nil, err
	}
	if err := r.online("referrers of", ref); err != nil {
		return nil, err
	}
	opts := r.remoteOptions(ctx)
	subject, ok := n.(name.Digest)
	if !ok {
		desc, err := resolve("referrers of", n, opts)
		if err != nil {
			return nil, err
		}
		subject = n.Context().Digest(desc.Digest.String())
	}
	want, err := v1.NewHash(subject.DigestStr())
	if err != nil {
		return nil, fmt.Errorf("referrers of %s: %w", ref, err)
	}
	idx, err := remote.Referrers(subject, opts...)
	if err != nil {
		return nil, fmt.Errorf("referrers of %s: %w", ref, err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, fmt.Errorf("referrers of %s: %w", ref, err)
	}
	// Anyone who may push to the repository writes the listing (the
	// fallback tag): each entry costs a request, so only so many are read.
	if len(im.Manifests) > maxReferrers {
		return nil, fmt.Errorf("referrers of %s: %d listed, more than the %d read", ref, len(im.Manifests), maxReferrers)
	}
	var out []Referrer
	for _, d := range im.Manifests {
		// A listing that names another type is believed, which saves a
		// request. One that names the empty config's type has taken the
		// config's media type for the artifact's (go-containerregistry's
		// own registry does): only the manifest can tell.
		if artifactType != "" && d.ArtifactType != "" && d.ArtifactType != string(types.OCIEmptyJSON) && d.ArtifactType != artifactType {
			continue
		}
		got, err := remote.Get(n.Context().Digest(d.Digest.String()), opts...)
		if err != nil {
			if isNotFound(err) {
				continue // listed, then deleted: the referrers tag keeps it
			}
			return nil, fmt.Errorf("referrers of %s: read %s: %w", ref, d.Digest, err)
		}
		var m v1.Manifest
		if err := json.Unmarshal(got.Manifest, &m); err != nil {
			return nil, fmt.Errorf("referrers of %s: parse %s: %w", ref, d.Digest, err)
		}
		if m.Subject == nil || m.Subject.Digest != want {
			continue
		}
		at := artifactTypeOf(&m)
		if artifactType != "" && at != artifactType {
			continue
		}
		out = append(out, Referrer{
			Descriptor:   v1.Descriptor{MediaType: got.MediaType, Size: got.Size, Digest: got.Digest, ArtifactType: at, Annotations: m.Annotations},
			ArtifactType: at,
			Annotations:  m.Annotations,
		})
	}
	sortReferrers(out)
	return out, nil
}

// ReadAttachment returns the document of the attachment ref, found in repo
// (a repository, or any reference in it such as the subject's). The
// artifact must have one layer, of at most MaxAttachmentSize bytes; the
// manifest and the document are checked against their digests.
func (r *Registry) ReadAttachment(ctx context.Context, repo string, ref Referrer) ([]byte, error) {
	n, err := r.parse(repo)
	if err != nil {
		return nil, err
	}
	if err := r.online("read attachment from", repo); err != nil {
		return nil, err
	}
	at := n.Context().Digest(ref.Descriptor.Digest.String())
	opts := r.remoteOptions(ctx)
	// A digest reference makes remote.Get check the manifest's digest.
	got, err := remote.Get(at, opts...)
	if err != nil {
		if isNotFound(err) {
			return nil, fmt.Errorf("read attachment %s: %w", at, ErrNotFound)
		}
		return nil, fmt.Errorf("read attachment %s: %w", at, err)
	}
	doc, err := documentOf(got.Manifest)
	if err != nil {
		return nil, fmt.Errorf("read attachment %s: %w", at, err)
	}
	l, err := remote.Layer(n.Context().Digest(doc.Digest.String()), opts...)
	if err != nil {
		return nil, fmt.Errorf("read attachment %s: %w", at, err)
	}
	rc, err := l.Compressed()
	if err != nil {
		return nil, fmt.Errorf("read attachment %s: %w", at, err)
	}
	defer rc.Close()
	data, err := readBlob(rc, doc)
	if err != nil {
		return nil, fmt.Errorf("read attachment %s: %w", at, err)
	}
	return data, nil
}

// Attach stores a as an artifact whose subject is the manifest subject
// describes, and lists it in the layout's index.json, with its artifact
// type and without a ref name, in place of any earlier attachment of the
// same artifact type to the same subject (a rebuild's provenance replaces
// the last one's). Attaching the same document again changes nothing. It
// returns the artifact manifest's digest.
func (s *Store) Attach(ctx context.Context, subject v1.Descriptor, a Attachment) (v1.Hash, error) {
	img, err := NewArtifact(subject, a)
	if err != nil {
		return v1.Hash{}, fmt.Errorf("attach: %w", err)
	}
	if err := s.WriteImage(ctx, img, nil); err != nil {
		return v1.Hash{}, fmt.Errorf("attach %s to %s: %w", a.ArtifactType, subject.Digest, err)
	}
	desc, err := partial.Descriptor(img)
	if err != nil {
		return v1.Hash{}, fmt.Errorf("attach %s to %s: %w", a.ArtifactType, subject.Digest, err)
	}
	entry := v1.Descriptor{MediaType: desc.MediaType, Size: desc.Size, Digest: desc.Digest, ArtifactType: a.ArtifactType}
	err = s.updateIndex(ctx, func(ms []v1.Descriptor) ([]v1.Descriptor, error) {
		for _, d := range ms {
			if d.Digest == desc.Digest && d.Annotations[RefNameAnnotation] == "" {
				return ms, nil
			}
		}
		earlier, err := s.referrersIn(ms, subject.Digest, a.ArtifactType)
		if err != nil {
			return nil, err
		}
		ms = slices.DeleteFunc(ms, func(d v1.Descriptor) bool {
			return slices.ContainsFunc(earlier, func(r Referrer) bool { return r.Descriptor.Digest == d.Digest })
		})
		return append(ms, entry), nil
	})
	if err != nil {
		return v1.Hash{}, fmt.Errorf("attach %s to %s: %w", a.ArtifactType, subject.Digest, err)
	}
	return desc.Digest, nil
}

func (s *Store) indexManifest() (*v1.IndexManifest, error) {
	idx, err := s.path.ImageIndex()
	if err != nil {
		return nil, fmt.Errorf("read layout index: %w", err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, fmt.Errorf("read layout index: %w", err)
	}
	return im, nil
}

// readManifest reads the manifest that d describes from the store,
// checked against d's size and digest.
func (s *Store) readManifest(d v1.Descriptor) ([]byte, error) {
	if d.Size < 0 || d.Size > maxReferrerManifest {
		return nil, fmt.Errorf("manifest %s of %d bytes: over the limit of %d", d.Digest, d.Size, maxReferrerManifest)
	}
	f, err := os.Open(s.BlobPath(d.Digest))
	if err != nil {
		return nil, fmt.Errorf("manifest %s: %w", d.Digest, err)
	}
	defer f.Close()
	return readBlob(f, d)
}

// Referrers lists the attachments in the layout whose subject is the
// manifest with digest subject and whose artifact type is artifactType,
// or of every type for "". It reads each manifest that index.json lists.
// The result is sorted by digest.
func (s *Store) Referrers(subject v1.Hash, artifactType string) ([]Referrer, error) {
	im, err := s.indexManifest()
	if err != nil {
		return nil, fmt.Errorf("referrers of %s: %w", subject, err)
	}
	return s.referrersIn(im.Manifests, subject, artifactType)
}

// referrersIn is Referrers over the index entries ms.
func (s *Store) referrersIn(ms []v1.Descriptor, subject v1.Hash, artifactType string) ([]Referrer, error) {
	var out []Referrer
	seen := map[v1.Hash]bool{}
	for _, d := range ms {
		// Only OCI manifests and indexes can have a subject.
		if (d.MediaType != types.OCIManifestSchema1 && d.MediaType != types.OCIImageIndex) || seen[d.Digest] {
			continue
		}
		seen[d.Digest] = true
		raw, err := s.readManifest(d)
		if err != nil {
			return nil, fmt.Errorf("referrers of %s: %w", subject, err)
		}
		var m v1.Manifest
		if err := json.Unmarshal(raw, &m); err != nil {
			return nil, fmt.Errorf("referrers of %s: parse %s: %w", subject, d.Digest, err)
		}
		if m.Subject == nil || m.Subject.Digest != subject {
			continue
		}
		at := artifactTypeOf(&m)
		if artifactType != "" && at != artifactType {
			continue
		}
		out = append(out, Referrer{
			Descriptor:   v1.Descriptor{MediaType: d.MediaType, Size: d.Size, Digest: d.Digest, ArtifactType: at, Annotations: m.Annotations},
			ArtifactType: at,
			Annotations:  m.Annotations,
		})
	}
	sortReferrers(out)
	return out, nil
}

// ReadAttachment returns the document of the attachment ref from the
// layout, checked against its digest.
func (s *Store) ReadAttachment(ref Referrer) ([]byte, error) {
	raw, err := s.readManifest(ref.Descriptor)
	if err != nil {
		return nil, fmt.Errorf("read attachment: %w", err)
	}
	doc, err := documentOf(raw)
	if err != nil {
		return nil, fmt.Errorf("read attachment %s: %w", ref.Descriptor.Digest, err)
	}
	f, err := os.Open(s.BlobPath(doc.Digest))
	if err != nil {
		return nil, fmt.Errorf("read attachment %s: %w", ref.Descriptor.Digest, err)
	}
	defer f.Close()
	data, err := readBlob(f, doc)
	if err != nil {
		return nil, fmt.Errorf("read attachment %s: %w", ref.Descriptor.Digest, err)
	}
	return data, nil
}
