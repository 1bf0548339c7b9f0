package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// lkbuild build with no series builds every series that is not deprecated,
// as make build does; --with-debug adds each one's debug kernel. Offline
// with an empty cache, the first kernel fails at once, naming where it is
// in the list.
func TestBuildEverySeries(t *testing.T) {
	testGit(t)
	k := kernelRepo(t, "kernel", seriesKernelFiles())
	tests := []struct {
		name  string
		args  []string
		code  int
		wants []string
	}{
		{"every series", nil, 1, []string{"lkbuild: kernel 1 of 2: 6.12.59\n", "kernel 1 of 2: ", "building linuxkit/kernel:6.12.59-"}},
		{"every series with debug", []string{"--with-debug"}, 1, []string{"lkbuild: kernel 1 of 4: 6.12.59\n", "kernel 1 of 4: "}},
		{"one version with debug", []string{"--version", "6.6.71", "--with-debug"}, 1, []string{"lkbuild: kernel 1 of 2: 6.6.71\n"}},
		{"one series", []string{"--series", "6.6.x"}, 1, []string{"building linuxkit/kernel:6.6.71-"}},
		{"debug and with-debug", []string{"--debug", "--with-debug"}, 1, []string{"--debug builds only the debug kernel, --with-debug the plain one and the debug one"}},
		{"an argument", []string{"6.6.x"}, 1, []string{`unexpected argument "6.6.x"`}},
		// --with-tools is LinuxKit's TOOLS: perf, not the ZFS modules.
		{"with tools", []string{"--version", "6.6.71", "--with-tools"}, 1, []string{"lkbuild: kernel 1 of 2: 6.6.71\n"}},
		{"zfs-kmod", []string{"--series", "6.6.x", "--tool", "zfs-kmod"}, 1, []string{"Dockerfile.zfs is missing: it names the OpenZFS release to build (ENV VERSION=2.3.2), or give the version (--zfs-version)"}},
		{"zfs-kmod version", []string{"--series", "6.6.x", "--tool", "zfs-kmod", "--zfs-version", "2.3.2"}, 1, []string{"building linuxkit/zfs-kmod:6.6.71-"}},
		{"zfs-kmod bad version", []string{"--series", "6.6.x", "--tool", "zfs-kmod", "--zfs-version", "master"}, 1, []string{`OpenZFS version "master"`}},
		{"zfs-kmod debug", []string{"--series", "6.6.x", "--tool", "zfs-kmod", "--debug"}, 1, []string{"zfs-kmod has no debug build"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			args := append([]string{"--cache-dir", filepath.Join(dir, "cache"), "--offline", "build", "--kernel-dir", k, "--arch", "x86_64",
				"--output", filepath.Join(dir, "oci")}, tc.args...)
			_, stderr, code := lkbuild(t, args...)
			if code != tc.code {
				t.Fatalf("exit %d, want %d\n%s", code, tc.code, stderr)
			}
			for _, w := range tc.wants {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, stderr)
				}
			}
			if tc.name == "one series" && strings.Contains(stderr, "kernel 1 of") {
				t.Errorf("a single kernel is numbered:\n%s", stderr)
			}
		})
	}
}

// Every series deprecated: nothing to build is an error, not a success.
func TestBuildNoSeriesLeft(t *testing.T) {
	testGit(t)
	files := seriesKernelFiles()
	files["6.6.x/deprecated"], files["6.12.x/deprecated"] = "", ""
	k := kernelRepo(t, "", files)
	dir := t.TempDir()
	_, stderr, code := lkbuild(t, "--cache-dir", filepath.Join(dir, "cache"), "--offline", "build", "--kernel-dir", k, "--output", filepath.Join(dir, "oci"))
	if code == 0 || !strings.Contains(stderr, "has no series to build") {
		t.Errorf("exit %d\n%s", code, stderr)
	}
}

// --zfs-version may not name another release than the kernel directory's
// Dockerfile.zfs: the image's tags stand for the directory.
func TestBuildZFSVersionIsTheDirectorys(t *testing.T) {
	testGit(t)
	files := seriesKernelFiles()
	files["common/Dockerfile.zfs"] = "FROM scratch\nENV VERSION=2.3.2\n"
	k := kernelRepo(t, "kernel", files)
	dir := t.TempDir()
	_, stderr, code := lkbuild(t, "--cache-dir", filepath.Join(dir, "cache"), "--offline", "build", "--kernel-dir", k, "--arch", "x86_64",
		"--output", filepath.Join(dir, "oci"), "--series", "6.6.x", "--tool", "zfs-kmod", "--zfs-version", "2.3.3")
	want := "--zfs-version 2.3.3: common/Dockerfile.zfs names OpenZFS 2.3.2"
	if code != 1 || !strings.Contains(stderr, want) {
		t.Errorf("exit %d, want 1 and %q:\n%s", code, want, stderr)
	}
}
