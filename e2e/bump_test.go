package e2e

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lkbuild/lkbuild/internal/testenv"
)

// next is the made-up release after version that LKBUILD_E2E_NEXT_MIRROR
// serves (bench/cmd/kernelsrc next.go): a line added to start_kernel
// where testdata's patch has its context, and a new symbol that defaults
// to y.
const (
	next       = "6.12.118"
	nextLine   = "\t/* the next release, 118, moved this */\n"
	nextSymbol = "CONFIG_LKBUILD_NEXT_RELEASE=y"
	patchFile  = "0001-init-print-lkbuild-e2e-marker.patch"
)

// bump checks lkbuild patches check and lkbuild bump from 6.12.117 to
// the made-up 6.12.118, on the cache the first build filled (the builder
// provisioned for builds and for kconfig): the patch that stops applying,
// reported with its hunk and nothing written; the patch mended; then the
// bump, which adds the new symbol to config-x86_64 and moves build-args,
// and a config the build's own check passes.
func (e *env) bump(t *testing.T, cache string) {
	mirror := testenv.Getenv(t, "LKBUILD_E2E_NEXT_MIRROR", "run scripts/fixtures/e2e.sh")
	keys := testenv.Getenv(t, "LKBUILD_E2E_NEXT_KEYS", "run scripts/fixtures/e2e.sh")
	kdir := e.checkout(t, nil)
	args := func(cmd []string, extra ...string) []string {
		return slices.Concat([]string{"--cache-dir", cache}, cmd, []string{"--kernel-dir", kdir,
			"--source-mirror", mirror, "--keys", keys, "--insecure-registry"}, e.builderFlag(), extra)
	}
	read := func(rel string) string {
		t.Helper()
		data, err := os.ReadFile(filepath.Join(kdir, series, rel))
		if err != nil {
			t.Fatal(err)
		}
		return string(data)
	}
	files := []string{"build-args", "config-x86_64", "config-aarch64", "config-riscv64"}
	before := map[string]string{}
	for _, f := range files {
		before[f] = read(f)
	}
	unchanged := func(t *testing.T, except ...string) {
		t.Helper()
		for _, f := range files {
			if !slices.Contains(except, f) && read(f) != before[f] {
				t.Errorf("%s changed", f)
			}
		}
	}
	patch := filepath.Join(kdir, series, "patches", patchFile)
	failed := "FAILED  " + patch + ": 1 hunk(s) rejected"

	t.Run("patch-fails", func(t *testing.T) {
		r := e.lkbuild(t, nil, args([]string{"patches", "check"}, "--version", next)...)
		t.Logf("patches check --version %s: %s", next, r.elapsed.Round(100*time.Millisecond))
		if r.code != 1 || !strings.Contains(r.stdout, failed) || !strings.Contains(r.stdout, "    @@ -893,6 +893,8 @@") {
			t.Errorf("patches check: exit %d, want 1 and the rejected hunk:\n%s\n%s", r.code, r.stdout, r.stderr)
		}
		r = e.lkbuild(t, nil, args([]string{"bump"}, "--version", next, "--arch", "x86_64")...)
		t.Logf("bump, a patch fails: %s", r.elapsed.Round(100*time.Millisecond))
		if r.code != 1 || !strings.Contains(r.stdout, failed) || !strings.Contains(r.stderr, "nothing written") {
			t.Errorf("bump: exit %d, want 1, the rejected hunk and nothing written:\n%s\n%s", r.code, r.stdout, r.stderr)
		}
		unchanged(t)
		// --force would write build-args alone: the configs need the
		// patched tree.
		r = e.lkbuild(t, nil, args([]string{"bump"}, "--version", next, "--arch", "x86_64", "--force", "--dry-run")...)
		if r.code != 0 || !strings.Contains(r.stderr, "--force: the configs are not refreshed") || !strings.Contains(r.stdout, "\n+KERNEL_VERSION="+next+"\n") ||
			!strings.Contains(r.stderr, "--dry-run: 1 file(s) would change, none written") {
			t.Errorf("bump --force --dry-run: exit %d, want 0 and build-args alone:\n%s\n%s", r.code, r.stdout, r.stderr)
		}
		unchanged(t)
		// The patches still apply to the release build-args name.
		r = e.lkbuild(t, nil, args([]string{"patches", "check"})...)
		if r.code != 0 || !strings.Contains(r.stdout, series+" on "+version+": all 1 patch(es) apply") {
			t.Errorf("patches check at %s: exit %d, want 0:\n%s\n%s", version, r.code, r.stdout, r.stderr)
		}
	})
	if t.Failed() {
		return
	}

	// The patch mended as a developer would: its hunk takes the new line
	// as context, keeping three lines either side (GNU patch reads fewer
	// lines before than after as a hunk at the start of the file).
	data, err := os.ReadFile(patch)
	if err != nil {
		t.Fatal(err)
	}
	mended := strings.Replace(string(data), "@@ -893,6 +893,8 @@", "@@ -894,6 +894,8 @@", 1)
	mended = strings.Replace(mended, " \tboot_cpu_init();\n \tpage_address_init();\n", " \tpage_address_init();\n "+nextLine, 1)
	if mended == string(data) || !strings.Contains(mended, "@@ -894,6 +894,8 @@") {
		t.Fatal("the test's edit of the patch did not apply")
	}
	if err := os.WriteFile(patch, []byte(mended), 0o644); err != nil {
		t.Fatal(err)
	}

	t.Run("dry-run", func(t *testing.T) {
		r := e.lkbuild(t, nil, args([]string{"bump"}, "--version", next, "--arch", "x86_64", "--dry-run")...)
		t.Logf("bump --dry-run: %s", r.elapsed.Round(100*time.Millisecond))
		if r.code != 0 || !strings.Contains(r.stdout, "\n+"+nextSymbol+"\n") || !strings.Contains(r.stdout, "\n-KERNEL_VERSION="+version+"\n+KERNEL_VERSION="+next+"\n") ||
			!strings.Contains(r.stderr, "--dry-run: 2 file(s) would change, none written") {
			t.Errorf("bump --dry-run: exit %d, want 0 and the diffs of config-x86_64 and build-args:\n%s\n%s", r.code, r.stdout, r.stderr)
		}
		unchanged(t)
	})

	t.Run("bump", func(t *testing.T) {
		r := e.lkbuild(t, nil, args([]string{"bump"}, "--version", next, "--arch", "x86_64")...)
		t.Logf("bump: %s", r.elapsed.Round(100*time.Millisecond))
		if r.code != 0 || !strings.Contains(r.stdout, series+" on "+next+": all 1 patch(es) apply") ||
			!strings.Contains(r.stderr, "config-aarch64 not refreshed (--arch)") || !strings.Contains(r.stderr, series+" is now "+next) {
			t.Fatalf("bump: exit %d, want 0:\n%s\n%s", r.code, r.stdout, r.stderr)
		}
		unchanged(t, "build-args", "config-x86_64")
		if got, want := read("build-args"), strings.Replace(before["build-args"], "KERNEL_VERSION="+version+"\n", "KERNEL_VERSION="+next+"\n", 1); got != want {
			t.Errorf("build-args:\n%s\nwant:\n%s", got, want)
		}
		// The new symbol, and nothing else, in its place.
		got := read("config-x86_64")
		if !strings.Contains(got, "\n"+nextSymbol+"\n") || strings.Count(got, "\n") != strings.Count(before["config-x86_64"], "\n")+1 {
			t.Errorf("config-x86_64 gained more or less than %s", nextSymbol)
		}
		// The build's own final-config check passes on the new release.
		r = e.lkbuild(t, nil, args([]string{"kconfig"}, "--refresh", "--check", "--arch", "x86_64")...)
		t.Logf("kconfig --refresh --check at %s: %s", next, r.elapsed.Round(100*time.Millisecond))
		if r.code != 0 || r.stdout != "" {
			t.Errorf("kconfig --refresh --check after the bump: exit %d, want 0 and no diff:\n%s\n%s", r.code, r.stdout, r.stderr)
		}
		r = e.lkbuild(t, nil, args([]string{"bump"}, "--version", next)...)
		if r.code == 0 || !strings.Contains(r.stderr, "already at "+next) {
			t.Errorf("a second bump: exit %d, want an error:\n%s", r.code, r.stderr)
		}
	})
}
