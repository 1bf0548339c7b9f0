package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/lkbuild/lkbuild/kernel"
)

// lkbuild kconfig refuses what makes no sense before it does any work, and
// offline with an empty cache says what is missing.
func TestKconfigArgs(t *testing.T) {
	testGit(t)
	k := kernelRepo(t, "kernel", seriesKernelFiles())
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"check without refresh", []string{"--check"}, 1, "--check goes with --refresh"},
		{"answers without refresh", []string{"--answers", "a.txt"}, 1, "--answers goes with --refresh"},
		{"refresh with a command", []string{"--refresh", "--", "make"}, 1, "runs no command"},
		{"refresh, an arch a series lacks", []string{"--refresh", "--arch", "riscv64"}, 1, "series 6.12.x has no config-riscv64"},
		{"refresh, a variant", []string{"--refresh", "--series", "6.6.x-foo", "--arch", "aarch64"}, 1, "6.6.x-foo is a variant"},
		{"shell, a variant", []string{"--series", "6.6.x-foo", "--arch", "aarch64", "--", "true"}, 1, "name the series itself"},
		// The test keys do not parse: the first kernel fails, named.
		{"every series", []string{"--arch", "x86_64", "--", "true"}, 1, "lkbuild: kconfig 6.12.59: " + k + "/common/keys.asc"},
		{"refresh", []string{"--refresh", "--series", "6.6.x", "--arch", "x86_64"}, 1, "lkbuild: " + k + "/common/keys.asc"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			args := append([]string{"--cache-dir", filepath.Join(dir, "cache"), "--offline", "kconfig", "--kernel-dir", k}, tc.args...)
			_, stderr, code := lkbuild(t, args...)
			if code != tc.code || !strings.Contains(stderr, tc.want) {
				t.Errorf("exit %d, want %d and %q:\n%s", code, tc.code, tc.want, stderr)
			}
		})
	}
}

func TestConfigDiffNames(t *testing.T) {
	tests := []struct {
		file, want string
	}{
		{"kernel/6.6.x/config-x86_64", "--- a/kernel/6.6.x/config-x86_64\n+++ b/kernel/6.6.x/config-x86_64\n"},
		{"/src/kernel/6.6.x/config-x86_64", "--- /src/kernel/6.6.x/config-x86_64\n+++ /src/kernel/6.6.x/config-x86_64\n"},
	}
	for _, tc := range tests {
		d := configDiff(tc.file, []byte("A=y\n"), []byte("A=y\n# B is not set\n"))
		if !strings.HasPrefix(d, tc.want) || !strings.Contains(d, "\n+# B is not set\n") {
			t.Errorf("%s: diff\n%s", tc.file, d)
		}
	}
}

func TestChangeSummary(t *testing.T) {
	many := []string{"CONFIG_A", "CONFIG_B", "CONFIG_C", "CONFIG_D", "CONFIG_E", "CONFIG_F", "CONFIG_G", "CONFIG_H"}
	tests := []struct {
		m    *kernel.ConfigMismatchError
		want string
	}{
		{nil, "no symbol changes, only comments or order"},
		{&kernel.ConfigMismatchError{Symbols: []string{"CONFIG_SOUND"}}, "CONFIG_SOUND"},
		{&kernel.ConfigMismatchError{Symbols: many}, "CONFIG_A, CONFIG_B, CONFIG_C, CONFIG_D, CONFIG_E, CONFIG_F and 2 more symbols"},
	}
	for _, tc := range tests {
		if got := changeSummary(tc.m); got != tc.want {
			t.Errorf("changeSummary = %q, want %q", got, tc.want)
		}
	}
}
