package oci

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// RefNameAnnotation names an image in an OCI layout's index.json.
const RefNameAnnotation = "org.opencontainers.image.ref.name"

// ImageSpec describes an image to assemble from layers.
type ImageSpec struct {
	Platform v1.Platform
	// Created is the image's creation time and the time of every history
	// entry; use the build's epoch, never the wall clock.
	Created time.Time
	// Labels go into the config (what `docker inspect` shows).
	Labels map[string]string
	// Annotations go onto the manifest.
	Annotations map[string]string
	Layers      []ImageLayer
}

// ImageLayer is one layer with the history entry that explains it.
type ImageLayer struct {
	Layer     v1.Layer
	CreatedBy string
	Comment   string
}

// imageConfig is the OCI image config as lkbuild writes it. It is our own
// type rather than v1.ConfigFile because LinuxKit's kernel images carry an
// explicit empty Entrypoint and Cmd, which v1.Config omits.
type imageConfig struct {
	Created      v1.Time           `json:"created"`
	Architecture string            `json:"architecture"`
	Variant      string            `json:"variant,omitempty"`
	OS           string            `json:"os"`
	Config       imageConfigConfig `json:"config"`
	RootFS       v1.RootFS         `json:"rootfs"`
	History      []v1.History      `json:"history"`
}

type imageConfigConfig struct {
	Entrypoint []string          `json:"Entrypoint"`
	Cmd        []string          `json:"Cmd"`
	WorkingDir string            `json:"WorkingDir"`
	Labels     map[string]string `json:"Labels,omitempty"`
}

// NewImage assembles an OCI image from spec. The result depends only on the
// spec: the same layers, labels, annotations and time give the same digest.
func NewImage(spec ImageSpec) (v1.Image, error) {
	if spec.Platform.OS == "" || spec.Platform.Architecture == "" {
		return nil, errors.New("new image: platform needs os and architecture")
	}
	created := v1.Time{Time: spec.Created.UTC().Truncate(time.Second)}
	cfg := imageConfig{
		Created:      created,
		Architecture: spec.Platform.Architecture,
		Variant:      spec.Platform.Variant,
		OS:           spec.Platform.OS,
		Config: imageConfigConfig{
			Entrypoint: []string{},
			Cmd:        []string{},
			WorkingDir: "/",
			Labels:     spec.Labels,
		},
		RootFS:  v1.RootFS{Type: "layers", DiffIDs: []v1.Hash{}},
		History: []v1.History{},
	}
	m := v1.Manifest{
		SchemaVersion: 2,
		MediaType:     types.OCIManifestSchema1,
		Annotations:   spec.Annotations,
		Layers:        []v1.Descriptor{},
	}
	layers := map[v1.Hash]v1.Layer{}
	for i, il := range spec.Layers {
		l := il.Layer
		diffID, err := l.DiffID()
		if err != nil {
			return nil, fmt.Errorf("new image: layer %d diff id: %w", i, err)
		}
		desc, err := partial.Descriptor(l)
		if err != nil {
			return nil, fmt.Errorf("new image: layer %d: %w", i, err)
		}
		cfg.RootFS.DiffIDs = append(cfg.RootFS.DiffIDs, diffID)
		cfg.History = append(cfg.History, v1.History{Created: created, CreatedBy: il.CreatedBy, Comment: il.Comment})
		m.Layers = append(m.Layers, v1.Descriptor{MediaType: desc.MediaType, Size: desc.Size, Digest: desc.Digest})
		layers[desc.Digest] = l
	}
	rawCfg, err := json.Marshal(cfg)
	if err != nil {
		return nil, fmt.Errorf("new image: config: %w", err)
	}
	m.Config = v1.Descriptor{MediaType: types.OCIConfigJSON, Size: int64(len(rawCfg)), Digest: digestOf(rawCfg)}
	rawManifest, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("new image: manifest: %w", err)
	}
	img, err := partial.CompressedToImage(&builtImage{config: rawCfg, manifest: rawManifest, mediaType: types.OCIManifestSchema1, layers: layers})
	if err != nil {
		return nil, fmt.Errorf("new image: %w", err)
	}
	return img, nil
}

// builtImage is an image given by its exact config and manifest bytes.
type builtImage struct {
	config    []byte
	manifest  []byte
	mediaType types.MediaType
	layers    map[v1.Hash]v1.Layer
}

var _ partial.CompressedImageCore = (*builtImage)(nil)

func (b *builtImage) RawConfigFile() ([]byte, error)      { return b.config, nil }
func (b *builtImage) MediaType() (types.MediaType, error) { return b.mediaType, nil }
func (b *builtImage) RawManifest() ([]byte, error)        { return b.manifest, nil }
func (b *builtImage) LayerByDigest(h v1.Hash) (partial.CompressedLayer, error) {
	l, ok := b.layers[h]
	if !ok {
		return nil, fmt.Errorf("no layer %s in image", h)
	}
	return l, nil
}

// WriteLayout stores img and names it in the layout's index.json with
// each of names exactly as given (the org.opencontainers.image.ref.name
// annotation), replacing whatever those names pointed to before. The
// platform is recorded on the index entry. Publish names kernel images the
// way LinuxKit and skopeo look them up; WriteLayout is for names lkbuild
// alone reads back (a bundle's, a builder image's --tag).
func (s *Store) WriteLayout(ctx context.Context, img v1.Image, p v1.Platform, names ...string) error {
	if err := s.WriteImage(ctx, img, nil); err != nil {
		return fmt.Errorf("write layout: %w", err)
	}
	desc, err := platformDescriptor(img, p)
	if err != nil {
		return fmt.Errorf("write layout: %w", err)
	}
	err = s.updateIndex(ctx, func(ms []v1.Descriptor) ([]v1.Descriptor, error) {
		for _, n := range names {
			ms = slices.DeleteFunc(ms, func(d v1.Descriptor) bool {
				return !isAlias(d) && d.Annotations[RefNameAnnotation] == n
			})
			d := desc
			d.Annotations = map[string]string{RefNameAnnotation: n}
			ms = append(ms, d)
		}
		return ms, nil
	})
	if err != nil {
		return fmt.Errorf("write layout: %w", err)
	}
	return nil
}
