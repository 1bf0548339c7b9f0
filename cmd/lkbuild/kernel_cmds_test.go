package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lkbuild/lkbuild/internal/testenv"
)

// These tests hold lkbuild's list, show-tag and tags against the real make
// and git, run on repositories the tests generate, the way LinuxKit's
// kernel/Makefile runs them.

// seriesMakefile stands in for LinuxKit's kernel/Makefile (series layout).
// It keeps only what the commands under test reproduce, with the same
// shell and git pipelines as upstream: the shared hash is git hash-object
// of `git ls-tree -r` over Makefile and common/; a series hash is git
// hash-object of the shared hash, a newline and `git ls-tree` of the
// series folder; -dirty comes from git diff-index after a refresh.
const seriesMakefile = `# test stand-in for LinuxKit's kernel/Makefile
ORG ?= linuxkit
IMAGE ?= kernel
EXTRA ?=
DEBUG ?=
HASH_COMMIT ?= HEAD
ARCH ?= x86_64
TOOLS = bcc perf

dirty_mark := $(shell git update-index -q --refresh && git diff-index --quiet HEAD -- $(CURDIR) || echo "-dirty")
common_hash := $(shell git ls-tree -r --full-tree $(HASH_COMMIT) -- $(CURDIR)/Makefile $(CURDIR)/common 2>/dev/null | git hash-object --stdin)
hash_of_series = $(shell (echo $(common_hash); git ls-tree --full-tree $(HASH_COMMIT) -- $(CURDIR)/$(1) 2>/dev/null) | git hash-object --stdin)$(dirty_mark)
series_of = $(word 1,$(subst ., ,$(1))).$(word 2,$(subst ., ,$(1))).x

old_series := $(patsubst %/deprecated,%,$(wildcard */deprecated))
live_series := $(filter-out $(old_series),$(patsubst %/build-args,%,$(wildcard */build-args)))
versions = $(shell awk -F= '/^KERNEL_VERSION=/ {print $$2}' $(addsuffix /build-args,$(live_series)))

list:
	@echo "Arch: $(ARCH)"
	@echo "Kernels: $(versions)"
	@echo "Deprecated: $(old_series)"
	@echo "Tools: $(TOOLS)"
	@echo "Shared hash: $(common_hash)"

show-tag-%:
	@echo $(ORG)/$(IMAGE):$*$(EXTRA)$(DEBUG)-$(call hash_of_series,$(call series_of,$*))
`

// flatMakefile stands in for a flat-layout LinuxKit Makefile (early 2024):
// the hash is the tree object of the kernel directory itself.
const flatMakefile = `# test stand-in for a flat-layout LinuxKit kernel/Makefile
ORG ?= linuxkit
IMAGE ?= kernel
EXTRA ?=
DEBUG ?=
HASH_COMMIT ?= HEAD
IMAGE_BUILDER=linuxkit/alpine:146f540f25cd92ec8ff0c5b0c98342a9a95e479e
KERNELS_all=6.6.13 5.15.27
KERNELS_x86_64=
DEPRECATED_all=5.11.4-rt
TOOLS=bcc perf

dirty_mark := $(shell git update-index -q --refresh && git diff-index --quiet HEAD -- $(CURDIR) || echo "-dirty")
tree_hash := $(shell git ls-tree --full-tree $(HASH_COMMIT) -- $(CURDIR) | awk '{print $$3}')

show-tag-%:
	@echo $(ORG)/$(IMAGE):$*$(EXTRA)$(DEBUG)-$(tree_hash)$(dirty_mark)
`

func seriesKernelFiles() map[string]string {
	return map[string]string{
		"Makefile":                        seriesMakefile,
		"common/Dockerfile":               "FROM scratch\n",
		"common/config-dbg":               "CONFIG_DEBUG_INFO=y\n",
		"common/build-args-debug":         "DEBUG=-dbg\n",
		"common/keys.asc":                 "-----BEGIN PGP PUBLIC KEY BLOCK-----\n",
		"6.6.x/build-args":                "KERNEL_VERSION=6.6.70\nKERNEL_SERIES=6.6.x\nBUILD_IMAGE=linuxkit/alpine:35b33c6b03c40e51046c3b053dd131a68a26c37a\n",
		"6.6.x/config-x86_64":             "CONFIG_X86_64=y\n",
		"6.6.x/config-aarch64":            "CONFIG_ARM64=y\n",
		"6.6.x/config-riscv64":            "CONFIG_RISCV=y\n",
		"6.6.x/patches/0001-fix.patch":    "From: a\n",
		"6.12.x/build-args":               "KERNEL_VERSION=6.12.59\nKERNEL_SERIES=6.12.x\nBUILD_IMAGE=linuxkit/alpine:35b33c6b03c40e51046c3b053dd131a68a26c37a\n",
		"6.12.x/config-x86_64":            "CONFIG_X86_64=y\n",
		"6.12.x/config-aarch64":           "CONFIG_ARM64=y\n",
		"6.6.x-foo/config-aarch64":        "CONFIG_FOO=y\n",
		"5.15.x/build-args":               "KERNEL_VERSION=5.15.27\nKERNEL_SERIES=5.15.x\n",
		"5.15.x/config-x86_64":            "CONFIG_X86_64=y\n",
		"5.15.x/deprecated":               "",
		"5.11.x/config-x86_64":            "CONFIG_X86_64=y\n",
		"5.11.x/patches/0001-base.patch":  "From: b\n",
		"5.11.x/deprecated":               "",
		"5.11.x-rt/config-x86_64":         "CONFIG_PREEMPT_RT=y\n",
		"5.11.x-rt/patches/0001-rt.patch": "From: rt\n",
		"5.11.x-rt/deprecated":            "",
	}
}

// testGit makes git independent of the machine: fresh HOME, no system
// config, fixed identity and dates, C locale (make's wildcard order).
func testGit(t *testing.T) {
	t.Helper()
	testenv.LookPath(t, "git", "git")
	testenv.LookPath(t, "make", "make")
	t.Setenv("HOME", t.TempDir())
	t.Setenv("XDG_CONFIG_HOME", "")
	t.Setenv("GIT_CONFIG_NOSYSTEM", "1")
	t.Setenv("LC_ALL", "C")
	for k, v := range map[string]string{
		"GIT_AUTHOR_NAME": "Test", "GIT_AUTHOR_EMAIL": "test@example.com",
		"GIT_COMMITTER_NAME": "Test", "GIT_COMMITTER_EMAIL": "test@example.com",
		"GIT_AUTHOR_DATE": "2025-01-01T00:00:00Z", "GIT_COMMITTER_DATE": "2025-01-01T00:00:00Z",
	} {
		t.Setenv(k, v)
	}
}

// command runs a program in dir with the test's environment, minus what
// an outer make (make test) or the caller's shell would pass to make.
func command(t *testing.T, dir, prog string, args ...string) string {
	t.Helper()
	cmd := exec.Command(prog, args...)
	cmd.Dir = dir
	for _, kv := range os.Environ() {
		switch name, _, _ := strings.Cut(kv, "="); name {
		case "MAKEFLAGS", "MFLAGS", "MAKELEVEL", "ORG", "IMAGE", "EXTRA", "DEBUG", "ARCH", "HASH_COMMIT", "KERNELS":
		default:
			cmd.Env = append(cmd.Env, kv)
		}
	}
	out, err := cmd.Output()
	if err != nil {
		msg := ""
		if ee, ok := err.(*exec.ExitError); ok {
			msg = string(ee.Stderr)
		}
		t.Fatalf("%s %q in %s: %v\n%s", prog, args, dir, err, msg)
	}
	return string(out)
}

func writeTree(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for name, data := range files {
		p := filepath.Join(root, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// kernelRepo makes a repository with the kernel directory at prefix ("" for
// the root) and two commits: the second bumps 6.6.x from 6.6.70 to 6.6.71.
// It returns the kernel directory.
func kernelRepo(t *testing.T, prefix string, files map[string]string) string {
	t.Helper()
	repo := t.TempDir()
	command(t, repo, "git", "init", "-q", "-b", "main")
	writeTree(t, repo, map[string]string{"README.md": "a repository that holds a kernel dir\n", "docs/x.md": "x\n"})
	k := filepath.Join(repo, filepath.FromSlash(prefix))
	writeTree(t, k, files)
	command(t, repo, "git", "add", "-A")
	command(t, repo, "git", "commit", "-q", "-m", "kernels")
	if _, ok := files["6.6.x/build-args"]; ok {
		writeTree(t, k, map[string]string{"6.6.x/build-args": strings.Replace(files["6.6.x/build-args"], "6.6.70", "6.6.71", 1)})
		command(t, repo, "git", "commit", "-q", "-am", "6.6.71")
	}
	return k
}

// lkbuild runs the CLI in-process and returns stdout, stderr and the exit code.
func lkbuild(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(append([]string{"lkbuild"}, args...), &stdout, &stderr)
	return stdout.String(), stderr.String(), code
}

func lkbuildOK(t *testing.T, args ...string) string {
	t.Helper()
	out, errOut, code := lkbuild(t, args...)
	if code != 0 {
		t.Fatalf("lkbuild %q: exit %d\n%s", args, code, errOut)
	}
	return out
}

func TestShowTagAndListMatchMake(t *testing.T) {
	testGit(t)
	states := []struct {
		name   string
		change func(t *testing.T, k string)
	}{
		{"clean", func(*testing.T, string) {}},
		{"modified config", func(t *testing.T, k string) {
			writeTree(t, k, map[string]string{"6.6.x/config-x86_64": "CONFIG_X86_64=n\n"})
		}},
		{"modified common file", func(t *testing.T, k string) {
			writeTree(t, k, map[string]string{"common/Dockerfile": "FROM alpine\n"})
		}},
		{"untracked files", func(t *testing.T, k string) {
			writeTree(t, k, map[string]string{"6.6.x/notes.txt": "local\n", "common/new": "new\n"})
		}},
		{"staged file", func(t *testing.T, k string) {
			writeTree(t, k, map[string]string{"6.12.x/patches/0001-new.patch": "From: c\n"})
			command(t, k, "git", "add", "6.12.x/patches/0001-new.patch")
		}},
		{"modified outside the kernel dir", func(t *testing.T, k string) {
			top := strings.TrimSpace(command(t, k, "git", "rev-parse", "--show-toplevel"))
			writeTree(t, top, map[string]string{"docs/x.md": "changed\n"})
		}},
	}
	layouts := []struct{ name, prefix string }{
		{"kernel dir at the repository root", ""},
		{"kernel dir as in LinuxKit", "kernel"},
		{"kernel dir nested deep", "src/a/b/c/kernel"},
	}
	// make show-tag-<version> arguments -> lkbuild show-tag arguments.
	queries := []struct {
		make []string
		lk   []string
	}{
		{[]string{"show-tag-6.6.71"}, []string{"--series", "6.6.x"}},
		{[]string{"show-tag-6.6.71"}, []string{"--version", "6.6.71"}},
		{[]string{"show-tag-6.12.59", "DEBUG=-dbg", "ORG=example", "IMAGE=kern"}, []string{"--series", "6.12.x", "--debug", "--org", "example", "--image", "kern"}},
		{[]string{"show-tag-6.6.71", "EXTRA=-foo"}, []string{"--series", "6.6.x-foo"}},
		{[]string{"show-tag-6.6.71", "EXTRA=-foo", "DEBUG=-dbg"}, []string{"--series", "6.6.x", "--extra", "-foo", "--debug"}},
		{[]string{"show-tag-5.11.4", "EXTRA=-rt"}, []string{"--version", "5.11.4", "--extra", "-rt"}},
		{[]string{"show-tag-5.15.27"}, []string{"--series", "5.15.x"}},
		{[]string{"show-tag-6.6.70", "HASH_COMMIT=HEAD~1"}, []string{"--version", "6.6.70", "--hash-commit", "HEAD~1"}},
	}
	for _, layout := range layouts {
		for _, state := range states {
			t.Run(layout.name+"/"+state.name, func(t *testing.T) {
				k := kernelRepo(t, layout.prefix, seriesKernelFiles())
				state.change(t, k)
				// Every query and arch on a clean tree; the other states change
				// only the hash, so fewer queries cover them.
				qs, arches := queries, [][2]string{{"x86_64", "amd64"}, {"aarch64", "aarch64"}, {"riscv64", "riscv64"}}
				if state.name != "clean" {
					qs, arches = queries[:3], arches[:1]
				}
				for _, q := range qs {
					want := command(t, k, "make", append([]string{"-s", "--no-print-directory"}, q.make...)...)
					got := lkbuildOK(t, append([]string{"show-tag", "--kernel-dir", k}, q.lk...)...)
					if got != want {
						t.Errorf("lkbuild show-tag %q = %q\nmake %q = %q", q.lk, got, q.make, want)
					}
				}
				for _, arch := range arches {
					want := command(t, k, "make", "-s", "--no-print-directory", "list", "ARCH="+arch[0])
					got := lkbuildOK(t, "list", "--kernel-dir", k, "--arch", arch[1])
					if got != want {
						t.Errorf("lkbuild list --arch %s =\n%s\nmake list =\n%s", arch[1], got, want)
					}
				}
				want := command(t, k, "make", "-s", "--no-print-directory", "list", "ARCH=x86_64", "HASH_COMMIT=HEAD~1")
				if got := lkbuildOK(t, "list", "--kernel-dir", k, "--arch", "x86_64", "--hash-commit", "HEAD~1"); got != want {
					t.Errorf("lkbuild list --hash-commit HEAD~1 =\n%s\nmake list HASH_COMMIT=HEAD~1 =\n%s", got, want)
				}
			})
		}
	}
}

func TestShowTagFlatLayoutMatchesMake(t *testing.T) {
	testGit(t)
	files := map[string]string{
		"Makefile":                        flatMakefile,
		"Dockerfile":                      "FROM scratch\n",
		"config-dbg":                      "CONFIG_DEBUG_INFO=y\n",
		"config-6.6.x-x86_64":             "CONFIG_X86_64=y\n",
		"config-6.6.x-aarch64":            "CONFIG_ARM64=y\n",
		"config-5.15.x-x86_64":            "CONFIG_X86_64=y\n",
		"config-5.11.x-x86_64":            "CONFIG_X86_64=y\n",
		"config-5.11.x-x86_64-rt":         "CONFIG_PREEMPT_RT=y\n",
		"patches-5.11.x-rt/0001-rt.patch": "From: rt\n",
	}
	for _, dirty := range []bool{false, true} {
		k := kernelRepo(t, "kernel", files)
		if dirty {
			writeTree(t, k, map[string]string{"config-6.6.x-x86_64": "CONFIG_X86_64=n\n"})
		}
		for _, q := range []struct{ make, lk []string }{
			{[]string{"show-tag-6.6.13"}, []string{"--series", "6.6.x"}},
			{[]string{"show-tag-5.15.27", "DEBUG=-dbg"}, []string{"--version", "5.15.27", "--debug"}},
			{[]string{"show-tag-5.11.4", "EXTRA=-rt"}, []string{"--series", "5.11.x-rt"}},
		} {
			want := command(t, k, "make", append([]string{"-s", "--no-print-directory"}, q.make...)...)
			got := lkbuildOK(t, append([]string{"show-tag", "--kernel-dir", k}, q.lk...)...)
			if got != want {
				t.Errorf("dirty=%v: lkbuild show-tag %q = %q\nmake %q = %q", dirty, q.lk, got, q.make, want)
			}
		}
	}
}

func TestTags(t *testing.T) {
	testGit(t)
	k := kernelRepo(t, "kernel", seriesKernelFiles())
	writeTree(t, k, map[string]string{"6.6.x/config-aarch64": "CONFIG_ARM64=n\n"}) // dirty
	// The series hash, as make computes it: <org>/<image>:6.6.71-<hash>.
	show := strings.TrimSpace(command(t, k, "make", "-s", "--no-print-directory", "show-tag-6.6.71"))
	hash := strings.TrimPrefix(show, "linuxkit/kernel:6.6.71-")
	if !strings.HasSuffix(hash, "-dirty") || len(hash) != 40+len("-dirty") {
		t.Fatalf("make show-tag printed %q", show)
	}
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"--series", "6.6.x", "--arch", "arm64"}, []string{
			"linuxkit/kernel:6.6.71-" + hash + "-arm64",
			"linuxkit/kernel:6.6.71-" + hash,
			"linuxkit/kernel:6.6.71-arm64",
			"linuxkit/kernel:6.6.71",
			"linuxkit/kernel:6.6.71-builder",
		}},
		{[]string{"--series", "6.6.x", "--arch", "x86_64", "--debug", "--org", "me"}, []string{
			"me/kernel:6.6.71-dbg-" + hash + "-amd64",
			"me/kernel:6.6.71-dbg-" + hash,
			"me/kernel:6.6.71-dbg-amd64",
			"me/kernel:6.6.71-dbg",
			"me/kernel:6.6.71-builder",
		}},
		{[]string{"--version", "6.6.71", "--extra", "-foo", "--arch", "aarch64", "--debug"}, []string{
			"linuxkit/kernel:6.6.71-foo-dbg-" + hash + "-arm64",
			"linuxkit/kernel:6.6.71-foo-dbg-" + hash,
			"linuxkit/kernel:6.6.71-foo-dbg-arm64",
			"linuxkit/kernel:6.6.71-foo-dbg",
			"linuxkit/kernel:6.6.71-foo-builder",
		}},
	} {
		got := lkbuildOK(t, append([]string{"tags", "--kernel-dir", k}, tc.args...)...)
		if want := strings.Join(tc.want, "\n") + "\n"; got != want {
			t.Errorf("lkbuild tags %q =\n%s\nwant\n%s", tc.args, got, want)
		}
	}
}

// Without --kernel-dir, lkbuild uses . when it holds series folders, else
// ./kernel, like `make` run in LinuxKit's kernel folder.
func TestDefaultKernelDir(t *testing.T) {
	testGit(t)
	k := kernelRepo(t, "kernel", seriesKernelFiles())
	want := command(t, k, "make", "-s", "--no-print-directory", "show-tag-6.6.71")
	for _, dir := range []string{k, filepath.Dir(k)} {
		t.Chdir(dir)
		if got := lkbuildOK(t, "show-tag", "--series", "6.6.x"); got != want {
			t.Errorf("in %s: show-tag = %q, want %q", dir, got, want)
		}
	}
}

func TestKernelCommandErrors(t *testing.T) {
	testGit(t)
	k := kernelRepo(t, "kernel", seriesKernelFiles())
	bad := kernelRepo(t, "kernel", func() map[string]string {
		files := seriesKernelFiles()
		files["6.12.x/build-args"] = "KERNEL_SERIES=6.12.x\nKERNEL_VERSION=6.13.1\n"
		return files
	}())
	notGit := t.TempDir()
	writeTree(t, notGit, seriesKernelFiles())
	for _, tc := range []struct {
		args []string
		msg  string
	}{
		{[]string{"show-tag", "--kernel-dir", k}, "lkbuild: show-tag needs --series (e.g. 6.6.x) or --version (e.g. 6.6.71)\n"},
		{[]string{"show-tag", "--kernel-dir", k, "6.6.x"}, "lkbuild: unexpected argument \"6.6.x\": name the kernel with --series or --version\n"},
		{[]string{"show-tag", "--kernel-dir", k, "--series", "6.7.x"}, "lkbuild: " + k + ": series 6.7.x: no such series (have 5.11.x-rt, 5.11.x, 5.15.x, 6.12.x, 6.6.x-foo, 6.6.x)\n"},
		{[]string{"show-tag", "--kernel-dir", bad, "--series", "6.6.x"}, "lkbuild: " + bad + "/6.12.x/build-args:2: KERNEL_VERSION=6.13.1 belongs to series 6.13.x, not 6.12.x\n"},
		{[]string{"show-tag", "--kernel-dir", notGit, "--series", "6.6.x"}, "lkbuild: " + notGit + ": the series hash comes from git history: not in a git work tree\n"},
		{[]string{"tags", "--kernel-dir", k, "--series", "6.12.x", "--arch", "riscv64"}, "lkbuild: " + k + "/6.12.x: series 6.12.x has no config for riscv64 (it has aarch64, x86_64): no config for this arch\n"},
		{[]string{"tags", "--kernel-dir", k, "--series", "6.6.x", "--arch", "mips"}, "lkbuild: unknown arch \"mips\" (want one of aarch64/arm64, riscv64, x86_64/amd64)\n"},
		{[]string{"list", "--kernel-dir", filepath.Dir(k)}, "lkbuild: " + filepath.Dir(k) + ": not a LinuxKit kernel directory (want folders like 6.6.x/ with build-args, or files like config-6.6.x-x86_64)\n"},
	} {
		out, errOut, code := lkbuild(t, tc.args...)
		if code == 0 || out != "" || errOut != tc.msg {
			t.Errorf("lkbuild %q: exit %d, stdout %q, stderr\n%q\nwant\n%q", tc.args, code, out, errOut, tc.msg)
		}
	}
	// list works outside git, without the hash.
	out := lkbuildOK(t, "list", "--kernel-dir", notGit, "--arch", "amd64")
	if want := "Arch: x86_64\nKernels: 6.12.59 6.6.70\nDeprecated: 5.11.x-rt 5.11.x 5.15.x\nTools: bcc perf\nShared hash: none (not in a git work tree)\n"; out != want {
		t.Errorf("list outside git =\n%s\nwant\n%s", out, want)
	}
}

func TestKernelCommandsHelp(t *testing.T) {
	for _, cmd := range []string{"list", "show-tag", "tags"} {
		out := lkbuildOK(t, cmd, "--help")
		for _, want := range []string{"Examples:", "lkbuild " + cmd, "--kernel-dir"} {
			if !strings.Contains(out, want) {
				t.Errorf("lkbuild %s --help lacks %q:\n%s", cmd, want, out)
			}
		}
	}
}

// TestShowTagCheckoutsMatchMake runs show-tag and list on testdata/kernel
// in the checkouts a user may have of a LinuxKit repository, sparse ones
// included, against make in the same checkout.
func TestShowTagCheckoutsMatchMake(t *testing.T) {
	testGit(t)
	src := t.TempDir()
	command(t, src, "git", "init", "-q", "-b", "main")
	files := map[string]string{"README.md": "linuxkit\n", "docs/kernels.md": "docs\n", "pkg/init/build.yml": "image: init\n"}
	testdata := filepath.Join("..", "..", "testdata", "kernel")
	err := filepath.WalkDir(testdata, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(testdata, p)
		files["kernel/"+filepath.ToSlash(rel)] = string(data)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	writeTree(t, src, files)
	command(t, src, "git", "add", "-A")
	command(t, src, "git", "commit", "-q", "-m", "kernel")
	command(t, src, "git", "commit", "-q", "--allow-empty", "-m", "second, so that depth 1 is shallow")

	clone := func(t *testing.T, args ...string) string {
		t.Helper()
		dst := filepath.Join(t.TempDir(), "linuxkit")
		command(t, src, "git", append(append([]string{"clone", "-q"}, args...), "file://"+src, dst)...)
		return dst
	}
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T) string // returns the top of the work tree
		dirty bool
	}{
		{"plain clone", func(t *testing.T) string { return clone(t) }, false},
		{"sparse, cone", func(t *testing.T) string {
			top := clone(t)
			command(t, top, "git", "sparse-checkout", "set", "kernel")
			return top
		}, false},
		{"sparse, non-cone, common left out", func(t *testing.T) string {
			top := clone(t)
			command(t, top, "git", "sparse-checkout", "set", "--no-cone", "/kernel/Makefile", "/kernel/6.12.x/")
			return top
		}, false},
		{"sparse, shallow", func(t *testing.T) string {
			top := clone(t, "--depth", "1", "--sparse")
			command(t, top, "git", "sparse-checkout", "set", "kernel")
			return top
		}, false},
		{"sparse, linked worktree", func(t *testing.T) string {
			wt := filepath.Join(t.TempDir(), "wt")
			command(t, clone(t), "git", "worktree", "add", "-q", wt)
			command(t, wt, "git", "sparse-checkout", "set", "kernel")
			return wt
		}, false},
		{"sparse, modified", func(t *testing.T) string {
			top := clone(t)
			command(t, top, "git", "sparse-checkout", "set", "kernel")
			writeTree(t, top, map[string]string{"kernel/6.12.x/config-x86_64": "CONFIG_X86_64=n\n"})
			return top
		}, true},
		{"sparse, left-out file written", func(t *testing.T) string {
			top := clone(t)
			command(t, top, "git", "sparse-checkout", "set", "--no-cone", "/kernel/Makefile", "/kernel/6.12.x/")
			writeTree(t, top, map[string]string{"kernel/common/config-dbg": "CONFIG_DEBUG_INFO=n\n"})
			return top
		}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k := filepath.Join(tc.setup(t), "kernel")
			// lkbuild first: make's git refresh rewrites the index.
			gotTag := lkbuildOK(t, "show-tag", "--kernel-dir", k, "--series", "6.12.x")
			gotList := lkbuildOK(t, "list", "--kernel-dir", k, "--arch", "x86_64")
			wantTag := command(t, k, "make", "-s", "--no-print-directory", "show-tag-6.12.117")
			if gotTag != wantTag {
				t.Errorf("lkbuild show-tag = %q, make = %q", gotTag, wantTag)
			}
			if dirty := strings.HasSuffix(strings.TrimSpace(wantTag), "-dirty"); dirty != tc.dirty {
				t.Errorf("make says dirty = %v, want %v", dirty, tc.dirty)
			}
			if want := command(t, k, "make", "-s", "--no-print-directory", "list", "ARCH=x86_64"); gotList != want {
				t.Errorf("lkbuild list =\n%s\nmake list =\n%s", gotList, want)
			}
		})
	}
}
