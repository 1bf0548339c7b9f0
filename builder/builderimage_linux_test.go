package builder

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/registry"

	"github.com/lkbuild/lkbuild/internal/rootfstest"
	"github.com/lkbuild/lkbuild/kernel"
	"github.com/lkbuild/lkbuild/oci"
	"github.com/lkbuild/lkbuild/toolchain"
)

func TestBuildBuilderImage(t *testing.T) {
	tree := rootfstest.SmallTree(t, fixtures.Need(t, rootfstest.AMD64))
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer srv.Close()
	reg, err := oci.NewRegistry(oci.WithKeychain(authn.NewMultiKeychain()))
	if err != nil {
		t.Fatal(err)
	}
	cache := t.TempDir()
	store, err := oci.OpenStore(filepath.Join(cache, "blobs"))
	if err != nil {
		t.Fatal(err)
	}
	epoch := time.Unix(1700000000, 0)
	base, err := store.WriteLayer(func(w io.Writer) error {
		return oci.WriteTar(w, os.DirFS(tree), oci.TarOptions{Epoch: epoch})
	})
	if err != nil {
		t.Fatal(err)
	}
	amd64, _ := kernel.ParseArch("amd64")
	img, err := oci.NewImage(oci.ImageSpec{Platform: toolchain.Platform(amd64), Created: epoch, Layers: []oci.ImageLayer{{Layer: base}}})
	if err != nil {
		t.Fatal(err)
	}
	from := strings.TrimPrefix(srv.URL, "http://") + "/base:1"
	if _, err := reg.Push(context.Background(), img, from); err != nil {
		t.Fatal(err)
	}

	build := func() (digest string, layer []byte) {
		var stderr bytes.Buffer
		out, err := BuildBuilderImage(context.Background(), BuilderImageOptions{
			From: from, Arch: amd64, Epoch: epoch, Env: []string{"PATH=" + kernel.DefaultPath},
			Run: []string{
				"echo provisioned > /etc/lkbuild-tool && mkdir -p /opt/tool && ln /etc/lkbuild-tool /opt/tool/hardlink",
				"rm /etc/debian_version && ln -s /etc/lkbuild-tool /opt/tool/link && rm -rf /etc/apt && mkdir /etc/apt && touch /etc/apt/fresh",
			},
			Rootfs:  toolchain.RootfsOptions{Registry: reg, Store: store, Dir: filepath.Join(cache, "rootfs")},
			WorkDir: filepath.Join(cache, "work"), Stderr: &stderr,
		})
		if err != nil {
			t.Fatalf("%v\n%s", err, stderr.String())
		}
		d, _ := out.Digest()
		layers, err := out.Layers()
		if err != nil || len(layers) != 2 {
			t.Fatalf("layers %d, %v", len(layers), err)
		}
		rc, err := layers[1].Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		b, err := io.ReadAll(rc)
		if err != nil {
			t.Fatal(err)
		}
		return d.String(), b
	}
	d1, layer := build()
	d2, _ := build()
	if d1 != d2 {
		t.Errorf("two builder-image runs gave %s and %s", d1, d2)
	}

	entries := map[string]*tar.Header{}
	var names []string
	tr := tar.NewReader(bytes.NewReader(layer))
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		entries[h.Name] = h
		names = append(names, h.Name)
	}
	want := map[string]byte{
		"etc/lkbuild-tool":       tar.TypeReg,
		"etc/.wh.debian_version": tar.TypeReg,
		"etc/apt/":               tar.TypeDir,
		"etc/apt/.wh..wh..opq":   tar.TypeReg,
		"etc/apt/fresh":          tar.TypeReg,
		"opt/tool/hardlink":      tar.TypeLink,
		"opt/tool/link":          tar.TypeSymlink,
	}
	for name, typ := range want {
		h, ok := entries[name]
		if !ok || h.Typeflag != typ {
			t.Errorf("layer entry %s: %+v, want type %c; have %q", name, h, typ, names)
		}
	}
	for _, h := range entries {
		if !h.ModTime.Equal(epoch) || h.Uname != "" {
			t.Errorf("%s: mtime %v uname %q", h.Name, h.ModTime, h.Uname)
		}
	}
}
