package oci

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/validate"
)

// This file reads lkbuild's layouts the way LinuxKit's CLI (v1.8.2, and
// master as of 2026-03) reads its cache, ~/.linuxkit/cache, an OCI
// layout. It is written for these tests from reading LinuxKit's
// src/cmd/linuxkit/cache (resolvabledescriptor.go FindRoot, find.go
// findImage and FindDescriptor, pull.go ValidateImage, write.go ImageLoad
// and DescriptorWrite) and util/reference.go, not copied from it:
//
//   - names are expanded first (util.ReferenceExpand): one path component
//     gets docker.io/library/, two whose first has no '.' or ':' and is
//     not localhost get docker.io/; the cache is then searched for an
//     index.json entry whose org.opencontainers.image.ref.name is exactly
//     that (go-containerregistry's match.Name);
//   - of the entries with the name, the first image wins, else the first
//     index; an image is taken as it is (no platform check); from an index
//     the first manifest whose platform has the wanted OS and architecture
//     (the variant is ignored);
//   - before a build uses a cached index it checks that it lists the
//     platform, reading the platform of every entry (an entry without one
//     makes LinuxKit dereference nil), and that entries with no platform
//     or unknown/unknown are complete images;
//   - `linuxkit cache import FILE` reads the tar's members named exactly
//     index.json and blobs/sha256/<hex> (so not ./index.json, which is
//     what `tar -C DIR -cf x.tar .` writes), copies the blobs, and for
//     each index.json entry with io.containerd.image.name writes that
//     entry under that name (as ref name), replacing an entry of the same
//     name; other entries are not registered.

// lkExpand is what LinuxKit makes of an image name in a yml or FROM line.
func lkExpand(ref string) string {
	parts := strings.Split(ref, "/")
	switch {
	case len(parts) == 1:
		return "docker.io/library/" + ref
	case len(parts) == 2 && !strings.ContainsAny(parts[0], ".:") && parts[0] != "localhost":
		return "docker.io/" + ref
	}
	return ref
}

// lkCache is a LinuxKit cache directory.
type lkCache string

func (c lkCache) index(t *testing.T) v1.ImageIndex {
	t.Helper()
	p, err := layout.FromPath(string(c))
	if err != nil {
		t.Fatal(err)
	}
	idx, err := p.ImageIndex()
	if err != nil {
		t.Fatal(err)
	}
	return idx
}

// root is FindRoot: the first image named n, else the first index.
func (c lkCache) root(t *testing.T, n string) (v1.Descriptor, bool) {
	t.Helper()
	im, err := c.index(t).IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []func(v1.Descriptor) bool{
		func(d v1.Descriptor) bool { return d.MediaType.IsImage() },
		func(d v1.Descriptor) bool { return d.MediaType.IsIndex() },
	} {
		for _, d := range im.Manifests {
			if d.Annotations[RefNameAnnotation] == n && want(d) {
				return d, true
			}
		}
	}
	return v1.Descriptor{}, false
}

// image is ValidateImage then findImage for name (as written in a yml)
// and linux/arch: the image LinuxKit would put into its build.
func (c lkCache) image(t *testing.T, name, arch string) (v1.Image, error) {
	t.Helper()
	n := lkExpand(name)
	root, ok := c.root(t, n)
	if !ok {
		return nil, fmt.Errorf("%s: not in the cache, linuxkit would pull it", n)
	}
	idx := c.index(t)
	if root.MediaType.IsImage() {
		img, err := idx.Image(root.Digest)
		if err != nil {
			return nil, err
		}
		return img, validate.Image(img)
	}
	sub, err := idx.ImageIndex(root.Digest)
	if err != nil {
		return nil, err
	}
	im, err := sub.IndexManifest()
	if err != nil {
		return nil, err
	}
	var found *v1.Descriptor
	for i, m := range im.Manifests {
		if m.Platform == nil {
			return nil, fmt.Errorf("%s: entry %s has no platform: linuxkit would crash", n, m.Digest)
		}
		if m.Platform.OS == "unknown" && m.Platform.Architecture == "unknown" {
			if _, err := sub.Image(m.Digest); err != nil {
				return nil, err
			}
		}
		if found == nil && m.Platform.OS == "linux" && m.Platform.Architecture == arch {
			found = &im.Manifests[i]
		}
	}
	if found == nil {
		return nil, fmt.Errorf("%s: index has no linux/%s", n, arch)
	}
	img, err := sub.Image(found.Digest)
	if err != nil {
		return nil, err
	}
	return img, validate.Image(img)
}

// lkImport is `linuxkit cache import` of the tar r into the cache.
func (c lkCache) lkImport(t *testing.T, r io.Reader) (registered []string) {
	t.Helper()
	p, err := layout.FromPath(string(c))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(r)
	var index []byte
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		parts := strings.Split(h.Name, "/")
		switch {
		case h.Typeflag == tar.TypeDir:
		case h.Name == "index.json":
			if index, err = io.ReadAll(tr); err != nil {
				t.Fatal(err)
			}
		case strings.HasPrefix(h.Name, "blobs/sha256/") && len(parts) == 3:
			hash, err := v1.NewHash("sha256:" + parts[2])
			if err != nil {
				t.Fatal(err)
			}
			if err := p.WriteBlob(hash, io.NopCloser(tr)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if index == nil {
		return nil
	}
	im, err := v1.ParseIndexManifest(bytes.NewReader(index))
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range im.Manifests {
		n, ok := d.Annotations[ContainerdNameAnnotation]
		if !ok {
			continue
		}
		d.Annotations[RefNameAnnotation] = n
		if err := p.RemoveDescriptors(func(e v1.Descriptor) bool { return e.Annotations[RefNameAnnotation] == n }); err != nil {
			t.Fatal(err)
		}
		if err := p.AppendDescriptor(d); err != nil {
			t.Fatal(err)
		}
		registered = append(registered, n)
	}
	return registered
}

// tarLayout tars the layout at dir as `tar -C dir -cf - oci-layout
// index.json blobs` does, or with prefix "./" as `tar -C dir -cf - .`.
func tarLayout(t *testing.T, dir, prefix string) *bytes.Buffer {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, top := range []string{"oci-layout", "index.json", "blobs"} {
		err := filepath.WalkDir(filepath.Join(dir, top), func(path string, e fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			rel, err := filepath.Rel(dir, path)
			if err != nil {
				return err
			}
			fi, err := e.Info()
			if err != nil {
				return err
			}
			h, err := tar.FileInfoHeader(fi, "")
			if err != nil {
				return err
			}
			h.Name = prefix + filepath.ToSlash(rel)
			if e.IsDir() {
				h.Name += "/"
			}
			if err := tw.WriteHeader(h); err != nil {
				return err
			}
			if e.IsDir() {
				return nil
			}
			data, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			_, err = tw.Write(data)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return &buf
}

// TestLinuxKitCacheReadsLayout: the layout lkbuild writes (kernels for two
// arches, the builder under V-builder, attachments) is read by LinuxKit's
// cache code as it is (lkbuild build --output ~/.linuxkit/cache) and after
// linuxkit cache import of its tar: the names a yml or FROM line gives
// find the right image for each arch.
func TestLinuxKitCacheReadsLayout(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t)
	imgs := map[string]v1.Image{"amd64": kernelImage(t, amd64, "a"), "arm64": kernelImage(t, arm64, "b")}
	builders := map[string]v1.Image{"amd64": kernelImage(t, amd64, "builder-a"), "arm64": kernelImage(t, arm64, "builder-b")}
	for arch, img := range imgs {
		e := kernelEntry(img, linux(arch), "linuxkit/kernel", "6.12.117", "abc")
		b := LayoutEntry{Image: builders[arch], Platform: linux(arch), Indexes: []LayoutIndex{{Name: "linuxkit/kernel:6.12.117-builder"}}}
		if err := s.Publish(ctx, e, b); err != nil {
			t.Fatal(err)
		}
		subject, err := DescriptorOf(img)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Attach(ctx, subject, Attachment{ArtifactType: "application/spdx+json", Data: []byte(`{"arch":"` + arch + `"}`)}); err != nil {
			t.Fatal(err)
		}
	}
	wantNames := []string{
		"docker.io/linuxkit/kernel:6.12.117", "docker.io/linuxkit/kernel:6.12.117-abc",
		"docker.io/linuxkit/kernel:6.12.117-abc-amd64", "docker.io/linuxkit/kernel:6.12.117-abc-arm64",
		"docker.io/linuxkit/kernel:6.12.117-amd64", "docker.io/linuxkit/kernel:6.12.117-arm64",
		"docker.io/linuxkit/kernel:6.12.117-builder",
	}

	imported := func(t *testing.T, prefix string) (lkCache, []string) {
		dir := t.TempDir()
		if _, err := layout.Write(dir, empty.Index); err != nil {
			t.Fatal(err)
		}
		c := lkCache(dir)
		return c, c.lkImport(t, tarLayout(t, s.Dir(), prefix))
	}
	for _, tc := range []struct {
		name  string
		cache func(t *testing.T) lkCache
	}{
		{"written into the cache", func(*testing.T) lkCache { return lkCache(s.Dir()) }},
		{"cache import", func(t *testing.T) lkCache {
			c, reg := imported(t, "")
			if got := strings.Join(slices.Sorted(slices.Values(reg)), " "); got != strings.Join(wantNames, " ") {
				t.Errorf("import registered %s\nwant %s", got, strings.Join(wantNames, " "))
			}
			return c
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := tc.cache(t)
			for _, q := range []struct{ name, arch, want string }{
				{"linuxkit/kernel:6.12.117", "amd64", "amd64"},
				{"linuxkit/kernel:6.12.117", "arm64", "arm64"},
				{"linuxkit/kernel:6.12.117-abc", "arm64", "arm64"},
				{"linuxkit/kernel:6.12.117-abc-amd64", "amd64", "amd64"},
				{"docker.io/linuxkit/kernel:6.12.117-arm64", "arm64", "arm64"},
				{"linuxkit/kernel:6.12.117-builder", "arm64", "builder-arm64"},
				{"linuxkit/kernel:6.12.117", "riscv64", ""},
				{"linuxkit/kernel:6.12.118", "amd64", ""},
			} {
				img, err := c.image(t, q.name, q.arch)
				switch {
				case q.want == "" && err == nil:
					t.Errorf("%s for %s: found, want it missing", q.name, q.arch)
				case q.want == "":
				case err != nil:
					t.Errorf("%s for %s: %v", q.name, q.arch, err)
				default:
					want := imgs[q.want]
					if b, ok := strings.CutPrefix(q.want, "builder-"); ok {
						want = builders[b]
					}
					if digest(t, img) != digest(t, want) {
						t.Errorf("%s for %s: %s, want the %s image", q.name, q.arch, digest(t, img), q.want)
					}
				}
			}
		})
	}

	// `tar -C DIR -cf x.tar .` names every member ./...: LinuxKit imports
	// nothing from it (the README says which tar command to use).
	if _, reg := imported(t, "./"); len(reg) != 0 {
		t.Errorf("import of a ./ tar registered %v; LinuxKit's import matches exact member names", reg)
	}
}
