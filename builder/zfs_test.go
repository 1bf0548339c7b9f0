package builder

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/lkbuild/lkbuild/internal/kernelsrc"
	"github.com/lkbuild/lkbuild/kernel"
	"github.com/lkbuild/lkbuild/sandbox"
)

// zfsWorld is a fakeWorld with an OpenZFS tree whose META says meta, and
// a sandbox whose cp of the modules writes a module into Paths.Out.
func zfsWorld(t *testing.T, meta string) (*fakeWorld, []Option, *[]kernelsrc.Archive) {
	t.Helper()
	w := newFakeWorld(t)
	zfsDir := filepath.Join(t.TempDir(), "zfs-2.3.2")
	if err := os.MkdirAll(zfsDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if meta != "" {
		if err := os.WriteFile(filepath.Join(zfsDir, "META"), []byte(meta), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	w.fail = func(spec sandbox.Spec) (string, error) {
		if isCompile(spec) {
			// The kernel compiles into the build's layer (the kept object
			// tree), never the patches' layer, which the kept tree
			// records as the patches.
			for _, m := range spec.Mounts {
				if m.Target == "/linux" && (m.Overlay == nil || filepath.Base(m.Overlay.Upper) == "linux-patched") {
					t.Errorf("the compile writes /linux into %+v", m.Overlay)
				}
			}
		}
		if spec.Args[0] == "cp" {
			host, ok := hostPath(spec, "/out/lib/modules/6.12.117-linuxkit/extra")
			if !ok {
				t.Errorf("/out is not writable in the sandbox")
				return "", nil
			}
			os.MkdirAll(host, 0o755)
			return "", os.WriteFile(filepath.Join(host, "zfs.ko"), []byte("zfs\n"), 0o644)
		}
		return "", nil
	}
	var fetched []kernelsrc.Archive
	opts := append(w.options(), withArchive(func(ctx context.Context, o kernelsrc.Options, a kernelsrc.Archive) (kernelsrc.Tree, error) {
		if o.Mirror != "/srv/zfs" && o.Mirror != kernel.DefaultZFSMirror {
			t.Errorf("fetched from %s", o.Mirror)
		}
		fetched = append(fetched, a)
		return kernelsrc.Tree{Dir: zfsDir, SHA256: strings.Repeat("ef", 32), URL: o.Mirror + "/" + a.Tarball}, nil
	}))
	return w, opts, &fetched
}

const zfsMeta = "Meta: 1\nName: zfs\nVersion: 2.3.2\nRelease: 1\nLinux-Maximum: 6.14\nLinux-Minimum: 4.18\n"

func TestBuildZFS(t *testing.T) {
	w, opts, fetched := zfsWorld(t, zfsMeta)
	fb := newFakeBuild(t, t.TempDir(), Request{Query: kernel.Query{Tool: kernel.ToolZFS}})
	fb.env.ZFSMirror = "/srv/zfs"
	res, err := Build(context.Background(), fb.target, fb.env, fb.pol, opts...)
	if err != nil {
		t.Fatal(err)
	}
	if len(*fetched) != 1 || (*fetched)[0].Tarball != "zfs-2.3.2/zfs-2.3.2.tar.gz" || (*fetched)[0].Signature != "zfs-2.3.2/zfs-2.3.2.tar.gz.asc" {
		t.Errorf("fetched %+v", *fetched)
	}
	var phases []string
	for _, e := range fb.events {
		if e.Kind == EventPhaseStart {
			phases = append(phases, e.Phase)
		}
	}
	if want := []string{PhaseFetch, PhaseRootfs, PhasePatch, PhaseConfig, PhaseCompile, PhaseModules, "zfs", PhasePackage}; !slices.Equal(phases, want) {
		t.Errorf("phases %v, want %v", phases, want)
	}
	if !slices.Contains(w.steps, "./configure --with-config=kernel --with-linux=/linux --with-linux-obj=/linux") {
		t.Errorf("steps %q lack OpenZFS's configure", w.steps)
	}
	p := res.Provenance
	if p.Tool != kernel.ToolZFS || p.ZFSSHA256 != strings.Repeat("ef", 32) || p.ZFSURL != "https://github.com/openzfs/zfs/releases/download/zfs-2.3.2/zfs-2.3.2.tar.gz" {
		t.Errorf("provenance %+v", p)
	}
	img, _, err := fb.env.Output.ImageByName(fb.target.Ref)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := ReadRecorded(img)
	if err != nil || rec.Provenance.ZFSSHA256 != p.ZFSSHA256 || rec.Provenance.ZFSURL != p.ZFSURL {
		t.Errorf("recorded %+v, %v", rec, err)
	}
	if !strings.Contains(fb.target.Ref, "/zfs-kmod:6.12.117-") {
		t.Errorf("ref %s", fb.target.Ref)
	}
}

// TestBuildZFSRefused: an OpenZFS release that does not support the
// kernel, or a tarball that is not OpenZFS, stops the build before any
// step runs.
func TestBuildZFSRefused(t *testing.T) {
	for _, tc := range []struct{ name, meta, want string }{
		{"kernel too new", strings.Replace(zfsMeta, "6.14", "6.10", 1), "OpenZFS 2.3.2 supports kernels 4.18 to 6.10, not 6.12.117"},
		{"no META", "", "not an OpenZFS release tarball"},
		{"another version", strings.Replace(zfsMeta, "Version: 2.3.2", "Version: 2.3.1", 1), "META says version 2.3.1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w, opts, _ := zfsWorld(t, tc.meta)
			fb := newFakeBuild(t, t.TempDir(), Request{Query: kernel.Query{Tool: kernel.ToolZFS}})
			_, err := Build(context.Background(), fb.target, fb.env, fb.pol, opts...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
			for _, s := range w.steps {
				if !strings.HasPrefix(s, "rootfs ") {
					t.Errorf("ran %q", s)
				}
			}
			fb.checkNothingLeft(t)
		})
	}
}
