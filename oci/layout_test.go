package oci

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/google/go-containerregistry/pkg/v1/validate"
)

// kernelImage is a small OCI image for p; seed makes different ones.
func kernelImage(t *testing.T, p v1.Platform, seed string) v1.Image {
	t.Helper()
	l, err := random.Layer(256, types.OCILayer)
	if err != nil {
		t.Fatal(err)
	}
	img, err := NewImage(ImageSpec{
		Platform: p, Created: time.Unix(1700000000, 0),
		Annotations: map[string]string{"seed": seed},
		Layers:      []ImageLayer{{Layer: l, CreatedBy: "test"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// kernelEntry is what lkbuild build publishes for repo, version v, series
// hash h and p's arch (builder.layoutEntries, LINUXKIT-COMPAT.md §5).
func kernelEntry(img v1.Image, p v1.Platform, repo, v, h string) LayoutEntry {
	gather := func(tag string) []string {
		var out []string
		for _, a := range []string{"amd64", "arm64", "riscv64"} {
			out = append(out, repo+":"+tag+"-"+a)
		}
		return out
	}
	return LayoutEntry{
		Image: img, Platform: p,
		Tags: []string{repo + ":" + v + "-" + h + "-" + p.Architecture, repo + ":" + v + "-" + p.Architecture},
		Indexes: []LayoutIndex{
			{Name: repo + ":" + v + "-" + h, Gather: gather(v + "-" + h)},
			{Name: repo + ":" + v, Gather: gather(v)},
		},
	}
}

func digest(t *testing.T, img v1.Image) v1.Hash {
	t.Helper()
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// named maps the ref names in the layout's index.json to their entries.
func named(t *testing.T, s *Store) map[string]v1.Descriptor {
	t.Helper()
	out := map[string]v1.Descriptor{}
	for _, d := range layoutIndex(t, s).Manifests {
		n := d.Annotations[RefNameAnnotation]
		if n == "" {
			continue
		}
		if _, dup := out[n]; dup {
			t.Errorf("%s is named twice in index.json", n)
		}
		out[n] = d
	}
	return out
}

// indexPlatforms reads the index d (from the layout) as platform -> digest.
func indexPlatforms(t *testing.T, s *Store, d v1.Descriptor) map[string]v1.Hash {
	t.Helper()
	if d.MediaType != types.OCIImageIndex {
		t.Fatalf("%s is %s, not an OCI index", d.Annotations[RefNameAnnotation], d.MediaType)
	}
	raw, err := os.ReadFile(s.BlobPath(d.Digest))
	if err != nil {
		t.Fatal(err)
	}
	var im v1.IndexManifest
	if err := json.Unmarshal(raw, &im); err != nil {
		t.Fatal(err)
	}
	out := map[string]v1.Hash{}
	for _, m := range im.Manifests {
		if m.Platform == nil {
			t.Fatalf("index %s lists %s without a platform", d.Digest, m.Digest)
		}
		out[m.Platform.String()] = m.Digest
	}
	return out
}

func TestQualifiedName(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"linuxkit/kernel:6.12.117-amd64", "docker.io/linuxkit/kernel:6.12.117-amd64"},
		{"docker.io/linuxkit/kernel:6.12.117", "docker.io/linuxkit/kernel:6.12.117"},
		{"index.docker.io/linuxkit/kernel:6.12.117", "docker.io/linuxkit/kernel:6.12.117"},
		{"alpine:3.20", "docker.io/library/alpine:3.20"},
		{"alpine", "docker.io/library/alpine:latest"},
		{"127.0.0.1:5000/e2e/kernel:6.12.117-abc", "127.0.0.1:5000/e2e/kernel:6.12.117-abc"},
		{"localhost/kernel:1", "localhost/kernel:1"},
		{"registry.example/a/b/kernel:1", "registry.example/a/b/kernel:1"},
		{"Not/A:Name", ""},
		{"linuxkit/kernel@sha256:" + fmt.Sprintf("%064x", 1), ""},
	} {
		got, err := QualifiedName(tc.in)
		if got != tc.want || (err != nil) != (tc.want == "") {
			t.Errorf("QualifiedName(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

// TestPublishNames: every name is fully qualified in both annotations,
// the images carry their platform, the indexes list the image, and each
// tag has its bare alias.
func TestPublishNames(t *testing.T) {
	s := newTestStore(t)
	img := kernelImage(t, amd64, "a")
	if err := s.Publish(context.Background(), kernelEntry(img, amd64, "linuxkit/kernel", "6.12.117", "abc")); err != nil {
		t.Fatal(err)
	}
	d := digest(t, img)
	names := named(t, s)
	full := "docker.io/linuxkit/kernel:"
	want := map[string]string{ // name -> what it is
		full + "6.12.117-abc-amd64": "image", full + "6.12.117-amd64": "image",
		full + "6.12.117-abc": "index", full + "6.12.117": "index",
		"6.12.117-abc-amd64": "alias", "6.12.117-amd64": "alias", "6.12.117-abc": "alias", "6.12.117": "alias",
	}
	if got := slices.Sorted(maps.Keys(names)); !slices.Equal(got, slices.Sorted(maps.Keys(want))) {
		t.Fatalf("names %v, want %v", got, slices.Sorted(maps.Keys(want)))
	}
	for n, kind := range want {
		e := names[n]
		switch kind {
		case "image":
			if e.Digest != d || e.Platform == nil || !e.Platform.Equals(amd64) || e.Annotations[ContainerdNameAnnotation] != n {
				t.Errorf("%s: %+v", n, e)
			}
		case "index":
			if e.Annotations[ContainerdNameAnnotation] != n {
				t.Errorf("%s: annotations %v", n, e.Annotations)
			}
			if got := indexPlatforms(t, s, e); !maps.Equal(got, map[string]v1.Hash{"linux/amd64": d}) {
				t.Errorf("%s lists %v", n, got)
			}
		case "alias":
			target := names[e.Annotations[AliasAnnotation]]
			if e.Annotations[AliasAnnotation] != full+n || e.Digest != target.Digest || e.MediaType != target.MediaType {
				t.Errorf("alias %s: %+v, stands for %+v", n, e, target)
			}
			if _, ok := e.Annotations[ContainerdNameAnnotation]; ok {
				t.Errorf("alias %s has %s: linuxkit cache import would register it", n, ContainerdNameAnnotation)
			}
		}
	}
	// go-containerregistry reads the layout and finds it valid.
	p, err := layout.FromPath(s.Dir())
	if err != nil {
		t.Fatal(err)
	}
	idx, err := p.ImageIndex()
	if err != nil {
		t.Fatal(err)
	}
	if err := validate.Index(idx); err != nil {
		t.Fatal(err)
	}
}

// TestPublishMergesIndexes: arches built one after the other, each by its
// own process (its own Store), end up in the same indexes; a rebuild
// replaces its arch's entry and keeps the others.
func TestPublishMergesIndexes(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	imgs := map[string]v1.Image{}
	publish := func(p v1.Platform, seed string) {
		t.Helper()
		s, err := OpenStore(dir)
		if err != nil {
			t.Fatal(err)
		}
		imgs[p.String()] = kernelImage(t, p, seed)
		if err := s.Publish(ctx, kernelEntry(imgs[p.String()], p, "linuxkit/kernel", "6.12.117", "abc")); err != nil {
			t.Fatal(err)
		}
	}
	check := func(what string) {
		t.Helper()
		s, _ := OpenStore(dir)
		names := named(t, s)
		want := map[string]v1.Hash{}
		for p, img := range imgs {
			want[p] = digest(t, img)
		}
		for _, n := range []string{"docker.io/linuxkit/kernel:6.12.117-abc", "docker.io/linuxkit/kernel:6.12.117"} {
			if got := indexPlatforms(t, s, names[n]); !maps.Equal(got, want) {
				t.Errorf("%s: %s lists %v, want %v", what, n, got, want)
			}
		}
	}
	publish(amd64, "a")
	publish(arm64, "b")
	check("arm64 after amd64")
	publish(amd64, "a2")
	check("amd64 rebuilt")
	publish(riscv64, "c")
	check("riscv64 added")
}

// TestPublishAliases: a bare tag stands for one image; when the layout
// names different images with that tag the alias goes, and with it
// oci:DIR:TAG, whatever the order of the writes.
func TestPublishAliases(t *testing.T) {
	ctx := context.Background()
	imgA := kernelImage(t, amd64, "a")
	imgB := kernelImage(t, amd64, "b")
	type write struct {
		img  v1.Image
		repo string
	}
	for _, tc := range []struct {
		name   string
		writes []write
		bare   string            // a name given by WriteLayout before, kept as it is
		want   map[string]string // alias -> full name it stands for ("" none)
	}{
		{
			name:   "one repository",
			writes: []write{{imgA, "linuxkit/kernel"}},
			want:   map[string]string{"6.12.117-abc-amd64": "docker.io/linuxkit/kernel:6.12.117-abc-amd64", "6.12.117": "docker.io/linuxkit/kernel:6.12.117"},
		},
		{
			name:   "the same image under two orgs",
			writes: []write{{imgA, "registry.example/b/kernel"}, {imgA, "linuxkit/kernel"}},
			want:   map[string]string{"6.12.117-abc-amd64": "docker.io/linuxkit/kernel:6.12.117-abc-amd64", "6.12.117": "docker.io/linuxkit/kernel:6.12.117"},
		},
		{
			name:   "different images under two orgs",
			writes: []write{{imgA, "linuxkit/kernel"}, {imgB, "registry.example/b/kernel"}},
			want:   map[string]string{"6.12.117-abc-amd64": "", "6.12.117": ""},
		},
		{
			name:   "different images, the other order",
			writes: []write{{imgB, "registry.example/b/kernel"}, {imgA, "linuxkit/kernel"}},
			want:   map[string]string{"6.12.117-abc-amd64": "", "6.12.117": ""},
		},
		{
			name:   "ambiguity resolved by a rebuild",
			writes: []write{{imgA, "linuxkit/kernel"}, {imgB, "registry.example/b/kernel"}, {imgA, "registry.example/b/kernel"}},
			want:   map[string]string{"6.12.117-abc-amd64": "docker.io/linuxkit/kernel:6.12.117-abc-amd64"},
		},
		{
			name:   "a name someone else gave",
			writes: []write{{imgA, "linuxkit/kernel"}},
			bare:   "6.12.117-amd64",
			want:   map[string]string{"6.12.117-amd64": "", "6.12.117": "docker.io/linuxkit/kernel:6.12.117"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newTestStore(t)
			other := kernelImage(t, arm64, "other")
			if tc.bare != "" {
				if err := s.WriteLayout(ctx, other, arm64, tc.bare); err != nil {
					t.Fatal(err)
				}
			}
			for _, w := range tc.writes {
				if err := s.Publish(ctx, kernelEntry(w.img, amd64, w.repo, "6.12.117", "abc")); err != nil {
					t.Fatal(err)
				}
			}
			names := named(t, s)
			for alias, full := range tc.want {
				e, ok := names[alias]
				switch {
				case full == "" && ok && isAlias(e):
					t.Errorf("alias %s for %s, want none", alias, e.Annotations[AliasAnnotation])
				case full != "" && (!ok || e.Annotations[AliasAnnotation] != full || e.Digest != names[full].Digest):
					t.Errorf("alias %s: %+v, want it to stand for %s", alias, e, full)
				}
			}
			if tc.bare != "" {
				if e := names[tc.bare]; e.Digest != digest(t, other) || isAlias(e) {
					t.Errorf("%s was replaced: %+v", tc.bare, e)
				}
			}
			// Without an alias, the bare tag says why and what to write.
			for alias, full := range tc.want {
				if full != "" || alias == tc.bare {
					continue
				}
				_, _, err := s.ImageForPlatform(alias, amd64)
				if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "docker.io/linuxkit/kernel:"+alias) {
					t.Errorf("ImageForPlatform(%s): %v, want ErrNotFound naming the full names", alias, err)
				}
			}
		})
	}
}

// TestLayoutOldNames: a layout an older lkbuild wrote names images as
// given (linuxkit/kernel:TAG, no index). Lookups find them by either
// spelling; a new build replaces the old name instead of adding a second
// one, and its indexes list the old build's arch too.
func TestLayoutOldNames(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t)
	old := kernelImage(t, amd64, "old")
	oldNames := []string{"linuxkit/kernel:6.12.117-abc-amd64", "linuxkit/kernel:6.12.117-amd64", "127.0.0.1:5000/e2e/kernel:6.12.117-abc-amd64"}
	if err := s.WriteLayout(ctx, old, amd64, oldNames...); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{
		"linuxkit/kernel:6.12.117-abc-amd64",
		"docker.io/linuxkit/kernel:6.12.117-abc-amd64",
		"index.docker.io/linuxkit/kernel:6.12.117-amd64",
		"127.0.0.1:5000/e2e/kernel:6.12.117-abc-amd64",
	} {
		if _, d, err := s.ImageByName(n); err != nil || d.Digest != digest(t, old) {
			t.Errorf("old layout, ImageByName(%s): %v, %v", n, d.Digest, err)
		}
	}
	if _, _, err := s.ImageByName("linuxkit/kernel:6.12.117-abc-arm64"); !errors.Is(err, ErrNotFound) {
		t.Errorf("a name not there: %v", err)
	}

	arm := kernelImage(t, arm64, "arm")
	if err := s.Publish(ctx, kernelEntry(arm, arm64, "linuxkit/kernel", "6.12.117", "abc")); err != nil {
		t.Fatal(err)
	}
	names := named(t, s)
	want := map[string]v1.Hash{"linux/amd64": digest(t, old), "linux/arm64": digest(t, arm)}
	if got := indexPlatforms(t, s, names["docker.io/linuxkit/kernel:6.12.117-abc"]); !maps.Equal(got, want) {
		t.Errorf("index over an old layout lists %v, want %v", got, want)
	}

	// Rebuilding amd64 rewrites its names in the new form only.
	amd := kernelImage(t, amd64, "new")
	if err := s.Publish(ctx, kernelEntry(amd, amd64, "linuxkit/kernel", "6.12.117", "abc")); err != nil {
		t.Fatal(err)
	}
	names = named(t, s)
	for _, n := range oldNames[:2] {
		if _, ok := names[n]; ok {
			t.Errorf("old name %s kept next to its new form", n)
		}
	}
	if names["docker.io/linuxkit/kernel:6.12.117-abc-amd64"].Digest != digest(t, amd) {
		t.Errorf("new name does not point to the rebuild")
	}
	if names[oldNames[2]].Digest != digest(t, old) {
		t.Errorf("another repository's name changed")
	}
}

// TestImageForPlatform: a name of an index resolves through it for a
// platform; ImageByName says it is an index.
func TestImageForPlatform(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t)
	imgs := map[string]v1.Image{"amd64": kernelImage(t, amd64, "a"), "arm64": kernelImage(t, arm64, "b")}
	for arch, img := range imgs {
		if err := s.Publish(ctx, kernelEntry(img, linux(arch), "linuxkit/kernel", "6.12.117", "abc")); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name    string
		p       v1.Platform
		want    string // arch of the image found, "" an error
		wantErr error
	}{
		{"6.12.117", arm64, "arm64", nil},
		{"linuxkit/kernel:6.12.117", amd64, "amd64", nil},
		{"docker.io/linuxkit/kernel:6.12.117-abc", arm64, "arm64", nil},
		{"6.12.117-amd64", v1.Platform{OS: "linux"}, "amd64", nil},
		{"6.12.117", riscv64, "", ErrNoPlatform},
		{"6.12.117", v1.Platform{OS: "linux"}, "", nil}, // two match: name the arch
	} {
		img, _, err := s.ImageForPlatform(tc.name, tc.p)
		switch {
		case tc.want != "" && (err != nil || digest(t, img) != digest(t, imgs[tc.want])):
			t.Errorf("ImageForPlatform(%s, %s): %v, want the %s image", tc.name, tc.p.String(), err, tc.want)
		case tc.want == "" && (err == nil || (tc.wantErr != nil && !errors.Is(err, tc.wantErr))):
			t.Errorf("ImageForPlatform(%s, %s): %v, want an error (%v)", tc.name, tc.p.String(), err, tc.wantErr)
		}
	}
	if _, _, err := s.ImageByName("6.12.117"); !errors.Is(err, ErrIndex) {
		t.Errorf("ImageByName of an index: %v, want ErrIndex", err)
	}
}

// TestPublishConcurrent: builds of different arches and versions that
// write one layout at once, each through its own Store as separate
// processes would, lose no name and no index entry.
func TestPublishConcurrent(t *testing.T) {
	ctx := context.Background()
	arches := []v1.Platform{amd64, arm64, riscv64}
	versions := []string{"6.6.71", "6.12.117"}
	for round := range 3 {
		dir := t.TempDir()
		if _, err := OpenStore(dir); err != nil {
			t.Fatal(err)
		}
		type job struct {
			v   string
			p   v1.Platform
			img v1.Image
		}
		var jobs []job
		for _, v := range versions {
			for _, p := range arches {
				jobs = append(jobs, job{v, p, kernelImage(t, p, fmt.Sprint(round, v, p.Architecture))})
			}
		}
		var wg sync.WaitGroup
		errs := make(chan error, len(jobs))
		for _, j := range jobs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				s, err := OpenStore(dir)
				if err == nil {
					err = s.Publish(ctx, kernelEntry(j.img, j.p, "linuxkit/kernel", j.v, "abc"))
				}
				errs <- err
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		s, _ := OpenStore(dir)
		names := named(t, s)
		for _, v := range versions {
			want := map[string]v1.Hash{}
			for _, j := range jobs {
				if j.v != v {
					continue
				}
				want[j.p.String()] = digest(t, j.img)
				n := "docker.io/linuxkit/kernel:" + v + "-abc-" + j.p.Architecture
				if names[n].Digest != want[j.p.String()] {
					t.Errorf("round %d: %s lost", round, n)
				}
			}
			for _, n := range []string{v, v + "-abc"} {
				if got := indexPlatforms(t, s, names["docker.io/linuxkit/kernel:"+n]); !maps.Equal(got, want) {
					t.Errorf("round %d: index %s lists %v, want %v", round, n, got, want)
				}
				if names[n].Digest != names["docker.io/linuxkit/kernel:"+n].Digest {
					t.Errorf("round %d: alias %s is stale", round, n)
				}
			}
		}
		if left, _ := filepath.Glob(filepath.Join(dir, ".index.json-*")); len(left) > 0 {
			t.Errorf("temporary index files left: %v", left)
		}
	}
}

// TestLinkImage: blobs another store holds are linked, not copied.
func TestLinkImage(t *testing.T) {
	ctx := context.Background()
	cache, out := newTestStore(t), newTestStore(t)
	img := kernelImage(t, amd64, "builder")
	if err := cache.WriteImage(ctx, img, nil); err != nil {
		t.Fatal(err)
	}
	cached, ok := cache.Image(digest(t, img))
	if !ok {
		t.Fatal("image not in the cache store")
	}
	if err := out.LinkImage(ctx, cached, nil, cache); err != nil {
		t.Fatal(err)
	}
	if _, ok := out.Image(digest(t, img)); !ok {
		t.Fatal("image incomplete in the layout")
	}
	layers, _ := img.Layers()
	ld, _ := layers[0].Digest()
	a, errA := os.Stat(cache.BlobPath(ld))
	b, errB := os.Stat(out.BlobPath(ld))
	if errA != nil || errB != nil || !os.SameFile(a, b) {
		t.Errorf("layer copied, not linked (%v, %v)", errA, errB)
	}
}
