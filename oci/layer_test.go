package oci

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"testing/fstest"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/validate"
)

var epoch = time.Unix(1700000000, 0).UTC()

// makeTree writes a small tree with a file, an executable, a nested dir and
// a symlink, with the given mtime and permission bits that must not matter.
func makeTree(t *testing.T, mtime time.Time, fileMode os.FileMode) string {
	t.Helper()
	dir := t.TempDir()
	files := map[string]string{
		"kernel":                            "bzImage bytes",
		"System.map":                        "ffffffff81000000 T _stext\n",
		"lib/modules/6.6.71/modules.dep":    "",
		"lib/modules/6.6.71/kernel/fs/x.ko": "module",
	}
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), fileMode); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "run.sh"), []byte("#!/bin/sh\n"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/usr/src/linux-headers-6.6.71", filepath.Join(dir, "lib/modules/6.6.71/build")); err != nil {
		t.Fatal(err)
	}
	err := filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err != nil || info.Mode()&os.ModeSymlink != 0 {
			return err
		}
		return os.Chtimes(p, mtime, mtime)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

func layerOf(t *testing.T, store *Store, dir string, opts TarOptions) v1.Layer {
	t.Helper()
	l, err := store.WriteLayer(func(w io.Writer) error { return WriteTar(w, os.DirFS(dir), opts) })
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestWriteLayerDeterministic(t *testing.T) {
	store, err := OpenStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	a := layerOf(t, store, makeTree(t, time.Now(), 0o600), TarOptions{Epoch: epoch})
	b := layerOf(t, store, makeTree(t, time.Unix(12345, 0), 0o664), TarOptions{Epoch: epoch})
	da, _ := a.Digest()
	db, _ := b.Digest()
	if da != db {
		t.Fatalf("same files gave two layer digests: %s, %s", da, db)
	}
	// Pinned: the same files must give this digest on every machine and
	// with every Go version. If it changes, layer output changed: every
	// kernel image digest lkbuild produces changes with it.
	const golden = "sha256:ee083e089be73c241f6168aedd49e27a70ad1777b20e0938cc2327da004d6663"
	if da.String() != golden {
		t.Errorf("layer digest %s, pinned %s", da, golden)
	}
	c := layerOf(t, store, makeTree(t, time.Now(), 0o600), TarOptions{Epoch: epoch.Add(time.Second)})
	if dc, _ := c.Digest(); dc == da {
		t.Error("a different epoch gave the same digest")
	}
	assertNoTempFiles(t, store)
}

func TestWriteTarHeaders(t *testing.T) {
	var buf bytes.Buffer
	dir := makeTree(t, time.Now(), 0o600)
	if err := WriteTar(&buf, os.DirFS(dir), TarOptions{Epoch: epoch, Prefix: "./"}); err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(&buf)
	var names []string
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, h.Name)
		if h.Uid != 0 || h.Gid != 0 || h.Uname != "" || h.Gname != "" {
			t.Errorf("%s: owner %d:%d %q:%q", h.Name, h.Uid, h.Gid, h.Uname, h.Gname)
		}
		if !h.ModTime.Equal(epoch) || !h.AccessTime.IsZero() || !h.ChangeTime.IsZero() {
			t.Errorf("%s: times %v %v %v", h.Name, h.ModTime, h.AccessTime, h.ChangeTime)
		}
		if len(h.PAXRecords) != 0 {
			t.Errorf("%s: unexpected PAX records %v", h.Name, h.PAXRecords)
		}
		want := map[byte]int64{tar.TypeDir: 0o755, tar.TypeSymlink: 0o777}[h.Typeflag]
		if h.Typeflag == tar.TypeReg {
			want = 0o644
			if h.Name == "./run.sh" {
				want = 0o755
			}
		}
		if h.Mode != want {
			t.Errorf("%s: mode %o, want %o", h.Name, h.Mode, want)
		}
	}
	wantNames := []string{"./", "./System.map", "./kernel", "./lib/", "./lib/modules/", "./lib/modules/6.6.71/",
		"./lib/modules/6.6.71/build", "./lib/modules/6.6.71/kernel/", "./lib/modules/6.6.71/kernel/fs/",
		"./lib/modules/6.6.71/kernel/fs/x.ko", "./lib/modules/6.6.71/modules.dep", "./run.sh"}
	if len(names) != len(wantNames) {
		t.Fatalf("names %q, want %q", names, wantNames)
	}
	for i := range names {
		if names[i] != wantNames[i] {
			t.Errorf("entry %d: %q, want %q", i, names[i], wantNames[i])
		}
	}
}

func TestWriteTarRefusesDevices(t *testing.T) {
	dir := t.TempDir()
	if err := os.Symlink("/dev/null", filepath.Join(dir, "ok")); err != nil {
		t.Fatal(err)
	}
	// A FIFO stands in for any special file; mkfifo needs no privilege.
	if err := mkfifo(filepath.Join(dir, "fifo")); err != nil {
		t.Fatalf("mkfifo: %v", err)
	}
	if err := WriteTar(io.Discard, os.DirFS(dir), TarOptions{Epoch: epoch}); err == nil {
		t.Error("WriteTar archived a FIFO")
	}
}

func TestNewImage(t *testing.T) {
	store, err := OpenStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	spec := ImageSpec{
		Platform:    v1.Platform{OS: "linux", Architecture: "arm64"},
		Created:     epoch,
		Labels:      map[string]string{"org.mobyproject.linuxkit.kernel.buildimage": "linuxkit/alpine:abc"},
		Annotations: map[string]string{"org.lkbuild.source.sha256": "0123"},
		Layers:      []ImageLayer{{Layer: layerOf(t, store, makeTree(t, time.Now(), 0o644), TarOptions{Epoch: epoch}), CreatedBy: "lkbuild"}},
	}
	img, err := NewImage(spec)
	if err != nil {
		t.Fatal(err)
	}
	if err := validate.Image(img); err != nil {
		t.Fatal(err)
	}
	again, err := NewImage(spec)
	if err != nil {
		t.Fatal(err)
	}
	d1, _ := img.Digest()
	d2, _ := again.Digest()
	if d1 != d2 {
		t.Errorf("same spec, two digests: %s %s", d1, d2)
	}

	raw, err := img.RawConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	if err := json.Unmarshal(raw, &cfg); err != nil {
		t.Fatal(err)
	}
	c := cfg["config"].(map[string]any)
	for _, k := range []string{"Entrypoint", "Cmd"} {
		if v, ok := c[k].([]any); !ok || len(v) != 0 {
			t.Errorf("config.%s = %#v, want []", k, c[k])
		}
	}
	if c["WorkingDir"] != "/" || cfg["architecture"] != "arm64" || cfg["os"] != "linux" || cfg["created"] != "2023-11-14T22:13:20Z" {
		t.Errorf("config %s", raw)
	}
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	if m.Annotations["org.lkbuild.source.sha256"] != "0123" {
		t.Errorf("manifest annotations %v", m.Annotations)
	}

	// Write it as an OCI layout and read it back, both with our reader and
	// with go-containerregistry's.
	if err := store.WriteLayout(context.Background(), img, spec.Platform, "6.6.71-abc-arm64", "6.6.71-arm64"); err != nil {
		t.Fatal(err)
	}
	got, _, err := store.ImageByName("6.6.71-arm64")
	if err != nil {
		t.Fatal(err)
	}
	if gd, _ := got.Digest(); gd != d1 {
		t.Errorf("layout holds %s, wrote %s", gd, d1)
	}
	p, err := layout.FromPath(store.Dir())
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
	if _, _, err := store.ImageByName("nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing name: got %v, want ErrNotFound", err)
	}
}

// TestWriteTarBeforeEntry: the hook sees every entry once everything
// before it is written, at a tar block boundary, and does not change the
// stream.
func TestWriteTarBeforeEntry(t *testing.T) {
	fsys := fstest.MapFS{
		"a.c":     &fstest.MapFile{Data: []byte("int a;\n")},
		"d/b.c":   &fstest.MapFile{Data: bytes.Repeat([]byte("x"), 1000)},
		"d/e/c.h": &fstest.MapFile{Data: []byte{}},
	}
	var plain bytes.Buffer
	if err := WriteTar(&plain, fsys, TarOptions{Prefix: "linux/"}); err != nil {
		t.Fatal(err)
	}
	var hooked bytes.Buffer
	var names []string
	err := WriteTar(&hooked, fsys, TarOptions{Prefix: "linux/", BeforeEntry: func(name string) error {
		if hooked.Len()%512 != 0 {
			t.Errorf("before %s: %d bytes written, not a block boundary", name, hooked.Len())
		}
		names = append(names, name)
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(plain.Bytes(), hooked.Bytes()) {
		t.Errorf("the hook changed the stream")
	}
	want := []string{"linux/", "linux/a.c", "linux/d/", "linux/d/b.c", "linux/d/e/", "linux/d/e/c.h"}
	if !slices.Equal(names, want) {
		t.Errorf("hook saw %q, want %q", names, want)
	}
	boom := errors.New("boom")
	if err := WriteTar(io.Discard, fsys, TarOptions{BeforeEntry: func(string) error { return boom }}); !errors.Is(err, boom) {
		t.Errorf("a failing hook gave %v", err)
	}
}
