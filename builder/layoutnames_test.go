package builder

import (
	"context"
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/lkbuild/lkbuild/kernel"
	"github.com/lkbuild/lkbuild/oci"
	"github.com/lkbuild/lkbuild/toolchain"
)

func TestLayoutEntries(t *testing.T) {
	img := randomPlatformImage(t, "amd64")
	builder := randomPlatformImage(t, "amd64")
	amd64 := v1.Platform{OS: "linux", Architecture: "amd64"}
	arch, err := kernel.ParseArch("x86_64")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name        string
		n           kernel.Name
		builder     v1.Image
		wantTags    []string
		wantIndexes map[string][]string // name -> gather
		wantBuilder string              // the -builder index, "" none
	}{
		{
			name: "plain", n: kernel.Name{Version: mustVersion(t, "6.12.117")}, builder: builder,
			wantTags: []string{"linuxkit/kernel:6.12.117-abc-amd64", "linuxkit/kernel:6.12.117-amd64"},
			wantIndexes: map[string][]string{
				"linuxkit/kernel:6.12.117-abc": {"linuxkit/kernel:6.12.117-abc-arm64", "linuxkit/kernel:6.12.117-abc-riscv64", "linuxkit/kernel:6.12.117-abc-amd64"},
				"linuxkit/kernel:6.12.117":     {"linuxkit/kernel:6.12.117-arm64", "linuxkit/kernel:6.12.117-riscv64", "linuxkit/kernel:6.12.117-amd64"},
			},
			wantBuilder: "linuxkit/kernel:6.12.117-builder",
		},
		{
			name: "debug variant without a builder image", n: kernel.Name{Org: "reg.example/lk", Version: mustVersion(t, "6.6.71"), Extra: "-rt", Debug: true},
			wantTags: []string{"reg.example/lk/kernel:6.6.71-rt-dbg-abc-amd64", "reg.example/lk/kernel:6.6.71-rt-dbg-amd64"},
			wantIndexes: map[string][]string{
				"reg.example/lk/kernel:6.6.71-rt-dbg-abc": {"reg.example/lk/kernel:6.6.71-rt-dbg-abc-arm64", "reg.example/lk/kernel:6.6.71-rt-dbg-abc-riscv64", "reg.example/lk/kernel:6.6.71-rt-dbg-abc-amd64"},
				"reg.example/lk/kernel:6.6.71-rt-dbg":     {"reg.example/lk/kernel:6.6.71-rt-dbg-arm64", "reg.example/lk/kernel:6.6.71-rt-dbg-riscv64", "reg.example/lk/kernel:6.6.71-rt-dbg-amd64"},
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tags, err := tc.n.Tags("abc", arch)
			if err != nil {
				t.Fatal(err)
			}
			es := layoutEntries(tags, img, amd64, tc.builder, amd64)
			e := es[0]
			if e.Image != img || !e.Platform.Equals(amd64) || !slices.Equal(e.Tags, tc.wantTags) {
				t.Errorf("image entry %+v, want tags %v", e, tc.wantTags)
			}
			got := map[string][]string{}
			for _, ix := range e.Indexes {
				got[ix.Name] = ix.Gather
			}
			if !maps.EqualFunc(got, tc.wantIndexes, slices.Equal) {
				t.Errorf("indexes %v, want %v", got, tc.wantIndexes)
			}
			switch {
			case tc.wantBuilder == "" && len(es) != 1:
				t.Errorf("%d entries, want only the image's", len(es))
			case tc.wantBuilder != "" && (len(es) != 2 || es[1].Image != tc.builder || len(es[1].Tags) != 0 ||
				len(es[1].Indexes) != 1 || es[1].Indexes[0].Name != tc.wantBuilder):
				t.Errorf("builder entry %+v, want the index %s", es[1:], tc.wantBuilder)
			}
		})
	}
}

func mustVersion(t *testing.T, s string) kernel.Version {
	t.Helper()
	v, err := kernel.ParseVersion(s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func randomPlatformImage(t *testing.T, arch string) v1.Image {
	t.Helper()
	l, err := random.Layer(128, types.OCILayer)
	if err != nil {
		t.Fatal(err)
	}
	img, err := oci.NewImage(oci.ImageSpec{Platform: v1.Platform{OS: "linux", Architecture: arch}, Layers: []oci.ImageLayer{{Layer: l}}})
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// layoutEntry is an index.json entry as the layout has it.
type layoutEntry struct {
	MediaType   types.MediaType   `json:"mediaType"`
	Digest      v1.Hash           `json:"digest"`
	Platform    *v1.Platform      `json:"platform"`
	Annotations map[string]string `json:"annotations"`
}

// layoutNames maps the ref names of the layout at dir to their entries.
func layoutNames(t *testing.T, dir string) map[string]layoutEntry {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, "index.json"))
	if err != nil {
		t.Fatal(err)
	}
	var idx struct{ Manifests []layoutEntry }
	if err := json.Unmarshal(data, &idx); err != nil {
		t.Fatal(err)
	}
	out := map[string]layoutEntry{}
	for _, m := range idx.Manifests {
		if n := m.Annotations[oci.RefNameAnnotation]; n != "" {
			out[n] = m
		}
	}
	return out
}

// indexArches reads the index blob d from the layout as arch -> digest.
func indexArches(t *testing.T, dir string, d v1.Hash) map[string]v1.Hash {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, "blobs", d.Algorithm, d.Hex))
	if err != nil {
		t.Fatal(err)
	}
	var im v1.IndexManifest
	if err := json.Unmarshal(data, &im); err != nil {
		t.Fatal(err)
	}
	out := map[string]v1.Hash{}
	for _, m := range im.Manifests {
		out[m.Platform.Architecture] = m.Digest
	}
	return out
}

// TestBuildLayoutHoldsEveryTag: two arches built into one layout leave
// every tag a push writes there, fully qualified: the arch images, the
// indexes listing both, the builder under -builder, and the bare-tag
// aliases.
func TestBuildLayoutHoldsEveryTag(t *testing.T) {
	w := newFakeWorld(t)
	builders := map[string]v1.Image{"x86_64": randomPlatformImage(t, "amd64"), "aarch64": randomPlatformImage(t, "arm64")}
	var out *oci.Store
	results := map[string]*BuildResult{}
	var tags []kernel.Tag
	for _, arch := range []string{"x86_64", "aarch64"} {
		fb := newFakeBuild(t, t.TempDir(), Request{Arch: arch})
		if out == nil {
			out = fb.env.Output
		}
		fb.env.Output = out
		if arch != "x86_64" {
			fb.env.Emulation = &toolchain.Emulation{}
		}
		opts := append(w.options(), withRootfs(func(ctx context.Context, ref string, a kernel.Arch, o toolchain.RootfsOptions) (toolchain.Rootfs, error) {
			img := builders[a.Uname]
			d, err := img.Digest()
			return toolchain.Rootfs{Dir: w.rootDir, Ref: ref, Digest: d, Image: img}, err
		}))
		res, err := Build(context.Background(), fb.target, fb.env, fb.pol, opts...)
		if err != nil {
			t.Fatalf("%s: %v", arch, err)
		}
		results[arch] = res
		tags = append(tags, fb.target.Tags...)
	}
	names := layoutNames(t, out.Dir())
	digest := func(img v1.Image) v1.Hash {
		d, err := img.Digest()
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	kernels := map[string]v1.Hash{"amd64": results["x86_64"].Digest, "arm64": results["aarch64"].Digest}
	builderIndex := map[string]v1.Hash{"amd64": digest(builders["x86_64"]), "arm64": digest(builders["aarch64"])}
	for _, tag := range tags {
		full, err := oci.QualifiedName(tag.String())
		if err != nil {
			t.Fatal(err)
		}
		e, ok := names[full]
		if !ok {
			t.Errorf("%s (%s) is not in the layout", full, tag.Kind)
			continue
		}
		if e.Annotations[oci.ContainerdNameAnnotation] != full {
			t.Errorf("%s: annotations %v", full, e.Annotations)
		}
		if alias := names[tag.Tag]; alias.Digest != e.Digest || alias.Annotations[oci.AliasAnnotation] != full {
			t.Errorf("alias %s: %+v, want it to stand for %s", tag.Tag, alias, full)
		}
		switch tag.Kind {
		case kernel.TagArchImage, kernel.TagReleaseArchImage:
			if e.Platform == nil || e.Digest != kernels[e.Platform.Architecture] {
				t.Errorf("%s: %+v, want the image built for its arch", full, e)
			}
		case kernel.TagIndex, kernel.TagReleaseIndex:
			if got := indexArches(t, out.Dir(), e.Digest); !maps.Equal(got, kernels) {
				t.Errorf("%s lists %v, want %v", full, got, kernels)
			}
		case kernel.TagBuilder:
			if got := indexArches(t, out.Dir(), e.Digest); !maps.Equal(got, builderIndex) {
				t.Errorf("%s lists %v, want the builders %v", full, got, builderIndex)
			}
			if _, ok := out.Image(builderIndex["arm64"]); !ok {
				t.Errorf("the builder image is incomplete in the layout")
			}
		}
	}
}

// TestBuildSkipRenamesOldLayout: a layout an older lkbuild wrote (the
// image under its names as given, no indexes) holds the image: the build
// is skipped, and the names are written in the current form.
func TestBuildSkipRenamesOldLayout(t *testing.T) {
	w := newFakeWorld(t)
	first := newFakeBuild(t, t.TempDir(), Request{})
	img, res := builtImage(t, first, w)
	fb := newFakeBuild(t, t.TempDir(), Request{})
	var old []string
	for _, tag := range fb.target.Tags {
		if tag.Kind == kernel.TagArchImage || tag.Kind == kernel.TagReleaseArchImage {
			old = append(old, tag.String())
		}
	}
	if err := fb.env.Output.WriteLayout(context.Background(), img, toolchain.Platform(fb.target.Arch), old...); err != nil {
		t.Fatal(err)
	}
	again, err := fb.run(w)
	if err != nil || !again.Skipped || again.Digest != res.Digest {
		t.Fatalf("build over an old layout: %+v, %v; want it skipped", again, err)
	}
	names := layoutNames(t, fb.env.Output.Dir())
	for _, n := range old {
		if _, ok := names[n]; ok {
			t.Errorf("old name %s kept", n)
		}
	}
	for _, tag := range fb.target.Tags {
		full, _ := oci.QualifiedName(tag.String())
		if _, ok := names[full]; !ok && tag.Kind != kernel.TagBuilder {
			t.Errorf("%s not named after the skipped build", full)
		}
	}
}
