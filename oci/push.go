package oci

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// ErrIndexContended is returned when MergeIndex kept losing its entry to
// concurrent writers of the same index.
var ErrIndexContended = errors.New("index changed by concurrent writers")

// Push uploads img to ref. Every blob and the manifest are uploaded by
// digest first; only then does the tag (if ref is a tag) move, so a failed
// push never leaves a tag pointing at an incomplete image. It returns the
// manifest digest.
func (r *Registry) Push(ctx context.Context, img v1.Image, ref string) (v1.Hash, error) {
	n, err := r.parse(ref)
	if err != nil {
		return v1.Hash{}, err
	}
	if err := r.online("push", ref); err != nil {
		return v1.Hash{}, err
	}
	d, err := img.Digest()
	if err != nil {
		return v1.Hash{}, fmt.Errorf("push %s: %w", ref, err)
	}
	opts := r.remoteOptions(ctx)
	if err := remote.Write(n.Context().Digest(d.String()), img, opts...); err != nil {
		return v1.Hash{}, fmt.Errorf("push %s: %w", ref, err)
	}
	if t, ok := n.(name.Tag); ok {
		if err := remote.Tag(t, img, opts...); err != nil {
			return v1.Hash{}, fmt.Errorf("tag %s: %w", ref, err)
		}
	}
	return d, nil
}

// Copy copies the image or index that src names to dst, registry-side:
// blobs already in dst's repository are skipped and, within one registry,
// layers are cross-repository mounted instead of downloaded and uploaded.
func (r *Registry) Copy(ctx context.Context, src, dst string) (v1.Hash, error) {
	s, err := r.parse(src)
	if err != nil {
		return v1.Hash{}, err
	}
	t, err := r.parse(dst)
	if err != nil {
		return v1.Hash{}, err
	}
	if err := r.online("copy to", dst); err != nil {
		return v1.Hash{}, err
	}
	opts := r.remoteOptions(ctx)
	desc, err := remote.Get(s, opts...)
	if err != nil {
		if isNotFound(err) {
			return v1.Hash{}, fmt.Errorf("copy %s: %w", src, ErrNotFound)
		}
		return v1.Hash{}, fmt.Errorf("copy %s: %w", src, err)
	}
	switch {
	case desc.MediaType.IsIndex():
		idx, err := desc.ImageIndex()
		if err != nil {
			return v1.Hash{}, fmt.Errorf("copy %s: %w", src, err)
		}
		if err := remote.WriteIndex(t, idx, opts...); err != nil {
			return v1.Hash{}, fmt.Errorf("copy %s to %s: %w", src, dst, err)
		}
	case desc.MediaType.IsImage():
		img, err := desc.Image()
		if err != nil {
			return v1.Hash{}, fmt.Errorf("copy %s: %w", src, err)
		}
		if err := remote.Write(t, img, opts...); err != nil {
			return v1.Hash{}, fmt.Errorf("copy %s to %s: %w", src, dst, err)
		}
	default:
		return v1.Hash{}, fmt.Errorf("copy %s: unsupported media type %s", src, desc.MediaType)
	}
	return desc.Digest, nil
}

// MergeIndex makes the multi-platform index at indexRef point to img for
// platform p, keeping the entries of every other platform the index already
// holds. The image is pushed by digest into the index's repository first.
//
// Registries offer no compare-and-swap on tags, so two runs merging
// different platforms at once could each overwrite the other's entry. To
// catch that, MergeIndex reads the index back right after writing it and
// again after a settle delay, and merges again whenever its entry is gone.
func (r *Registry) MergeIndex(ctx context.Context, indexRef string, img v1.Image, p v1.Platform) (v1.Hash, error) {
	n, err := r.parse(indexRef)
	if err != nil {
		return v1.Hash{}, err
	}
	tag, ok := n.(name.Tag)
	if !ok {
		return v1.Hash{}, fmt.Errorf("merge index %s: not a tag", indexRef)
	}
	if err := r.online("merge index", indexRef); err != nil {
		return v1.Hash{}, err
	}
	entry, err := platformDescriptor(img, p)
	if err != nil {
		return v1.Hash{}, fmt.Errorf("merge index %s: %w", indexRef, err)
	}
	opts := r.remoteOptions(ctx)
	if err := remote.Write(tag.Context().Digest(entry.Digest.String()), img, opts...); err != nil {
		return v1.Hash{}, fmt.Errorf("merge index %s: push image: %w", indexRef, err)
	}
	for try := 0; try < r.o.mergeTries; try++ {
		if try > 0 {
			// Back off with jitter so two contending writers fall apart.
			wait := time.Duration(50+rand.IntN(250)) * time.Millisecond * time.Duration(try)
			if err := sleepCtx(ctx, wait); err != nil {
				return v1.Hash{}, err
			}
		}
		existing, err := r.readIndexEntries(tag, opts)
		if err != nil {
			return v1.Hash{}, fmt.Errorf("merge index %s: %w", indexRef, err)
		}
		raw, err := mergedIndex(existing, entry)
		if err != nil {
			return v1.Hash{}, fmt.Errorf("merge index %s: %w", indexRef, err)
		}
		if err := remote.Put(tag, rawIndex(raw), opts...); err != nil {
			return v1.Hash{}, fmt.Errorf("merge index %s: write: %w", indexRef, err)
		}
		held, err := r.holds(tag, entry, opts)
		if err != nil {
			return v1.Hash{}, fmt.Errorf("merge index %s: read back: %w", indexRef, err)
		}
		if !held {
			continue
		}
		if err := sleepCtx(ctx, r.o.settle); err != nil {
			return v1.Hash{}, err
		}
		held, err = r.holds(tag, entry, opts)
		if err != nil {
			return v1.Hash{}, fmt.Errorf("merge index %s: read back: %w", indexRef, err)
		}
		if held {
			return digestOf(raw), nil
		}
	}
	return v1.Hash{}, fmt.Errorf("merge index %s after %d tries: %w", indexRef, r.o.mergeTries, ErrIndexContended)
}

// readIndexEntries returns the manifests the tag holds now: the entries of
// an index, a single image as one entry with its config's platform, or
// nothing when the tag does not exist.
func (r *Registry) readIndexEntries(tag name.Tag, opts []remote.Option) ([]v1.Descriptor, error) {
	desc, err := remote.Get(tag, opts...)
	if err != nil {
		if isNotFound(err) {
			return nil, nil
		}
		return nil, err
	}
	if desc.MediaType.IsIndex() {
		var im v1.IndexManifest
		if err := json.Unmarshal(desc.Manifest, &im); err != nil {
			return nil, fmt.Errorf("parse index: %w", err)
		}
		return im.Manifests, nil
	}
	if !desc.MediaType.IsImage() {
		return nil, fmt.Errorf("tag holds unsupported media type %s", desc.MediaType)
	}
	img, err := desc.Image()
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("read config of existing image: %w", err)
	}
	return []v1.Descriptor{{
		MediaType: desc.MediaType,
		Size:      desc.Size,
		Digest:    desc.Digest,
		Platform:  &v1.Platform{OS: cf.OS, Architecture: cf.Architecture, Variant: cf.Variant},
	}}, nil
}

// IndexHolds reports whether the tag indexRef holds img for platform p: an
// index with that entry, or the image itself.
func (r *Registry) IndexHolds(ctx context.Context, indexRef string, img v1.Image, p v1.Platform) (bool, error) {
	n, err := r.parse(indexRef)
	if err != nil {
		return false, err
	}
	tag, ok := n.(name.Tag)
	if !ok {
		return false, fmt.Errorf("index %s: not a tag", indexRef)
	}
	if err := r.online("read index", indexRef); err != nil {
		return false, err
	}
	entry, err := platformDescriptor(img, p)
	if err != nil {
		return false, fmt.Errorf("index %s: %w", indexRef, err)
	}
	held, err := r.holds(tag, entry, r.remoteOptions(ctx))
	if err != nil {
		return false, fmt.Errorf("index %s: %w", indexRef, err)
	}
	return held, nil
}

// holds reports whether the index at tag has entry for entry's platform.
func (r *Registry) holds(tag name.Tag, entry v1.Descriptor, opts []remote.Option) (bool, error) {
	entries, err := r.readIndexEntries(tag, opts)
	if err != nil {
		return false, err
	}
	for _, e := range entries {
		if e.Digest == entry.Digest && e.Platform != nil && e.Platform.Equals(*entry.Platform) {
			return true, nil
		}
	}
	return false, nil
}

// mergedIndex builds the index bytes: existing entries minus any for the
// entry's platform, plus the entry, sorted by platform so the same set of
// manifests always gives the same index digest.
func mergedIndex(existing []v1.Descriptor, entry v1.Descriptor) ([]byte, error) {
	entries := []v1.Descriptor{entry}
	for _, e := range existing {
		if e.Platform != nil && e.Platform.Equals(*entry.Platform) {
			continue
		}
		entries = append(entries, e)
	}
	slices.SortStableFunc(entries, func(a, b v1.Descriptor) int {
		return strings.Compare(platformKey(a), platformKey(b))
	})
	return json.Marshal(v1.IndexManifest{
		SchemaVersion: 2,
		MediaType:     types.OCIImageIndex,
		Manifests:     entries,
	})
}

func platformKey(d v1.Descriptor) string {
	if d.Platform == nil {
		return "~" + d.Digest.String() // entries without platform last
	}
	return d.Platform.String()
}

func platformDescriptor(img v1.Image, p v1.Platform) (v1.Descriptor, error) {
	mt, err := img.MediaType()
	if err != nil {
		return v1.Descriptor{}, err
	}
	size, err := img.Size()
	if err != nil {
		return v1.Descriptor{}, err
	}
	d, err := img.Digest()
	if err != nil {
		return v1.Descriptor{}, err
	}
	return v1.Descriptor{MediaType: mt, Size: size, Digest: d, Platform: &p}, nil
}

func digestOf(b []byte) v1.Hash {
	sum := sha256.Sum256(b)
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])}
}

// rawIndex is an OCI index given as its exact bytes.
type rawIndex []byte

func (r rawIndex) RawManifest() ([]byte, error)        { return r, nil }
func (r rawIndex) MediaType() (types.MediaType, error) { return types.OCIImageIndex, nil }
