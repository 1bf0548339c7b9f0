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
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/lkbuild/lkbuild/internal/rootfstest"
	"github.com/lkbuild/lkbuild/kernel"
	"github.com/lkbuild/lkbuild/oci"
	"github.com/lkbuild/lkbuild/sandbox"
	"github.com/lkbuild/lkbuild/toolchain"
)

// baseImage is a builder image's base, pushed to a registry of the test's.
type baseImage struct {
	from  string // its reference
	reg   *oci.Registry
	store *oci.Store
	cache string
	epoch time.Time
	arch  kernel.Arch
}

// pushBaseImage pushes a small amd64 tree as a one-layer image.
func pushBaseImage(t *testing.T) baseImage {
	t.Helper()
	tree := rootfstest.SmallTree(t, fixtures.Need(t, rootfstest.AMD64))
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
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

	return baseImage{from: from, reg: reg, store: store, cache: cache, epoch: epoch, arch: amd64}
}

// options are builder-image options that run cmds on the base.
func (b baseImage) options(stderr io.Writer, cmds ...string) BuilderImageOptions {
	return BuilderImageOptions{
		From: b.from, Arch: b.arch, Epoch: b.epoch, Env: []string{"PATH=" + kernel.DefaultPath},
		Run:     cmds,
		Rootfs:  toolchain.RootfsOptions{Registry: b.reg, Store: b.store, Dir: filepath.Join(b.cache, "rootfs")},
		WorkDir: filepath.Join(b.cache, "work"), Stderr: stderr,
	}
}

func TestBuildBuilderImage(t *testing.T) {
	b := pushBaseImage(t)
	epoch := b.epoch
	build := func() (digest string, entries map[string]*tar.Header) {
		var stderr bytes.Buffer
		out, err := BuildBuilderImage(context.Background(), b.options(&stderr,
			"echo provisioned > /etc/lkbuild-tool && mkdir -p /opt/tool && ln /etc/lkbuild-tool /opt/tool/hardlink",
			"rm /etc/debian_version && ln -s /etc/lkbuild-tool /opt/tool/link && rm -rf /etc/apt && mkdir /etc/apt && touch /etc/apt/fresh",
		))
		if err != nil {
			t.Fatalf("%v\n%s", err, stderr.String())
		}
		d, _ := out.Digest()
		layers, err := out.Layers()
		if err != nil || len(layers) != 2 {
			t.Fatalf("layers %d, %v", len(layers), err)
		}
		return d.String(), layerHeaders(t, layers[1])
	}
	d1, entries := build()
	d2, _ := build()
	if d1 != d2 {
		t.Errorf("two builder-image runs gave %s and %s", d1, d2)
	}
	var names []string
	for n := range entries {
		names = append(names, n)
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

// TestBuilderImageRunIsLocked: a --run command (the base image's own
// programs) cannot remount the host's resolv.conf, bound read-only for the
// network builder-image allows, and write it; nor mount anything new.
func TestBuilderImageRunIsLocked(t *testing.T) {
	if _, err := os.Stat("/etc/resolv.conf"); err != nil {
		t.Skipf("the host has no /etc/resolv.conf to bind: %v", err)
	}
	before, err := os.ReadFile("/etc/resolv.conf")
	if err != nil {
		t.Fatal(err)
	}
	b := pushBaseImage(t)
	for _, cmd := range []string{
		"mount -o remount,bind,rw /etc/resolv.conf && echo nameserver 127.0.0.9 >>/etc/resolv.conf",
		"umount /etc/resolv.conf",
		"mount -t tmpfs none /mnt",
	} {
		var stderr bytes.Buffer
		_, err := BuildBuilderImage(context.Background(), b.options(&stderr, cmd))
		var exit *sandbox.ExitError
		if !errors.As(err, &exit) {
			t.Errorf("%q: %v, want the command's exit status\n%s", cmd, err, stderr.String())
		}
		if after, _ := os.ReadFile("/etc/resolv.conf"); !bytes.Equal(after, before) {
			t.Fatalf("%q changed the host's /etc/resolv.conf: %q", cmd, after)
		}
	}
}

// TestBuilderImageFromDir packs a rootfs tree as a builder image: the
// platform is the tree's, modes and setuid bits survive, the host path is
// nowhere in the image, the same tree gives the same digest, setup commands
// add a layer over it, and a tree for another arch than --arch is refused.
func TestBuilderImageFromDir(t *testing.T) {
	tree := rootfstest.SmallTree(t, fixtures.Need(t, rootfstest.AMD64))
	if err := os.WriteFile(filepath.Join(tree, "usr/bin/suid"), []byte("x"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(tree, "usr/bin/suid"), os.ModeSetuid|0o755); err != nil {
		t.Fatal(err)
	}
	cache := t.TempDir()
	store, err := oci.OpenStore(filepath.Join(cache, "blobs"))
	if err != nil {
		t.Fatal(err)
	}
	amd64, _ := kernel.ParseArch("amd64")
	riscv64, _ := kernel.ParseArch("riscv64")
	opts := func(from string, arch kernel.Arch, run ...string) BuilderImageOptions {
		return BuilderImageOptions{
			From: from, Arch: arch, Epoch: time.Unix(1700000000, 0), Env: []string{"PATH=" + kernel.DefaultPath}, Run: run,
			Rootfs:  toolchain.RootfsOptions{Store: store, Dir: filepath.Join(cache, "rootfs")},
			WorkDir: filepath.Join(cache, "work"), Stderr: io.Discard,
		}
	}
	img, err := BuildBuilderImage(context.Background(), opts(DirPrefix+tree, amd64))
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil || cf.OS != "linux" || cf.Architecture != "amd64" {
		t.Fatalf("config %+v, %v", cf, err)
	}
	raw, _ := img.RawConfigFile()
	if strings.Contains(string(raw), tree) {
		t.Errorf("the config names the tree's host path %s: %s", tree, raw)
	}
	layers, _ := img.Layers()
	if len(layers) != 1 {
		t.Fatalf("%d layers, want 1", len(layers))
	}
	var sawSuid, sawSh bool
	for name, h := range layerHeaders(t, layers[0]) {
		switch strings.TrimPrefix(name, "./") {
		case "usr/bin/suid":
			sawSuid = h.Mode&0o4000 != 0
		case "usr/bin/sh", "bin/sh":
			sawSh = true
		}
	}
	if !sawSuid || !sawSh {
		t.Errorf("layer: setuid file kept %v, sh present %v", sawSuid, sawSh)
	}

	// The same tree copied elsewhere gives the same image.
	other := filepath.Join(t.TempDir(), "elsewhere")
	if err := os.Rename(tree, other); err != nil {
		t.Fatal(err)
	}
	again, err := BuildBuilderImage(context.Background(), opts(DirPrefix+other, amd64))
	if err != nil {
		t.Fatal(err)
	}
	if d1, d2 := digestOf(t, img), digestOf(t, again); d1 != d2 {
		t.Errorf("one tree in two places gave %s and %s", d1, d2)
	}

	// Setup commands over the tree add a layer.
	provisioned, err := BuildBuilderImage(context.Background(), opts(DirPrefix+other, amd64, "echo ok >/etc/provisioned"))
	if err != nil {
		t.Fatal(err)
	}
	if l, _ := provisioned.Layers(); len(l) != 2 {
		t.Errorf("%d layers after --run, want 2", len(l))
	}

	_, err = BuildBuilderImage(context.Background(), opts(DirPrefix+other, riscv64))
	if err == nil || !strings.Contains(err.Error(), "x86_64 programs, not riscv64") {
		t.Errorf("an x86_64 tree as riscv64: %v", err)
	}
	_, err = BuildBuilderImage(context.Background(), opts(DirPrefix+filepath.Join(other, "nothere"), amd64))
	if err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Errorf("a missing tree: %v", err)
	}
}

func digestOf(t *testing.T, img v1.Image) string {
	t.Helper()
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d.String()
}

// layerHeaders reads a layer's tar headers by entry name.
func layerHeaders(t *testing.T, l v1.Layer) map[string]*tar.Header {
	t.Helper()
	rc, err := l.Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	entries := map[string]*tar.Header{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return entries
		}
		if err != nil {
			t.Fatal(err)
		}
		entries[h.Name] = h
	}
}
