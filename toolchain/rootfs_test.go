package toolchain

import (
	"context"
	"errors"
	"io"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"

	"github.com/lkbuild/lkbuild/kernel"
	"github.com/lkbuild/lkbuild/oci"
)

func TestPrepareRootfs(t *testing.T) {
	srv := httptest.NewServer(registry.New(registry.Logger(nopLogger())))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")

	// A small builder image: a shell script and a symlink, for arm64.
	tree := t.TempDir()
	os.MkdirAll(filepath.Join(tree, "usr/bin"), 0o755)
	os.WriteFile(filepath.Join(tree, "usr/bin/make"), []byte("#!/bin/sh\n"), 0o755)
	os.Symlink("usr/bin", filepath.Join(tree, "bin"))
	store, err := oci.OpenStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	l, err := store.WriteLayer(func(w io.Writer) error {
		return oci.WriteTar(w, os.DirFS(tree), oci.TarOptions{Epoch: time.Unix(0, 0)})
	})
	if err != nil {
		t.Fatal(err)
	}
	arm64, _ := kernel.ParseArch("arm64")
	img, err := oci.NewImage(oci.ImageSpec{Platform: Platform(arm64), Layers: []oci.ImageLayer{{Layer: l}}})
	if err != nil {
		t.Fatal(err)
	}
	reg, err := oci.NewRegistry(oci.WithKeychain(authn.NewMultiKeychain()))
	if err != nil {
		t.Fatal(err)
	}
	ref := host + "/builder:1"
	if _, err := reg.Push(context.Background(), img, ref); err != nil {
		t.Fatal(err)
	}

	cache := t.TempDir()
	opts := RootfsOptions{Registry: reg, Dir: filepath.Join(cache, "rootfs")}
	if opts.Store, err = oci.OpenStore(filepath.Join(cache, "blobs")); err != nil {
		t.Fatal(err)
	}
	// Several preparations at once: one unpacks, the others wait and reuse.
	var wg sync.WaitGroup
	results := make([]Rootfs, 4)
	errs := make([]error, 4)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = PrepareRootfs(context.Background(), ref, arm64, opts)
		}()
	}
	wg.Wait()
	unpacked := 0
	for i, r := range results {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if !r.Cached {
			unpacked++
		}
		if r.Dir != results[0].Dir {
			t.Errorf("two trees for one image: %s, %s", r.Dir, results[0].Dir)
		}
	}
	if unpacked != 1 {
		t.Errorf("image unpacked %d times, want once", unpacked)
	}
	if b, err := os.ReadFile(filepath.Join(results[0].Dir, "bin/make")); err != nil || string(b) != "#!/bin/sh\n" {
		t.Errorf("unpacked tree: %q, %v", b, err)
	}
	ents, _ := os.ReadDir(filepath.Dir(results[0].Dir))
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".tmp-") {
			t.Errorf("temporary tree left behind: %s", e.Name())
		}
	}
	amd64, _ := kernel.ParseArch("amd64")
	if _, err := PrepareRootfs(context.Background(), ref, amd64, opts); err == nil {
		t.Error("an arm64-only image was accepted for amd64")
	}
}

// TestPrepareRootfsRefusesOtherPlatforms: a builder image is checked
// against --arch before anything is unpacked or run, whether it comes
// from a layout (which has no index to pick a platform from) or names no
// platform at all.
func TestPrepareRootfsRefusesOtherPlatforms(t *testing.T) {
	amd64, _ := kernel.ParseArch("amd64")
	riscv64, _ := kernel.ParseArch("riscv64")
	tests := []struct {
		name     string
		platform v1.Platform
		have     string
	}{
		{"other arch", Platform(amd64), "linux/amd64"},
		{"no platform", v1.Platform{}, ""},
		{"other os", v1.Platform{OS: "windows", Architecture: "riscv64"}, "windows/riscv64"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			store, err := oci.OpenStore(dir)
			if err != nil {
				t.Fatal(err)
			}
			img := empty.Image // names no platform
			if tt.platform.OS != "" {
				if img, err = oci.NewImage(oci.ImageSpec{Platform: tt.platform}); err != nil {
					t.Fatal(err)
				}
			}
			if err := store.WriteLayout(context.Background(), img, tt.platform, "builder"); err != nil {
				t.Fatal(err)
			}
			cache := t.TempDir()
			ref := LayoutPrefix + dir + ":builder"
			_, err = PrepareRootfs(context.Background(), ref, riscv64, RootfsOptions{Dir: filepath.Join(cache, "rootfs")})
			var pe *PlatformError
			if !errors.As(err, &pe) || pe.Have != tt.have || pe.Want.Uname != riscv64.Uname {
				t.Fatalf("PrepareRootfs: %v, want a PlatformError from %q", err, tt.have)
			}
			for _, want := range []string{ref, "linux/riscv64", "--arch riscv64"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not name %q", err, want)
				}
			}
			if ents, _ := os.ReadDir(cache); len(ents) != 0 {
				t.Errorf("the cache holds %v after a refused builder", ents)
			}
		})
	}
}

// A build's layout names its builder V-builder, an index of the builder
// for each arch: oci:DIR:V-builder prepares the arch's image from it.
func TestPrepareRootfsFromLayoutIndex(t *testing.T) {
	dir := t.TempDir()
	store, err := oci.OpenStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	tree := t.TempDir()
	os.WriteFile(filepath.Join(tree, "marker"), []byte("amd64\n"), 0o644)
	l, err := store.WriteLayer(func(w io.Writer) error {
		return oci.WriteTar(w, os.DirFS(tree), oci.TarOptions{Epoch: time.Unix(0, 0)})
	})
	if err != nil {
		t.Fatal(err)
	}
	x86 := kernel.Arch{Uname: "x86_64", OCI: "amd64"}
	img, err := oci.NewImage(oci.ImageSpec{Platform: Platform(x86), Created: time.Unix(0, 0), Layers: []oci.ImageLayer{{Layer: l}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := store.WriteImage(context.Background(), img, nil); err != nil {
		t.Fatal(err)
	}
	d, _ := img.Digest()
	mf, _ := img.RawManifest()
	mt, _ := img.MediaType()
	idx := mutate.AppendManifests(empty.Index, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{
		MediaType: mt, Size: int64(len(mf)), Digest: d, Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}}})
	if err := store.Layout().AppendIndex(idx, layout.WithAnnotations(map[string]string{oci.RefNameAnnotation: "6.12.117-builder"})); err != nil {
		t.Fatal(err)
	}
	r, err := PrepareRootfs(context.Background(), "oci:"+dir+":6.12.117-builder", x86, RootfsOptions{Store: store, Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if r.Digest != d {
		t.Errorf("prepared %s, want the index's amd64 image %s", r.Digest, d)
	}
	if data, err := os.ReadFile(filepath.Join(r.Dir, "marker")); err != nil || string(data) != "amd64\n" {
		t.Errorf("marker: %q, %v", data, err)
	}
	arm := kernel.Arch{Uname: "aarch64", OCI: "arm64"}
	if _, err := PrepareRootfs(context.Background(), "oci:"+dir+":6.12.117-builder", arm, RootfsOptions{Store: store, Dir: t.TempDir()}); err == nil {
		t.Errorf("an index without arm64 gave an arm64 builder")
	}
}
