package toolchain

import (
	"context"
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
