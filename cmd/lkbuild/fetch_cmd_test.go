package main

import (
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lkbuild/lkbuild/internal/pgptest"
	"github.com/lkbuild/lkbuild/oci"
)

// TestOfflineNamesWhatIsMissing: with --offline (or LKBUILD_OFFLINE=1) and
// an empty cache, build and fetch fail before any request, name the
// piece, and print the lkbuild fetch command that gets it.
func TestOfflineNamesWhatIsMissing(t *testing.T) {
	testGit(t)
	k := kernelRepo(t, "kernel", seriesKernelFiles())
	keys := filepath.Join(t.TempDir(), "keys.asc")
	if _, err := pgptest.WriteKeyring(keys); err != nil {
		t.Fatal(err)
	}
	cache := t.TempDir()
	common := []string{"--kernel-dir", k, "--series", "6.6.x", "--arch", "x86_64", "--keys", keys, "--builder-image", "registry.invalid/builder:1"}
	tests := []struct {
		name string
		env  bool
		args []string
		want []string
	}{
		{"build --offline", false, append([]string{"--offline", "--cache-dir", cache, "build", "--output", filepath.Join(t.TempDir(), "oci")}, common...),
			[]string{"offline: the kernel 6.6.71 source", "is not in the cache", "lkbuild --cache-dir " + cache + " fetch --kernel-dir " + k, "--builder-image registry.invalid/builder:1", "--keys " + keys}},
		{"build, LKBUILD_OFFLINE=1", true, append([]string{"--cache-dir", cache, "build", "--output", filepath.Join(t.TempDir(), "oci")}, common...),
			[]string{"offline: the kernel 6.6.71 source", "fetch --kernel-dir " + k}},
		{"fetch --offline", false, append([]string{"--offline", "--cache-dir", cache, "fetch"}, common...),
			[]string{"offline: the kernel 6.6.71 source", "lkbuild --cache-dir " + cache + " fetch"}},
		{"build --offline --push", false, append([]string{"--offline", "--cache-dir", cache, "build", "--push"}, common...),
			[]string{"pushing needs the network"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.env {
				t.Setenv("LKBUILD_OFFLINE", "1")
			}
			_, stderr, code := lkbuild(t, tc.args...)
			if code == 0 {
				t.Fatalf("exit 0, want a failure:\n%s", stderr)
			}
			for _, w := range tc.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, stderr)
				}
			}
		})
	}
}

func TestFetchHelp(t *testing.T) {
	out := lkbuildOK(t, "fetch", "--help")
	for _, want := range []string{"Examples:", "--offline", "--arch value", "once per arch", "--cross-image", "--qemu-image", "air-gapped", "--bundle"} {
		if !strings.Contains(out, want) {
			t.Errorf("lkbuild fetch --help lacks %q:\n%s", want, out)
		}
	}
}

func TestParseMirrors(t *testing.T) {
	for _, tc := range []struct {
		in   []string
		want map[string]string
		err  string
	}{
		{nil, map[string]string{}, ""},
		{[]string{""}, map[string]string{}, ""},
		{[]string{"http://mirror.local"}, map[string]string{"docker.io": "http://mirror.local"}, ""},
		{[]string{"docker.io=http://a.local ghcr.io=https://b.local:5000,quay.io=http://c"},
			map[string]string{"docker.io": "http://a.local", "ghcr.io": "https://b.local:5000", "quay.io": "http://c"}, ""},
		{[]string{"docker.io=http://a.local", "docker.io=http://a.local"}, map[string]string{"docker.io": "http://a.local"}, ""},
		{[]string{"docker.io=http://a.local", "http://b.local"}, nil, "two mirrors"},
		{[]string{"=http://a.local"}, nil, "want [REGISTRY=]URL"},
		{[]string{"docker.io="}, nil, "want [REGISTRY=]URL"},
	} {
		got, err := parseMirrors(tc.in...)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("parseMirrors(%q): %v, want an error saying %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || !maps.Equal(got, tc.want) {
			t.Errorf("parseMirrors(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}

// TestBadBundles: build --bundle refuses what is not a bundle, or one for
// another arch, before anything else.
func TestBadBundles(t *testing.T) {
	testGit(t)
	k := kernelRepo(t, "kernel", seriesKernelFiles())
	empty := t.TempDir()
	x86 := t.TempDir()
	if err := os.WriteFile(filepath.Join(x86, "manifest.json"), []byte(`{"format": 1, "arches": ["x86_64"], "pieces": []}`), 0o644); err != nil {
		t.Fatal(err)
	}
	escape := t.TempDir()
	if err := os.WriteFile(filepath.Join(escape, "manifest.json"), []byte(`{"format": 1, "arches": ["x86_64"], "pieces": [{"kind": "file", "for": "x", "path": "../../etc/passwd", "sha256": "00"}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		bundle, arch, want string
	}{
		{empty, "x86_64", "not a bundle"},
		{x86, "aarch64", "is for x86_64, not aarch64"},
		{escape, "x86_64", "outside the bundle"},
	} {
		_, stderr, code := lkbuild(t, "--cache-dir", t.TempDir(), "build", "--kernel-dir", k, "--series", "6.6.x", "--arch", tc.arch,
			"--bundle", tc.bundle, "--output", filepath.Join(t.TempDir(), "oci"))
		if code == 0 || !strings.Contains(stderr, tc.want) {
			t.Errorf("build --bundle %s --arch %s: exit %d, want %q:\n%s", tc.bundle, tc.arch, code, tc.want, stderr)
		}
		_, stderr, code = lkbuild(t, "--cache-dir", t.TempDir(), "run", "--arch", tc.arch, "--bundle", tc.bundle,
			"--builder-image", "registry.invalid/builder:1", "--", "true")
		if code == 0 || !strings.Contains(stderr, tc.want) {
			t.Errorf("run --bundle %s --arch %s: exit %d, want %q:\n%s", tc.bundle, tc.arch, code, tc.want, stderr)
		}
	}
	// A valid but empty bundle: run's builder is not in it, and offline
	// that is named rather than fetched.
	ok := t.TempDir()
	if err := os.WriteFile(filepath.Join(ok, "manifest.json"), []byte(`{"format": 1, "arches": ["x86_64"], "pieces": []}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := oci.OpenStore(filepath.Join(ok, "images")); err != nil {
		t.Fatal(err)
	}
	_, stderr, code := lkbuild(t, "--cache-dir", t.TempDir(), "run", "--arch", "x86_64", "--bundle", ok,
		"--builder-image", "registry.invalid/builder:1", "--", "true")
	if code == 0 || !strings.Contains(stderr, "never pulled into this cache") {
		t.Errorf("run --bundle without the builder: exit %d, want it named as not in the cache:\n%s", code, stderr)
	}
	_, stderr, code = lkbuild(t, "--cache-dir", t.TempDir(), "builder-image", "--arch", "x86_64", "--bundle", ok,
		"--from", "registry.invalid/builder:1", "--run", "true", "--tag", "t", "--output", filepath.Join(t.TempDir(), "out"))
	if code == 0 || !strings.Contains(stderr, "never pulled into this cache") {
		t.Errorf("builder-image --bundle without the base: exit %d, want it named as not in the cache:\n%s", code, stderr)
	}
}
