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
