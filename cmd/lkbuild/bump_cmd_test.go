package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestBumpRefuses: what bump and patches check refuse before they fetch
// anything, each with its reason, and nothing written.
func TestBumpRefuses(t *testing.T) {
	testGit(t)
	k := kernelRepo(t, "kernel", seriesKernelFiles())
	args := filepath.Join(k, "6.6.x", "build-args")
	before, err := os.ReadFile(args)
	if err != nil {
		t.Fatal(err)
	}
	cache := t.TempDir()
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no version", []string{"bump"}, "bump needs --version"},
		{"bad version", []string{"bump", "--version", "6.6"}, `"6.6"`},
		{"same version", []string{"bump", "--version", "6.6.71"}, "6.6.x is already at 6.6.71"},
		{"older", []string{"bump", "--version", "6.6.60"}, "6.6.60 is older than 6.6.x's 6.6.71 (--force to go back)"},
		{"other series", []string{"bump", "--series", "6.6.x", "--version", "6.12.60"}, "version 6.12.60 is not in series 6.6.x"},
		{"no such series", []string{"bump", "--version", "6.1.10"}, "series 6.1.x"},
		{"variant", []string{"bump", "--series", "6.6.x-foo", "--version", "6.6.72"}, "6.6.x-foo is a variant: name its series, 6.6.x"},
		{"deprecated", []string{"bump", "--version", "5.15.30"}, "series 5.15.x is deprecated"},
		{"arch without config", []string{"bump", "--version", "6.12.60", "--arch", "riscv64"}, "series 6.12.x has no config-riscv64"},
		{"unknown arch", []string{"bump", "--version", "6.6.72", "--arch", "s390x"}, "s390x"},
		{"argument", []string{"bump", "--version", "6.6.72", "now"}, `unexpected argument "now"`},
		{"patches check two series with a version", []string{"patches", "check", "--series", "6.6.x", "--series", "6.12.x", "--version", "6.6.72"}, "--version goes with one --series at most"},
		{"patches check no such series", []string{"patches", "check", "--series", "4.19.x"}, "series 4.19.x"},
		{"patches check version of another series", []string{"patches", "check", "--series", "6.6.x", "--version", "6.12.60"}, "not in series 6.6.x"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := append([]string{"--cache-dir", cache}, tc.args...)
			a = append(a, "--kernel-dir", k)
			if tc.name == "argument" {
				a = append(a[:len(a)-3], "--kernel-dir", k, "now")
			}
			out, stderr, code := lkbuild(t, a...)
			if code == 0 || !strings.Contains(stderr, tc.want) {
				t.Errorf("exit %d, want an error with %q:\n%s%s", code, tc.want, out, stderr)
			}
			if now, _ := os.ReadFile(args); string(now) != string(before) {
				t.Errorf("build-args changed")
			}
		})
	}
}
