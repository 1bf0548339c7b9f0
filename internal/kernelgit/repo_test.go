package kernelgit

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/go-git/go-git/v5"
)

// lsTreeFiles is a tree with what ls-tree must get right: nesting, modes,
// a symbolic link, names that git quotes, and folders whose names start
// with another folder's name.
func lsTreeFiles() map[string]string {
	return map[string]string{
		"top.txt":                      "top\n",
		"k/Makefile":                   "all:\n",
		"k/common/Dockerfile":          "FROM scratch\n",
		"k/common/run.sh":              "#!/bin/sh\n",
		"k/common/link":                "->Dockerfile",
		"k/common/sub/deep/file":       "deep\n",
		"k/common/sp ace":              "space\n",
		"k/common/tab\there":           "tab\n",
		"k/common/quo\"te":             "quote\n",
		"k/common/back\\slash":         "backslash\n",
		"k/common/new\nline":           "newline\n",
		"k/common/ünïcödé":             "utf-8\n",
		"k/common/ctl\x01\x7f":         "control\n",
		"k/6.6.x/build-args":           "KERNEL_VERSION=6.6.71\n",
		"k/6.6.x/patches/0001-a.patch": "a\n",
		"k/5.11.x/config-x86_64":       "x\n",
		"k/5.11.x-rt/config-x86_64":    "rt\n",
		"k/5.11.xx/file":               "xx\n",
		"k/5.11.x.y":                   "file beside the folder\n",
	}
}

func lsTreeRepo(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	runGit(t, dir, "init", "-q", "-b", "main")
	writeFiles(t, dir, lsTreeFiles())
	if err := os.Chmod(filepath.Join(dir, "k/common/run.sh"), 0o755); err != nil {
		t.Fatal(err)
	}
	runGit(t, dir, "add", "-A")
	// A submodule entry, as a gitlink without a checkout.
	runGit(t, dir, "update-index", "--add", "--cacheinfo", "160000,ce013625030ba8dba906f756967f9e9ca394464a,k/common/vendor")
	runGit(t, dir, "commit", "-q", "-m", "fixture")
	return dir
}

// LsTree must print what git ls-tree prints, byte for byte.
func TestLsTreeMatchesGit(t *testing.T) {
	gitEnv(t)
	dir := lsTreeRepo(t)
	cases := []struct {
		recursive bool
		paths     []string
	}{
		{true, []string{"k/Makefile", "k/common"}}, // the shared hash input
		{true, []string{"k/common", "k/Makefile"}}, // tree order, not argument order
		{false, []string{"k/6.6.x"}},               // the series hash input
		{false, []string{"k/5.11.x"}},              // not 5.11.x-rt, 5.11.xx or 5.11.x.y
		{false, []string{"k/5.11.x-rt"}},
		{false, []string{"k"}},
		{false, []string{"k/common/sub"}},
		{false, []string{"k/common/sub/deep/file"}},
		{true, []string{"k/6.6.x"}},
		{false, []string{"k/nope"}},
		{true, []string{"k/Makefile", "k/nope"}},
		{false, []string{"k", "k/6.6.x"}}, // a deeper path makes git enter k
		{false, nil},
		{true, nil},
	}
	for _, quote := range []string{"true", "false"} {
		runGit(t, dir, "config", "core.quotePath", quote)
		repo, err := OpenRepo(dir, "")
		if err != nil {
			t.Fatal(err)
		}
		for _, tc := range cases {
			args := []string{"ls-tree", "--full-tree"}
			if tc.recursive {
				args = append(args, "-r")
			}
			args = append(args, "HEAD")
			if len(tc.paths) > 0 {
				args = append(append(args, "--"), tc.paths...)
			}
			want := runGit(t, dir, args...)
			got, err := repo.LsTree(tc.recursive, tc.paths...)
			if err != nil {
				t.Fatalf("LsTree(%v, %q): %v", tc.recursive, tc.paths, err)
			}
			if string(got) != want {
				t.Errorf("quotePath=%s: LsTree(%v, %q) =\n%s\ngit %s =\n%s", quote, tc.recursive, tc.paths, got, strings.Join(args, " "), want)
			}
		}
	}
}

func TestLsTreeAtCommit(t *testing.T) {
	gitEnv(t)
	dir := newRepo(t, map[string]string{"k/6.6.x/build-args": "KERNEL_VERSION=6.6.70\n"})
	runGit(t, dir, "tag", "v1")
	writeFiles(t, dir, map[string]string{"k/6.6.x/build-args": "KERNEL_VERSION=6.6.71\n"})
	runGit(t, dir, "commit", "-q", "-am", "bump")
	for _, rev := range []string{"v1", "HEAD~1", "HEAD", ""} {
		repo, err := OpenRepo(dir, rev)
		if err != nil {
			t.Fatal(err)
		}
		gitRev := rev
		if gitRev == "" {
			gitRev = "HEAD"
		}
		want := runGit(t, dir, "ls-tree", "--full-tree", gitRev, "--", "k/6.6.x")
		if got, err := repo.LsTree(false, "k/6.6.x"); err != nil || string(got) != want {
			t.Errorf("at %q: LsTree = %q, %v; want %q", rev, got, err, want)
		}
	}
	if _, err := OpenRepo(dir, "no-such-ref"); err == nil {
		t.Error("OpenRepo at an unknown revision succeeded")
	}
}

func TestQuotePath(t *testing.T) {
	for _, tc := range []struct {
		in, high, raw string
	}{
		{"plain/name.txt", "plain/name.txt", "plain/name.txt"},
		{"sp ace", "sp ace", "sp ace"},
		{"a\tb\nc", `"a\tb\nc"`, `"a\tb\nc"`},
		{"q\"b\\", `"q\"b\\"`, `"q\"b\\"`},
		{"\a\b\v\f\r", `"\a\b\v\f\r"`, `"\a\b\v\f\r"`},
		{"\x01\x1f\x7f", `"\001\037\177"`, `"\001\037\177"`},
		{"é", `"\303\251"`, "é"},
	} {
		if got := quotePath(tc.in, true); got != tc.high {
			t.Errorf("quotePath(%q, true) = %s, want %s", tc.in, got, tc.high)
		}
		if got := quotePath(tc.in, false); got != tc.raw {
			t.Errorf("quotePath(%q, false) = %s, want %s", tc.in, got, tc.raw)
		}
	}
}

// Dirty must agree with LinuxKit's check,
// `git update-index -q --refresh && git diff-index --quiet HEAD -- K`.
func TestDirtyMatchesGit(t *testing.T) {
	gitEnv(t)
	files := map[string]string{
		"outside.txt":                 "outside\n",
		"a/b/k/Makefile":              "all:\n",
		"a/b/k/common/Dockerfile":     "FROM scratch\n",
		"a/b/k/common/link":           "->Dockerfile",
		"a/b/k/6.6.x/build-args":      "KERNEL_VERSION=6.6.71\n",
		"a/b/k/6.6.x/config-x86_64":   "CONFIG_X=y\n",
		"a/b/k/6.6.x/patches/a.patch": "a\n",
		"a/b/kernel-other/file":       "beside k, not in it\n",
	}
	k := "a/b/k"
	for _, tc := range []struct {
		name   string
		change func(t *testing.T, dir string)
	}{
		{"clean", func(t *testing.T, dir string) {}},
		{"modified", func(t *testing.T, dir string) {
			writeFiles(t, dir, map[string]string{k + "/6.6.x/config-x86_64": "CONFIG_X=n\n"})
		}},
		{"modified, same size", func(t *testing.T, dir string) {
			writeFiles(t, dir, map[string]string{k + "/6.6.x/config-x86_64": "CONFIG_Y=y\n"})
		}},
		{"rewritten with the same content", func(t *testing.T, dir string) {
			writeFiles(t, dir, map[string]string{k + "/6.6.x/config-x86_64": "CONFIG_X=y\n"})
		}},
		{"modified outside", func(t *testing.T, dir string) {
			writeFiles(t, dir, map[string]string{"outside.txt": "changed\n", "a/b/kernel-other/file": "changed\n"})
		}},
		{"untracked", func(t *testing.T, dir string) {
			writeFiles(t, dir, map[string]string{k + "/6.6.x/new": "new\n", k + "/7.0.x/build-args": "KERNEL_VERSION=7.0.1\n"})
		}},
		{"staged new file", func(t *testing.T, dir string) {
			writeFiles(t, dir, map[string]string{k + "/6.6.x/new": "new\n"})
			runGit(t, dir, "add", k+"/6.6.x/new")
		}},
		{"intent to add", func(t *testing.T, dir string) {
			writeFiles(t, dir, map[string]string{k + "/6.6.x/new": "new\n"})
			runGit(t, dir, "add", "-N", k+"/6.6.x/new")
		}},
		{"staged, work tree back to HEAD", func(t *testing.T, dir string) {
			writeFiles(t, dir, map[string]string{k + "/6.6.x/config-x86_64": "CONFIG_X=n\n"})
			runGit(t, dir, "add", k+"/6.6.x/config-x86_64")
			writeFiles(t, dir, map[string]string{k + "/6.6.x/config-x86_64": "CONFIG_X=y\n"})
		}},
		{"executable bit", func(t *testing.T, dir string) {
			chmod(t, filepath.Join(dir, k, "6.6.x/build-args"), 0o755)
		}},
		{"executable bit, core.fileMode off", func(t *testing.T, dir string) {
			runGit(t, dir, "config", "core.fileMode", "false")
			chmod(t, filepath.Join(dir, k, "6.6.x/build-args"), 0o755)
		}},
		{"group write bit", func(t *testing.T, dir string) {
			chmod(t, filepath.Join(dir, k, "6.6.x/build-args"), 0o664)
		}},
		{"deleted", func(t *testing.T, dir string) {
			if err := os.Remove(filepath.Join(dir, k, "6.6.x/patches/a.patch")); err != nil {
				t.Fatal(err)
			}
		}},
		{"removed from the index only", func(t *testing.T, dir string) {
			runGit(t, dir, "rm", "-q", "--cached", k+"/common/Dockerfile")
		}},
		{"symlink retargeted", func(t *testing.T, dir string) {
			p := filepath.Join(dir, k, "common/link")
			if err := os.Remove(p); err != nil {
				t.Fatal(err)
			}
			writeFiles(t, dir, map[string]string{k + "/common/link": "->Makefile"})
		}},
		{"file replaced by a folder", func(t *testing.T, dir string) {
			p := filepath.Join(dir, k, "6.6.x/build-args")
			if err := os.Remove(p); err != nil {
				t.Fatal(err)
			}
			writeFiles(t, dir, map[string]string{k + "/6.6.x/build-args/x": "x\n"})
		}},
		{"folder replaced by a file", func(t *testing.T, dir string) {
			if err := os.RemoveAll(filepath.Join(dir, k, "6.6.x/patches")); err != nil {
				t.Fatal(err)
			}
			writeFiles(t, dir, map[string]string{k + "/6.6.x/patches": "now a file\n"})
		}},
		{"skip-worktree, modified", func(t *testing.T, dir string) {
			runGit(t, dir, "update-index", "--skip-worktree", k+"/6.6.x/config-x86_64")
			writeFiles(t, dir, map[string]string{k + "/6.6.x/config-x86_64": "CONFIG_X=n\n"})
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := newRepo(t, files)
			tc.change(t, dir)
			repo, err := OpenRepo(filepath.Join(dir, "a/b/k"), "")
			if err != nil {
				t.Fatal(err)
			}
			for _, path := range []string{k, "a", "a/b/k/6.6.x", ""} {
				got, err := repo.Dirty(path)
				if err != nil {
					t.Fatalf("Dirty(%q): %v", path, err)
				}
				if want := gitDirty(t, dir, path); got != want {
					t.Errorf("Dirty(%q) = %v, git says %v", path, got, want)
				}
			}
		})
	}
}

// gitDirty runs LinuxKit's dirty check with the real git.
func gitDirty(t *testing.T, dir, path string) bool {
	t.Helper()
	if path == "" {
		path = "."
	}
	script := `git update-index -q --refresh && git diff-index --quiet HEAD -- "$1" || echo -dirty`
	out := runGit(t, dir, "-c", "alias.chk=!sh -c '"+script+"' -", "chk", path)
	return strings.TrimSpace(out) == "-dirty"
}

func chmod(t *testing.T, p string, mode os.FileMode) {
	t.Helper()
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
}

func TestOpen(t *testing.T) {
	gitEnv(t)
	series := map[string]string{
		"6.6.x/build-args":    "KERNEL_VERSION=6.6.71\n",
		"6.6.x/config-x86_64": "x\n",
	}
	prefixed := func(prefix string) map[string]string {
		out := map[string]string{"README.md": "repo\n"}
		for name, data := range series {
			out[prefix+name] = data
		}
		return out
	}
	t.Run("kernel dir given, nested", func(t *testing.T) {
		dir := newRepo(t, prefixed("x/y/z/kernel/"))
		co, err := Open(Options{KernelDir: filepath.Join(dir, "x/y/z/kernel")})
		if err != nil {
			t.Fatal(err)
		}
		if co.Path != "x/y/z/kernel" || co.Rev == nil {
			t.Errorf("Path = %q, Rev = %v", co.Path, co.Rev)
		}
	})
	t.Run("kernel dir is the repository root", func(t *testing.T) {
		dir := newRepo(t, prefixed(""))
		co, err := Open(Options{KernelDir: dir})
		if err != nil {
			t.Fatal(err)
		}
		if co.Path != "" || co.Rev == nil {
			t.Errorf("Path = %q, Rev = %v", co.Path, co.Rev)
		}
	})
	t.Run("through a symbolic link", func(t *testing.T) {
		dir := newRepo(t, prefixed("kernel/"))
		link := filepath.Join(t.TempDir(), "link")
		if err := os.Symlink(filepath.Join(dir, "kernel"), link); err != nil {
			t.Fatal(err)
		}
		co, err := Open(Options{KernelDir: link})
		if err != nil {
			t.Fatal(err)
		}
		if co.Path != "kernel" || co.Rev == nil {
			t.Errorf("Path = %q, Rev = %v", co.Path, co.Rev)
		}
	})
	t.Run("default: ./kernel from the top of a checkout", func(t *testing.T) {
		dir := newRepo(t, prefixed("kernel/"))
		t.Chdir(dir)
		co, err := Open(Options{})
		if err != nil {
			t.Fatal(err)
		}
		if co.Path != "kernel" || co.Dir.Path != "kernel" {
			t.Errorf("Path = %q, Dir.Path = %q", co.Path, co.Dir.Path)
		}
	})
	t.Run("default: . inside the kernel folder", func(t *testing.T) {
		dir := newRepo(t, prefixed("kernel/"))
		t.Chdir(filepath.Join(dir, "kernel"))
		co, err := Open(Options{})
		if err != nil {
			t.Fatal(err)
		}
		if co.Path != "kernel" || co.Dir.Path != "." {
			t.Errorf("Path = %q, Dir.Path = %q", co.Path, co.Dir.Path)
		}
	})
	t.Run("not in git", func(t *testing.T) {
		dir := t.TempDir()
		writeFiles(t, dir, series)
		co, err := Open(Options{KernelDir: dir})
		if err != nil {
			t.Fatal(err)
		}
		if co.Rev != nil {
			t.Errorf("Rev = %v outside git", co.Rev)
		}
		if _, err := OpenRepo(dir, ""); !errors.Is(err, git.ErrRepositoryNotExists) {
			t.Errorf("OpenRepo outside git: %v", err)
		}
	})
	t.Run("no commits yet", func(t *testing.T) {
		dir := t.TempDir()
		runGit(t, dir, "init", "-q")
		writeFiles(t, dir, series)
		if _, err := Open(Options{KernelDir: dir}); err == nil {
			t.Error("Open in a repository without commits succeeded")
		}
	})
	t.Run("missing", func(t *testing.T) {
		if _, err := Open(Options{KernelDir: filepath.Join(t.TempDir(), "nope")}); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("err = %v, want ErrNotExist", err)
		}
	})
}
