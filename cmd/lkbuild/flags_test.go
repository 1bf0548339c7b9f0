package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestFlagsBeforeTheCommand: a flag of the build given before the command
// counts as given after it, or is refused; it is never ignored.
func TestFlagsBeforeTheCommand(t *testing.T) {
	testGit(t)
	k := kernelRepo(t, "kernel", seriesKernelFiles())
	after := lkbuildOK(t, "tags", "--kernel-dir", k, "--series", "6.6.x", "--arch", "arm64", "--org", "me")
	before := lkbuildOK(t, "--kernel-dir", k, "--series", "6.6.x", "--org", "me", "tags", "--arch", "arm64")
	if before != after || !strings.HasPrefix(before, "me/kernel:6.6.71-") {
		t.Errorf("flags before the command:\n%s\nafter it:\n%s", before, after)
	}
	// Given on both sides, the one after the command counts.
	both := lkbuildOK(t, "--org", "them", "tags", "--kernel-dir", k, "--series", "6.6.x", "--arch", "arm64", "--org", "me")
	if both != after {
		t.Errorf("--org on both sides:\n%s\nwant\n%s", both, after)
	}
	for _, args := range [][]string{
		{"--json", "version"},
		{"--push", "tags", "--kernel-dir", k, "--series", "6.6.x"},
		{"--output", t.TempDir(), "show-tag", "--kernel-dir", k, "--series", "6.6.x"},
	} {
		_, stderr, code := lkbuild(t, args...)
		if code == 0 || !strings.Contains(stderr, args[0]+" does not apply to lkbuild") {
			t.Errorf("lkbuild %q: exit %d, stderr %q: want a refusal naming %s", args, code, stderr, args[0])
		}
	}
	// An environment variable of a root flag is not a flag given before
	// the command.
	t.Setenv("LKBUILD_OUTPUT", t.TempDir())
	if out := lkbuildOK(t, "version"); !strings.HasPrefix(out, "lkbuild ") {
		t.Errorf("version with LKBUILD_OUTPUT set: %q", out)
	}
}

// TestBadFlagValuesAreRefused: values that used to be taken silently.
func TestBadFlagValuesAreRefused(t *testing.T) {
	testGit(t)
	k := kernelRepo(t, "kernel", seriesKernelFiles())
	cache := t.TempDir()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"run", "--rootfs", t.TempDir(), "--env", "NOEQUALS", "--", "true"}, `--env "NOEQUALS": want NAME=VALUE`},
		{[]string{"run", "--rootfs", t.TempDir(), "--env", "=x", "--", "true"}, `--env "=x": want NAME=VALUE`},
		{[]string{"builder-image", "--from", "127.0.0.1:1/x:y", "--tag", "t", "--run", "true", "--env", "NOEQUALS"}, `--env "NOEQUALS": want NAME=VALUE`},
		{[]string{"build", "--kernel-dir", k, "--series", "6.6.x", "--jobs", "-5"}, "jobs -5: want a count of at least 1"},
		{[]string{"--mirror", "docker.io=mirror.local", "build", "--kernel-dir", k, "--series", "6.6.x", "--output", t.TempDir()}, `"mirror.local": want an http:// or https:// URL`},
		{[]string{"fetch", "--kernel-dir", k, "--series", "6.6.x", "--mirror", "a=http://x", "--mirror", "a=http://y"}, "a has two mirrors"},
	} {
		_, stderr, code := lkbuild(t, append([]string{"--cache-dir", cache}, tc.args...)...)
		if code == 0 || !strings.Contains(stderr, tc.want) {
			t.Errorf("lkbuild %q: exit %d, stderr %q, want %q", tc.args, code, stderr, tc.want)
		}
	}
}

// TestFailedBuildLeavesNoLayout: a build that fails before it has an image
// does not leave an empty output layout where there was none.
func TestFailedBuildLeavesNoLayout(t *testing.T) {
	testGit(t)
	k := kernelRepo(t, "kernel", seriesKernelFiles())
	out := filepath.Join(t.TempDir(), "layout")
	_, stderr, code := lkbuild(t, "--cache-dir", t.TempDir(), "build", "--kernel-dir", k, "--series", "6.6.x",
		"--output", out, "--keys", filepath.Join(t.TempDir(), "no-keys.asc"))
	if code == 0 {
		t.Fatalf("the build succeeded without keys: %s", stderr)
	}
	if _, err := os.Stat(out); err == nil {
		t.Errorf("a failed build left %s behind", out)
	}
}

func TestLinuxKitCacheDir(t *testing.T) {
	home := func() (string, error) { return "/home/u", nil }
	noHome := func() (string, error) { return "", os.ErrNotExist }
	for _, tc := range []struct {
		name string
		env  string
		home func() (string, error)
		want string // "" an error
	}{
		{"default", "", home, "/home/u/.linuxkit/cache"},
		{"LINUXKIT_CACHE", "/srv/lk", home, "/srv/lk"},
		{"LINUXKIT_CACHE without a home", "/srv/lk", noHome, "/srv/lk"},
		{"no home", "", noHome, ""},
	} {
		got, err := linuxKitCacheDir(func(k string) string {
			if k == "LINUXKIT_CACHE" {
				return tc.env
			}
			return ""
		}, tc.home)
		if got != tc.want || (err != nil) != (tc.want == "") {
			t.Errorf("%s: %q, %v; want %q", tc.name, got, err, tc.want)
		}
	}
}

// TestLinuxKitCacheFlag: --linuxkit-cache names the layout instead of
// --output; both at once are refused, LKBUILD_OUTPUT gives way.
func TestLinuxKitCacheFlag(t *testing.T) {
	testGit(t)
	k := kernelRepo(t, "kernel", seriesKernelFiles())
	lk := filepath.Join(t.TempDir(), "lkcache")
	t.Setenv("LINUXKIT_CACHE", lk)
	push := []string{"--cache-dir", t.TempDir(), "push", "--kernel-dir", k, "--series", "6.6.x", "--linuxkit-cache"}
	_, stderr, code := lkbuild(t, append(push, "--output", t.TempDir())...)
	if code == 0 || !strings.Contains(stderr, "--output and --linuxkit-cache") {
		t.Errorf("both flags: exit %d, %q", code, stderr)
	}
	t.Setenv("LKBUILD_OUTPUT", t.TempDir())
	_, stderr, code = lkbuild(t, push...)
	if code == 0 || !strings.Contains(stderr, lk) {
		t.Errorf("push --linuxkit-cache with nothing built: exit %d, %q; want an error naming %s", code, stderr, lk)
	}
}
