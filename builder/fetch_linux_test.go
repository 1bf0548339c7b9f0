package builder

import (
	"archive/tar"
	"context"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/ulikunitz/xz"

	"github.com/lkbuild/lkbuild/internal/cachedir"
	"github.com/lkbuild/lkbuild/internal/kernelsrc/mirrortest"
	"github.com/lkbuild/lkbuild/internal/pgptest"
	"github.com/lkbuild/lkbuild/kernel"
	"github.com/lkbuild/lkbuild/oci"
	"github.com/lkbuild/lkbuild/toolchain"
)

// counter counts the requests a test server gets.
type counter struct {
	mu   sync.Mutex
	reqs []string
}

func (c *counter) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.mu.Lock()
		c.reqs = append(c.reqs, r.Method+" "+r.URL.Path)
		c.mu.Unlock()
		h.ServeHTTP(w, r)
	})
}

func (c *counter) take() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	r := c.reqs
	c.reqs = nil
	return r
}

// fetchWorld is a connected host's network on 127.0.0.1: a kernel.org-style
// mirror signed by the checkout's key and a registry with the builder,
// plus a local microcode repository.
type fetchWorld struct {
	kernelDir, ucode string
	// builder is an index of amd64 and arm64 images, cross an image for
	// the host's arch.
	mirror, builder, cross string
	mirrorReqs             counter
	registryReqs           counter
}

func newFetchWorld(t *testing.T) *fetchWorld {
	t.Helper()
	dir := t.TempDir()
	w := &fetchWorld{kernelDir: checkout(t, dir)}
	// The mirror's key, in place of checkout's.
	key, err := pgptest.WriteKeyring(filepath.Join(w.kernelDir, "common", "keys.asc"))
	if err != nil {
		t.Fatal(err)
	}

	// The release: a small tree, as linux-6.12.117/.
	txz := filepath.Join(dir, "linux.tar.xz")
	writeTarXZ(t, txz, map[string]string{"linux-6.12.117/Makefile": "all:\n", "linux-6.12.117/init/main.c": "int main;\n"})
	mdir := filepath.Join(dir, "mirror")
	if err := mirrortest.Write(mdir, key, mirrortest.Release{Version: kernel.Version{Major: 6, Minor: 12, Patch: 117}, XZ: txz}); err != nil {
		t.Fatal(err)
	}
	ms := httptest.NewServer(w.mirrorReqs.wrap(http.FileServer(http.Dir(mdir))))
	t.Cleanup(ms.Close)
	w.mirror = ms.URL

	rs := httptest.NewServer(w.registryReqs.wrap(registry.New(registry.Logger(log.New(io.Discard, "", 0)))))
	t.Cleanup(rs.Close)
	host := strings.TrimPrefix(rs.URL, "http://")
	w.builder, w.cross = host+"/builder:1", host+"/cross:1"
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for _, arch := range []string{"amd64", "arm64"} {
		p := v1.Platform{OS: "linux", Architecture: arch}
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: platformImage(t, arch), Descriptor: v1.Descriptor{Platform: &p}})
	}
	if err := remote.WriteIndex(mustRef(t, w.builder), idx); err != nil {
		t.Fatal(err)
	}
	hostArch, err := toolchain.HostArch()
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(mustRef(t, w.cross), platformImage(t, toolchain.Platform(hostArch).Architecture)); err != nil {
		t.Fatal(err)
	}

	w.ucode = filepath.Join(dir, "ucode")
	repo, err := git.PlainInit(w.ucode, false)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(w.ucode, "intel-ucode"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(w.ucode, "intel-ucode", "06-55-04"), []byte("ucode"), 0o644); err != nil {
		t.Fatal(err)
	}
	wt, err := repo.Worktree()
	if err != nil {
		t.Fatal(err)
	}
	if err := wt.AddGlob("intel-ucode"); err != nil {
		t.Fatal(err)
	}
	sig := &object.Signature{Name: "test", Email: "test@lkbuild.invalid", When: time.Unix(1700000000, 0)}
	h, err := wt.Commit("ucode", &git.CommitOptions{Author: sig, Committer: sig})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := repo.CreateTag(kernel.UcodeRef, h, nil); err != nil {
		t.Fatal(err)
	}
	w.take()
	return w
}

// platformImage is a small random image for linux/arch.
func platformImage(t *testing.T, arch string) v1.Image {
	t.Helper()
	img, err := random.Image(512, 1)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", arch
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		t.Fatal(err)
	}
	return img
}

func mustRef(t *testing.T, s string) name.Reference {
	t.Helper()
	ref, err := name.ParseReference(s)
	if err != nil {
		t.Fatal(err)
	}
	return ref
}

// take returns and forgets the requests both servers got.
func (w *fetchWorld) take() []string {
	return append(w.mirrorReqs.take(), w.registryReqs.take()...)
}

// writeTar writes files into a plain tar.
func writeTar(t *testing.T, file string, files map[string]string) {
	t.Helper()
	f, err := os.Create(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	writeTarTo(t, f, files)
}

func writeTarTo(t *testing.T, w io.Writer, files map[string]string) {
	t.Helper()
	tw := tar.NewWriter(w)
	for n, body := range files {
		if err := tw.WriteHeader(&tar.Header{Name: n, Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(tw, body); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
}

func writeTarXZ(t *testing.T, file string, files map[string]string) {
	t.Helper()
	f, err := os.Create(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zw, err := xz.NewWriter(f)
	if err != nil {
		t.Fatal(err)
	}
	writeTarTo(t, zw, files)
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
}

// env is an environment on cache dir, offline or not.
func (w *fetchWorld) env(t *testing.T, cache string, offline bool) Environment {
	t.Helper()
	reg, err := oci.NewRegistry(oci.WithOffline(offline))
	if err != nil {
		t.Fatal(err)
	}
	c, err := cachedir.Open(cache)
	if err != nil {
		t.Fatal(err)
	}
	return Environment{Registry: reg, Cache: c, SourceMirror: w.mirror, UcodeRepo: w.ucode, Offline: offline}
}

func (w *fetchWorld) target(t *testing.T, arch string) *Target {
	t.Helper()
	tg, err := Resolve(context.Background(), Request{
		KernelDir: w.kernelDir, Query: kernel.Query{Series: "6.12.x"}, Arch: arch,
		BuilderImage: w.builder, Jobs: 2, Getenv: func(string) string { return "" },
	})
	if err != nil {
		t.Fatal(err)
	}
	return tg
}

// TestFetchThenOffline: a fetch into an empty cache gets every piece; a
// second one, and an offline one, make no request; offline with pieces
// missing names the first one missing and makes no request either.
func TestFetchThenOffline(t *testing.T) {
	w := newFetchWorld(t)
	tg := w.target(t, "x86_64")
	ctx := context.Background()
	cache := filepath.Join(t.TempDir(), "cache")

	// Offline into an empty cache: the source is the first piece.
	_, err := Fetch(ctx, tg, w.env(t, cache, true), nil)
	var me *MissingError
	if !errors.As(err, &me) || !strings.Contains(me.Piece, "6.12.117 source") || !strings.Contains(err.Error(), "sha256sums.asc") {
		t.Errorf("offline fetch into an empty cache: got %v, want a MissingError for the source naming sha256sums.asc", err)
	}
	if r := w.take(); len(r) != 0 {
		t.Errorf("offline fetch made requests: %v", r)
	}

	res, err := Fetch(ctx, tg, w.env(t, cache, false), nil)
	if err != nil {
		t.Fatalf("fetch: %v", err)
	}
	if res.SourceSHA256 == "" || res.Ucode == "" || res.Builder == "" {
		t.Errorf("fetch result %+v: a piece is missing", res)
	}
	reqs := w.take()
	for _, want := range []string{"sha256sums.asc", ".tar.sign", ".tar.xz", "/v2/builder/manifests/1", "/blobs/"} {
		if !strings.Contains(strings.Join(reqs, "\n"), want) {
			t.Errorf("the first fetch asked for no %s: %v", want, reqs)
		}
	}

	for _, offline := range []bool{false, true} {
		again, err := Fetch(ctx, tg, w.env(t, cache, offline), nil)
		if err != nil {
			t.Fatalf("fetch again (offline %v): %v", offline, err)
		}
		if *again != *res {
			t.Errorf("fetch again (offline %v): %+v, first %+v", offline, again, res)
		}
		if r := w.take(); len(r) != 0 {
			t.Errorf("fetch again (offline %v) made requests: %v", offline, r)
		}
	}

	// Pieces gone: each is named, and offline nothing is asked for.
	c, err := cachedir.Open(cache)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(c.Rootfs()); err != nil {
		t.Fatal(err)
	}
	store, err := c.Blobs()
	if err != nil {
		t.Fatal(err)
	}
	d, err := v1.NewHash(res.Builder)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(store.BlobPath(d)); err != nil {
		t.Fatal(err)
	}
	_, err = Fetch(ctx, tg, w.env(t, cache, true), nil)
	if !errors.As(err, &me) || !strings.Contains(me.Piece, "builder image "+w.builder) {
		t.Errorf("offline fetch without the builder: got %v, want a MissingError for the builder image", err)
	}
	if r := w.take(); len(r) != 0 {
		t.Errorf("offline fetch made requests: %v", r)
	}
	// Online, fetch mends it.
	if _, err := Fetch(ctx, tg, w.env(t, cache, false), nil); err != nil {
		t.Fatal(err)
	}
	if r := w.take(); len(r) == 0 {
		t.Error("fetch of a pruned builder made no request")
	}

	// An offline Environment needs an offline Registry.
	env := w.env(t, cache, false)
	env.Offline = true
	if _, err := Fetch(ctx, tg, env, nil); err == nil || !strings.Contains(err.Error(), "oci.WithOffline") {
		t.Errorf("offline environment, online registry: got %v", err)
	}
}

// TestFetchForeignArch: for a foreign arch with a cross image, fetch gets
// that arch's builder and the host's cross image; again, and offline, it
// makes no request.
func TestFetchForeignArch(t *testing.T) {
	host, err := toolchain.HostArch()
	if err != nil {
		t.Fatal(err)
	}
	foreign, native := "aarch64", "x86_64"
	if host.Uname == "aarch64" {
		foreign, native = native, foreign
	}
	w := newFetchWorld(t)
	tg := w.target(t, foreign)
	ctx := context.Background()
	cache := filepath.Join(t.TempDir(), "cache")
	env := w.env(t, cache, false)
	env.CrossImage = w.cross
	res, err := Fetch(ctx, tg, env, nil)
	if err != nil {
		t.Fatal(err)
	}
	arm, _ := mustIndexChild(t, w.builder, toolchain.Platform(tg.BuilderArch).Architecture)
	cross, _ := remote.Head(mustRef(t, w.cross))
	if res.Builder != arm.String() || res.Cross != cross.Digest.String() {
		t.Errorf("fetch for %s: %+v, want builder %s, cross %s", foreign, res, arm, cross.Digest)
	}
	w.take()
	for _, offline := range []bool{false, true} {
		env := w.env(t, cache, offline)
		env.CrossImage = w.cross
		again, err := Fetch(ctx, tg, env, nil)
		if err != nil || *again != *res {
			t.Errorf("fetch again (offline %v): %+v, %v; first %+v", offline, again, err, res)
		}
		if r := w.take(); len(r) != 0 {
			t.Errorf("fetch again (offline %v) made requests: %v", offline, r)
		}
	}
	// The native builder was never fetched: offline, it is named.
	_, err = Fetch(ctx, w.target(t, native), w.env(t, cache, true), nil)
	var me *MissingError
	if !errors.As(err, &me) || !strings.Contains(me.Piece, "builder image") || !strings.Contains(me.Piece, "for "+native) {
		t.Errorf("offline fetch for %s after one for %s: got %v, want a MissingError naming the %s builder", native, foreign, err, native)
	}
}

// mustIndexChild is the digest of arch's image in the index at ref.
func mustIndexChild(t *testing.T, ref, arch string) (v1.Hash, error) {
	t.Helper()
	idx, err := remote.Index(mustRef(t, ref))
	if err != nil {
		t.Fatal(err)
	}
	m, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range m.Manifests {
		if d.Platform != nil && d.Platform.Architecture == arch {
			return d.Digest, nil
		}
	}
	t.Fatalf("no %s in %s", arch, ref)
	return v1.Hash{}, nil
}

// TestBundle: a bundle written after a fetch serves an offline fetch on an
// empty cache with what the online one got, making no request; each bad
// bundle is refused, naming the piece.
func TestBundle(t *testing.T) {
	w := newFetchWorld(t)
	tg := w.target(t, "x86_64")
	ctx := context.Background()
	online := w.env(t, filepath.Join(t.TempDir(), "cache"), false)
	res, err := Fetch(ctx, tg, online, nil)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "bundle")
	bw, err := NewBundleWriter(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := bw.AddTarget(ctx, tg, online); err != nil {
		t.Fatal(err)
	}
	if err := bw.Close(); err != nil {
		t.Fatal(err)
	}
	w.take()

	// useBundle imports the bundle at d into a new cache and fetches
	// offline from it.
	useBundle := func(d, arch string) (*FetchResult, error) {
		b, err := OpenBundle(d)
		if err != nil {
			return nil, err
		}
		env := w.env(t, filepath.Join(t.TempDir(), "cache"), true)
		a, err := kernel.ParseArch(arch)
		if err != nil {
			t.Fatal(err)
		}
		if err := b.Import(ctx, env.Cache, a, w.builder); err != nil {
			store, _ := env.Cache.Blobs()
			if _, rerr := store.Resolved(mustRef(t, w.builder).Name(), toolchain.Platform(a)); rerr == nil {
				t.Errorf("a bundle that failed its import named the builder in the cache")
			}
			return nil, err
		}
		env.SourceMirror, env.UcodeRepo = b.SourceMirror(), b.UcodeRepo()
		return Fetch(ctx, w.target(t, arch), env, nil)
	}
	got, err := useBundle(dir, "x86_64")
	if err != nil {
		t.Fatalf("fetch from the bundle: %v", err)
	}
	// Only where the tarball was read from differs (the image records the
	// plan's kernel.org URL either way).
	got.SourceURL = res.SourceURL
	if *got != *res || got.Ucode == "" {
		t.Errorf("fetch from the bundle: %+v, online %+v", got, res)
	}
	if r := w.take(); len(r) != 0 {
		t.Errorf("using the bundle made requests: %v", r)
	}

	// The same as a tar.gz, with the bundle under one directory.
	tgz := filepath.Join(t.TempDir(), "bundle.tar.gz")
	if out, err := exec.Command("tar", "-C", filepath.Dir(dir), "-czf", tgz, filepath.Base(dir)).CombinedOutput(); err != nil {
		t.Fatalf("tar: %v %s", err, out)
	}
	ab, remove, err := OpenBundleArchive(ctx, tgz, t.TempDir())
	if err != nil {
		t.Fatalf("open the bundle's tar.gz: %v", err)
	}
	if _, err := useBundle(ab.dir, "x86_64"); err != nil {
		t.Errorf("fetch from the unpacked bundle: %v", err)
	}
	remove()
	if _, err := os.Stat(ab.dir); err == nil {
		t.Errorf("the unpacked bundle %s is still there", ab.dir)
	}
	// A tar whose entry leaves its root is refused by the extractor.
	evil := filepath.Join(t.TempDir(), "evil.tar")
	writeTar(t, evil, map[string]string{"../escaped": "x", "manifest.json": `{"format": 1, "arches": ["x86_64"]}`})
	work := t.TempDir()
	if _, _, err := OpenBundleArchive(ctx, evil, filepath.Join(work, "w")); err == nil || !strings.Contains(err.Error(), "escaped") {
		t.Errorf("a bundle tar with ../escaped: %v, want a refusal naming it", err)
	}
	if _, err := os.Stat(filepath.Join(work, "escaped")); err == nil {
		t.Error("../escaped was written outside the bundle's directory")
	}

	// Bad bundles: a copy of the good one, spoilt.
	b, err := OpenBundle(dir)
	if err != nil {
		t.Fatal(err)
	}
	piece := func(kind, suffix string) BundlePiece {
		for _, p := range b.Manifest().Pieces {
			if p.Kind == kind && strings.HasSuffix(p.Path+p.Ref, suffix) {
				return p
			}
		}
		t.Fatalf("no %s piece *%s", kind, suffix)
		return BundlePiece{}
	}
	img := piece("image", "/builder:1")
	layout, err := oci.OpenStore(filepath.Join(dir, "images"))
	if err != nil {
		t.Fatal(err)
	}
	bimg, _, err := layout.ImageByName(img.Name)
	if err != nil {
		t.Fatal(err)
	}
	layers, _ := bimg.Layers()
	layerDigest, _ := layers[0].Digest()
	for _, tc := range []struct {
		name  string
		spoil func(d string)
		arch  string
		want  []string
		is    error
	}{
		{"tarball missing", func(d string) { os.Remove(filepath.Join(d, piece("file", ".tar.xz").Path)) }, "x86_64",
			[]string{"the kernel 6.12.117 source, tarball"}, fs.ErrNotExist},
		{"tarball a symlink out", func(d string) {
			p := filepath.Join(d, piece("file", ".tar.xz").Path)
			os.Remove(p)
			if err := os.Symlink(filepath.Join(dir, piece("file", ".tar.xz").Path), p); err != nil {
				t.Fatal(err)
			}
		}, "x86_64", []string{"the kernel 6.12.117 source, tarball", "escapes"}, nil},
		{"sums tampered", func(d string) { appendTo(t, filepath.Join(d, piece("file", "sha256sums.asc").Path), "x") }, "x86_64",
			[]string{"sha256sums.asc"}, ErrBundleChanged},
		{"layer tampered", func(d string) {
			p := filepath.Join(d, "images", "blobs", "sha256", layerDigest.Hex)
			data, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			data[len(data)/2] ^= 1
			if err := os.WriteFile(p, data, 0o644); err != nil {
				t.Fatal(err)
			}
		}, "x86_64", []string{"the builder for x86_64"}, ErrBundleChanged},
		{"images missing", func(d string) { os.RemoveAll(filepath.Join(d, "images")) }, "x86_64", []string{"the images"}, fs.ErrNotExist},
		{"image missing", func(d string) { os.Remove(filepath.Join(d, "images", "index.json")) }, "x86_64", []string{"the builder for x86_64", "missing from images"}, nil},
		{"microcode missing", func(d string) { os.RemoveAll(filepath.Join(d, "ucode.git")) }, "x86_64", []string{"the Intel microcode"}, nil},
		{"no manifest", func(d string) { os.Remove(filepath.Join(d, "manifest.json")) }, "x86_64", []string{"not a bundle"}, nil},
		{"another arch", func(string) {}, "aarch64", []string{"is for x86_64, not aarch64", "--arch aarch64"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := filepath.Join(t.TempDir(), "bundle")
			if out, err := exec.Command("cp", "-a", dir, d).CombinedOutput(); err != nil {
				t.Fatalf("cp: %v %s", err, out)
			}
			tc.spoil(d)
			_, err := useBundle(d, tc.arch)
			for _, want := range tc.want {
				if err == nil || !strings.Contains(err.Error(), want) {
					t.Errorf("got %v, want an error saying %q", err, want)
				}
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("got %v, want one wrapping %v", err, tc.is)
			}
			if r := w.take(); len(r) != 0 {
				t.Errorf("a bad bundle made requests: %v", r)
			}
		})
	}
	if _, err := NewBundleWriter(dir); err == nil {
		t.Error("a bundle written over a bundle: no error")
	}

	// A manifest that names more than the build pulls (here the builder's
	// bytes as another image): verified, but only the builder is recorded
	// in the cache; a bundle cannot say what other references name.
	d := filepath.Join(t.TempDir(), "bundle")
	if out, err := exec.Command("cp", "-a", dir, d).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
	m := b.Manifest()
	extra := img
	extra.Ref, extra.For = "index.docker.io/library/alpine:3", "an image no build asked for"
	m.Pieces = append(m.Pieces, extra)
	data, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(d, "manifest.json"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	hb, err := OpenBundle(d)
	if err != nil {
		t.Fatal(err)
	}
	cache, err := cachedir.Open(filepath.Join(t.TempDir(), "cache"))
	if err != nil {
		t.Fatal(err)
	}
	if err := hb.Import(ctx, cache, kernel.Arch{Uname: "x86_64"}, w.builder); err != nil {
		t.Fatal(err)
	}
	store, err := cache.Blobs()
	if err != nil {
		t.Fatal(err)
	}
	amd64 := v1.Platform{OS: "linux", Architecture: "amd64"}
	if _, err := store.Resolved(extra.Ref, amd64); !errors.Is(err, oci.ErrOffline) {
		t.Errorf("the bundle named %s in the cache: %v", extra.Ref, err)
	}
	if _, err := store.Resolved(mustRef(t, w.builder).Name(), amd64); err != nil {
		t.Errorf("the builder is not named in the cache: %v", err)
	}
	// Listing a piece twice is refused.
	m.Pieces = append(m.Pieces, m.Pieces[0])
	if data, err = json.Marshal(m); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(d, "manifest.json"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenBundle(d); err == nil || !strings.Contains(err.Error(), "listed twice") {
		t.Errorf("a manifest listing a piece twice: %v", err)
	}
}

func appendTo(t *testing.T, file, s string) {
	t.Helper()
	f, err := os.OpenFile(file, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(s); err != nil {
		t.Fatal(err)
	}
}
