package main

import (
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
