package builder

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"

	"github.com/lkbuild/lkbuild/internal/cachedir"
	"github.com/lkbuild/lkbuild/oci"
)

// builtImage runs a fake build and returns its image.
func builtImage(t *testing.T, fb *fakeBuild, w *fakeWorld) (v1.Image, *BuildResult) {
	t.Helper()
	res, err := fb.run(w)
	if err != nil {
		t.Fatal(err)
	}
	img, _, err := fb.env.Output.ImageByName(fb.target.Ref)
	if err != nil {
		t.Fatal(err)
	}
	return img, res
}

func TestReadRecordedRoundTrip(t *testing.T) {
	w := newFakeWorld(t)
	fb := newFakeBuild(t, t.TempDir(), Request{})
	img, res := builtImage(t, fb, w)
	rec, err := ReadRecorded(img)
	if err != nil {
		t.Fatal(err)
	}
	p := res.Provenance
	got := rec.Provenance
	if got.SourceSHA256 != p.SourceSHA256 || got.BuilderDigest != p.BuilderDigest || got.ConfigSHA256 != p.ConfigSHA256 ||
		got.Epoch != p.Epoch || got.Arch != p.Arch || got.SeriesHash != p.SeriesHash || len(got.Patches) != len(p.Patches) {
		t.Errorf("read back %+v\nbuilt     %+v", got, p)
	}
	for i := range p.Patches {
		if got.Patches[i].SHA256 != p.Patches[i].SHA256 || got.Patches[i].File != filepath.Base(p.Patches[i].File) {
			t.Errorf("patch %d: %+v, built %+v", i, got.Patches[i], p.Patches[i])
		}
	}
	if rec.Version != fb.target.Plan.Version.String() || rec.Revision != fb.target.Revision {
		t.Errorf("version %q revision %q, want %s %s", rec.Version, rec.Revision, fb.target.Plan.Version, fb.target.Revision)
	}
	if n, err := rec.XZLevel(); err != nil || n != DefaultXZLevel {
		t.Errorf("xz level %d, %v", n, err)
	}
}

func TestReadRecordedRefusesBadImages(t *testing.T) {
	w := newFakeWorld(t)
	fb := newFakeBuild(t, t.TempDir(), Request{})
	img, _ := builtImage(t, fb, w)
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	without := func(key string) v1.Image {
		a := map[string]string{}
		for k, v := range m.Annotations {
			if k != key {
				a[k] = v
			}
		}
		// mutate.Annotations merges: start from an image without any.
		return mutate.Annotations(stripAnnotations(t, img), a).(v1.Image)
	}
	with := func(key, v string) v1.Image {
		return mutate.Annotations(img, map[string]string{key: v}).(v1.Image)
	}
	for _, tc := range []struct {
		name string
		img  v1.Image
		want string
	}{
		{"no provenance", stripAnnotations(t, img), "records no lkbuild inputs"},
		{"no epoch", without(AnnotationEpoch), AnnotationEpoch + " is missing"},
		{"bad epoch", with(AnnotationEpoch, "yesterday"), "not a count of seconds"},
		{"bad builder digest", with(AnnotationBuilderDigest, "sha256:xyz"), AnnotationBuilderDigest},
		{"bad xz", with(AnnotationSourceXZ, "-11"), "xz preset"},
		{"bad patches", with(AnnotationPatches, "not a line"), "SHA256  FILE"},
		{"bad source", with(AnnotationSourceURL, "https://example.invalid/linux.tar.gz"), "names no kernel release"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ReadRecorded(tc.img)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("ReadRecorded: %v, want an error with %q", err, tc.want)
			}
			if tc.name == "no provenance" && !errors.Is(err, ErrNoProvenance) {
				t.Errorf("%v is not ErrNoProvenance", err)
			}
		})
	}
}

// stripAnnotations returns img with a manifest without annotations.
func stripAnnotations(t *testing.T, img v1.Image) v1.Image {
	t.Helper()
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	mt, err := img.MediaType()
	if err != nil {
		t.Fatal(err)
	}
	out, err := mutate.ConfigFile(mutate.MediaType(empty.Image, mt), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if out, err = mutate.AppendLayers(out, layers...); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestVerifyRebuilds verifies a fake build's image with a rebuild in
// another cache and layout (identical), and an image whose recorded patch
// hash was changed (different, the annotation named).
func TestVerifyRebuilds(t *testing.T) {
	w := newFakeWorld(t)
	dir := t.TempDir()
	fb := newFakeBuild(t, dir, Request{})
	img, _ := builtImage(t, fb, w)
	if refs, err := fb.env.Output.Referrers(mustDigest(t, img), ""); err != nil || len(refs) != 2 {
		t.Fatalf("the build attached %d documents (%v), want the provenance and the SBOM", len(refs), err)
	}
	rec, err := ReadRecorded(img)
	if err != nil {
		t.Fatal(err)
	}
	vt, err := VerifyTarget(context.Background(), rec, VerifyRequest{KernelDir: fb.target.KernelDir, BuilderImage: "oci:/elsewhere:builder", Jobs: 7})
	if err != nil {
		t.Fatal(err)
	}
	if vt.Plan.Jobs != 7 || vt.Plan.BuilderImage != rec.Provenance.BuilderImage {
		t.Errorf("verify target: jobs %d, builder %q", vt.Plan.Jobs, vt.Plan.BuilderImage)
	}
	env := verifyEnv(t)
	v, err := Verify(context.Background(), img, vt, env, Policy{XZLevel: DefaultXZLevel}, w.options()...)
	if err != nil {
		t.Fatal(err)
	}
	if !v.Identical || v.Diff != nil || v.Rebuilt != mustDigest(t, img) {
		t.Fatalf("verify of the built image: %+v", v)
	}

	forged := mutate.Annotations(img, map[string]string{AnnotationPatches: strings.Repeat("0", 64) + "  0001-forged.patch"}).(v1.Image)
	v, err = Verify(context.Background(), forged, vt, env, Policy{XZLevel: DefaultXZLevel}, w.options()...)
	if err != nil {
		t.Fatal(err)
	}
	if v.Identical || v.Diff == nil || !v.Build.Skipped {
		t.Fatalf("verify of a forged image: identical %v, diff %v, rebuild reused %v", v.Identical, v.Diff, v.Build.Skipped)
	}
	var named bool
	for _, f := range v.Diff.Manifest {
		named = named || strings.HasSuffix(f.Path, AnnotationPatches)
	}
	if !named {
		t.Errorf("the forged patches annotation is not named: %+v", v.Diff.Manifest)
	}
}

func verifyEnv(t *testing.T) Environment {
	t.Helper()
	cache, err := cachedir.New(filepath.Join(t.TempDir(), "cache"))
	if err != nil {
		t.Fatal(err)
	}
	out, err := OpenVerifyLayout(filepath.Join(t.TempDir(), "out"))
	if err != nil {
		t.Fatal(err)
	}
	reg, err := oci.NewRegistry()
	if err != nil {
		t.Fatal(err)
	}
	return Environment{Registry: reg, Cache: cache, Output: out}
}

func TestVerifyTargetRefuses(t *testing.T) {
	w := newFakeWorld(t)
	fb := newFakeBuild(t, t.TempDir(), Request{})
	img, _ := builtImage(t, fb, w)
	rec, err := ReadRecorded(img)
	if err != nil {
		t.Fatal(err)
	}
	other := *rec
	other.Revision = strings.Repeat("1", 40)
	dirty := *rec
	dirty.Provenance.SeriesHash += "-dirty"
	for _, tc := range []struct {
		name string
		rec  *Recorded
		edit func(kdir string)
		want string
	}{
		{"another commit", &other, nil, "git -C"},
		{"built dirty", &dirty, nil, "uncommitted changes"},
		{"dirty here", rec, func(kdir string) {
			p := filepath.Join(kdir, "6.12.x", "build-args")
			data, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, append(data, "# changed\n"...), 0o644); err != nil {
				t.Fatal(err)
			}
		}, "commit or stash"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			kdir := checkout(t, t.TempDir())
			if tc.edit != nil {
				tc.edit(kdir)
			}
			_, err := VerifyTarget(context.Background(), tc.rec, VerifyRequest{KernelDir: kdir, BuilderImage: "oci:/x:builder"})
			var ie *InputError
			if !errors.As(err, &ie) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("VerifyTarget: %v, want an *InputError with %q", err, tc.want)
			}
		})
	}
}

func TestStatementCheck(t *testing.T) {
	w := newFakeWorld(t)
	fb := newFakeBuild(t, t.TempDir(), Request{})
	img, _ := builtImage(t, fb, w)
	d := mustDigest(t, img)
	refs, err := fb.env.Output.Referrers(d, ArtifactProvenance)
	if err != nil || len(refs) != 1 {
		t.Fatalf("provenance referrers: %v, %v", refs, err)
	}
	data, err := fb.env.Output.ReadAttachment(refs[0])
	if err != nil {
		t.Fatal(err)
	}
	st, err := ReadStatement(data, d)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := ReadRecorded(img)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Check(rec); err != nil {
		t.Errorf("the build's own provenance: %v", err)
	}
	other := *rec
	other.Provenance.SourceSHA256 = strings.Repeat("e", 64)
	if err := st.Check(&other); err == nil || !strings.Contains(err.Error(), "source") {
		t.Errorf("a provenance that disagrees on the source: %v", err)
	}
	if _, err := ReadStatement(data, v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("f", 64)}); err == nil {
		t.Errorf("a provenance about another image was accepted")
	}
	if _, err := ReadStatement([]byte(`{"_type":"x"}`), d); err == nil {
		t.Errorf("a statement of another type was accepted")
	}
}

// TestReadListHostile: the modules lists are read from a tree the sandbox
// wrote; a symlink out of it, a FIFO or a huge file must not be followed,
// block or be read whole.
func TestReadListHostile(t *testing.T) {
	outside := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(outside, []byte("kernel/secret.ko\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		make func(root, p string) error
		want string // "" for no error
		list []string
	}{
		{"absent", func(string, string) error { return nil }, "", nil},
		{"lines", func(_, p string) error { return os.WriteFile(p, []byte("b.ko\na.ko\n\na.ko\n"), 0o644) }, "", []string{"a.ko", "b.ko"}},
		{"symlink out", func(_, p string) error { return os.Symlink(outside, p) }, "not a regular file", nil},
		{"parent symlink out", func(root, p string) error {
			if err := os.RemoveAll(filepath.Dir(p)); err != nil {
				return err
			}
			return os.Symlink(filepath.Dir(outside), filepath.Dir(p))
		}, "escapes", nil},
		{"fifo", func(_, p string) error { return syscall.Mkfifo(p, 0o644) }, "not a regular file", nil},
		{"huge", func(_, p string) error {
			f, err := os.Create(p)
			if err != nil {
				return err
			}
			defer f.Close()
			return f.Truncate(maxModuleListBytes + 1)
		}, "larger than", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			p := filepath.Join(root, "m", "modules.order")
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if tc.name == "parent symlink out" {
				p = filepath.Join(root, "m", "secret")
			}
			if err := tc.make(root, p); err != nil {
				t.Fatal(err)
			}
			rel, _ := filepath.Rel(root, p)
			got, err := readList(root, rel)
			if tc.want == "" {
				if err != nil || strings.Join(got, ",") != strings.Join(tc.list, ",") {
					t.Errorf("readList = %v, %v; want %v", got, err, tc.list)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("readList = %v, %v; want an error with %q", got, err, tc.want)
			}
		})
	}
}

func mustDigest(t *testing.T, img v1.Image) v1.Hash {
	t.Helper()
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestVerifyFetchedInputs: a rebuild whose source or builder is not the
// one the image records stops before building, with an *InputError.
func TestVerifyFetchedInputs(t *testing.T) {
	w := newFakeWorld(t)
	fb := newFakeBuild(t, t.TempDir(), Request{})
	img, _ := builtImage(t, fb, w)
	for _, tc := range []struct {
		name string
		edit func(p *Provenance)
		want string
	}{
		{"source", func(p *Provenance) { p.SourceSHA256 = strings.Repeat("9", 64) }, "mirror"},
		{"builder", func(p *Provenance) { p.BuilderDigest = "sha256:" + strings.Repeat("9", 64) }, "--builder-image names another image"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec, err := ReadRecorded(img)
			if err != nil {
				t.Fatal(err)
			}
			tc.edit(&rec.Provenance)
			vt, err := VerifyTarget(context.Background(), rec, VerifyRequest{KernelDir: fb.target.KernelDir, BuilderImage: "oci:/x:builder"})
			if err != nil {
				t.Fatal(err)
			}
			_, err = Verify(context.Background(), img, vt, verifyEnv(t), Policy{XZLevel: DefaultXZLevel}, w.options()...)
			var ie *InputError
			if !errors.As(err, &ie) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Verify: %v, want an *InputError with %q", err, tc.want)
			}
		})
	}
}

// TestOpenVerifyLayout: only a new directory or one verify made holds
// rebuilds; a build's layout (or the verified image's own) is refused.
func TestOpenVerifyLayout(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "rebuilt")
	if _, err := OpenVerifyLayout(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenVerifyLayout(dir); err != nil {
		t.Errorf("a layout verify made, again: %v", err)
	}
	built := t.TempDir()
	if _, err := oci.OpenStore(built); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenVerifyLayout(built); err == nil || !strings.Contains(err.Error(), "did not rebuild") {
		t.Errorf("a build's layout: %v, want it refused", err)
	}
}

// TestOpenSubjectLayoutNames: image names hold colons of their own
// (registry ports, tags); the layout is the shortest prefix that is one.
// A name may be the full one, the short one or the bare tag, and name an
// index.
func TestOpenSubjectLayoutNames(t *testing.T) {
	w := newFakeWorld(t)
	fb := newFakeBuild(t, t.TempDir(), Request{})
	img, _ := builtImage(t, fb, w)
	dir := fb.env.Output.Dir()
	for _, tc := range []struct {
		ref, want string
	}{
		{"oci:" + dir + ":" + fb.target.Ref, ""},
		{"oci:" + dir + ":docker.io/" + fb.target.Ref, ""},
		{"oci:" + dir + ":" + fb.target.Tags[0].Tag, ""}, // the bare tag
		{"oci:" + dir + ":" + fb.target.Tags[1].Tag, ""}, // an index, one arch in it
		{"oci:" + dir + ":" + fb.target.Tags[1].String() + "-riscv64", "not found"},
		{"oci:" + dir, "name the image"},
		{"oci:" + dir + ":", "name the image"},
		{"oci:" + t.TempDir() + ":x", "no OCI layout"},
		{"oci:" + dir + ":registry.invalid:5000/other:1", "not found"},
	} {
		s, err := OpenSubject(context.Background(), nil, nil, tc.ref, v1.Platform{})
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.ref, err)
		case tc.want == "" && mustDigest(t, s.Image) != mustDigest(t, img):
			t.Errorf("%s: another image", tc.ref)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: %v, want an error with %q", tc.ref, err, tc.want)
		}
	}
}

// TestBuiltImageAnotherOrg: push finds a build written under another
// org by its image name and tag.
func TestBuiltImageAnotherOrg(t *testing.T) {
	w := newFakeWorld(t)
	fb := newFakeBuild(t, t.TempDir(), Request{})
	img, _ := builtImage(t, fb, w)
	req := fb.target.Request
	req.Query.Org = "registry.invalid:5000/elsewhere"
	other, err := Resolve(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	got, _, err := BuiltImage(fb.env.Output, other)
	if err != nil || mustDigest(t, got) != mustDigest(t, img) {
		t.Fatalf("BuiltImage under another org: %v", err)
	}
}

func TestPinnedBuilder(t *testing.T) {
	d := "sha256:" + strings.Repeat("ab", 32)
	for _, tc := range []struct{ recorded, want string }{
		{"127.0.0.1:5000/e2e/builder:bookworm", "127.0.0.1:5000/e2e/builder@" + d},
		{"linuxkit/alpine:0123", "index.docker.io/linuxkit/alpine@" + d},
		{"Not A Reference", ""},
	} {
		got, err := pinnedBuilder(tc.recorded, d)
		if got != tc.want || (tc.want == "") != (err != nil) {
			t.Errorf("pinnedBuilder(%q) = %q, %v; want %q", tc.recorded, got, err, tc.want)
		}
	}
}
