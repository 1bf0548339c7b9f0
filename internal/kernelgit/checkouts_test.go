package kernelgit

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lkbuild/lkbuild/internal/gitrepo"
	"github.com/lkbuild/lkbuild/kernel"
)

// linuxkitFiles is a LinuxKit-shaped repository: a kernel folder in the
// series layout, and folders beside it that a sparse checkout leaves out.
func linuxkitFiles() map[string]string {
	return map[string]string{
		"README.md":                          "linuxkit\n",
		"docs/kernels.md":                    "docs\n",
		"pkg/init/Dockerfile":                "FROM scratch\n",
		"kernel/Makefile":                    "all:\n",
		"kernel/common/Dockerfile":           "FROM scratch\n",
		"kernel/common/config-dbg":           "CONFIG_DEBUG_INFO=y\n",
		"kernel/6.6.x/build-args":            "KERNEL_VERSION=6.6.71\nKERNEL_SERIES=6.6.x\n",
		"kernel/6.6.x/config-x86_64":         "CONFIG_X86_64=y\n",
		"kernel/6.6.x/patches/0001-a.patch":  "From: a\n",
		"kernel/6.12.x/build-args":           "KERNEL_VERSION=6.12.59\nKERNEL_SERIES=6.12.x\n",
		"kernel/6.12.x/config-x86_64":        "CONFIG_X86_64=y\n",
		"kernel/6.12.x/patches/0001-b.patch": "From: b\n",
	}
}

// linuxkitSource makes the source repository the checkouts clone: two
// commits, so that a clone of depth 1 is shallow.
func linuxkitSource(t *testing.T) string {
	t.Helper()
	dir := newRepo(t, linuxkitFiles())
	writeFiles(t, dir, map[string]string{"kernel/6.12.x/config-x86_64": "CONFIG_X86_64=y\nCONFIG_Y=y\n"})
	runGit(t, dir, "commit", "-q", "-am", "6.12.x: CONFIG_Y")
	return dir
}

// cloneOf clones src over file:// with extra arguments and returns the
// clone's top.
func cloneOf(t *testing.T, src string, args ...string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "linuxkit")
	runGit(t, src, append(append([]string{"clone", "-q"}, args...), "file://"+src, dst)...)
	return dst
}

// linkedWorktree adds a work tree to a clone of src and returns its top.
func linkedWorktree(t *testing.T, src string) string {
	t.Helper()
	wt := filepath.Join(t.TempDir(), "wt")
	runGit(t, cloneOf(t, src), "worktree", "add", "-q", "-b", "side", wt)
	return wt
}

func sparse(t *testing.T, top string, args ...string) string {
	t.Helper()
	runGit(t, top, append([]string{"sparse-checkout", "set"}, args...)...)
	return top
}

// gitSeriesHash is LinuxKit's series hash of series at HEAD, computed by
// the real git as the Makefile computes it, -dirty included.
func gitSeriesHash(t *testing.T, top, k, series string) string {
	t.Helper()
	script := `set -e
shared=$(git ls-tree -r --full-tree HEAD -- "$1/Makefile" "$1/common" | git hash-object --stdin)
hash=$( (echo "$shared"; git ls-tree --full-tree HEAD -- "$1/$2") | git hash-object --stdin)
dirty=$(git update-index -q --refresh && git diff-index --quiet HEAD -- "$1" || echo -dirty)
echo "$hash$dirty"`
	cmd := exec.Command("sh", "-c", script, "-", k, series)
	cmd.Dir = top
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("git pipeline: %v", err)
	}
	return strings.TrimSpace(string(out))
}

// TestCheckouts holds lkbuild's series hash, dirty state, revision and
// remote against git's in each kind of checkout a user may have of a
// LinuxKit repository: plain, sparse (cone and not), a linked work tree
// and a shallow clone, clean and with changes.
func TestCheckouts(t *testing.T) {
	gitEnv(t)
	src := linuxkitSource(t)
	cases := []struct {
		name string
		// setup returns the top of the work tree, with kernel/ in it.
		setup     func(t *testing.T) string
		wantDirty bool
	}{
		{"plain clone", func(t *testing.T) string { return cloneOf(t, src) }, false},
		{"sparse, cone", func(t *testing.T) string { return sparse(t, cloneOf(t, src), "kernel") }, false},
		{"sparse, cone of one series", func(t *testing.T) string {
			// kernel/common is left out: its files are skip-worktree, not deleted.
			return sparse(t, cloneOf(t, src), "kernel/6.6.x")
		}, false},
		{"sparse, non-cone", func(t *testing.T) string {
			return sparse(t, cloneOf(t, src), "--no-cone", "/kernel/6.6.x/", "/kernel/Makefile")
		}, false},
		{"sparse, cloned with --sparse", func(t *testing.T) string {
			return sparse(t, cloneOf(t, src, "--sparse"), "kernel")
		}, false},
		{"sparse, core.fileMode off in config.worktree", func(t *testing.T) string {
			top := sparse(t, cloneOf(t, src), "kernel")
			runGit(t, top, "config", "--worktree", "core.fileMode", "false")
			chmod(t, filepath.Join(top, "kernel/6.6.x/config-x86_64"), 0o755)
			return top
		}, false},
		{"linked worktree", func(t *testing.T) string { return linkedWorktree(t, src) }, false},
		{"linked worktree, sparse", func(t *testing.T) string { return sparse(t, linkedWorktree(t, src), "kernel/6.6.x") }, false},
		{"shallow clone", func(t *testing.T) string { return cloneOf(t, src, "--depth", "1") }, false},
		{"shallow clone, sparse", func(t *testing.T) string { return sparse(t, cloneOf(t, src, "--depth", "1"), "kernel") }, false},
		{"sparse, modified in the kernel dir", func(t *testing.T) string {
			top := sparse(t, cloneOf(t, src), "kernel")
			writeFiles(t, top, map[string]string{"kernel/6.6.x/config-x86_64": "CONFIG_X86_64=n\n"})
			return top
		}, true},
		{"sparse, deleted in the kernel dir", func(t *testing.T) string {
			top := sparse(t, cloneOf(t, src), "kernel")
			if err := os.Remove(filepath.Join(top, "kernel/6.6.x/patches/0001-a.patch")); err != nil {
				t.Fatal(err)
			}
			return top
		}, true},
		{"sparse, untracked in the kernel dir", func(t *testing.T) string {
			top := sparse(t, cloneOf(t, src), "kernel")
			writeFiles(t, top, map[string]string{"kernel/6.6.x/notes": "local\n"})
			return top
		}, false},
		{"sparse, written outside the kernel dir", func(t *testing.T) string {
			top := sparse(t, cloneOf(t, src), "kernel")
			writeFiles(t, top, map[string]string{"docs/kernels.md": "changed\n", "README.md": "changed\n"})
			return top
		}, false},
		{"linked worktree, sparse, modified", func(t *testing.T) string {
			top := sparse(t, linkedWorktree(t, src), "kernel/6.6.x")
			writeFiles(t, top, map[string]string{"kernel/6.6.x/build-args": "KERNEL_VERSION=6.6.72\nKERNEL_SERIES=6.6.x\n"})
			return top
		}, true},
		{"shallow clone, modified", func(t *testing.T) string {
			top := cloneOf(t, src, "--depth", "1")
			writeFiles(t, top, map[string]string{"kernel/common/Dockerfile": "FROM alpine\n"})
			return top
		}, true},
		// A file the sparse patterns leave out can still be written by hand.
		// git then takes it as checked out (it clears its skip-worktree bit)
		// and compares it.
		{"sparse, left-out file written, changed", func(t *testing.T) string {
			top := sparse(t, cloneOf(t, src), "kernel/6.6.x")
			writeFiles(t, top, map[string]string{"kernel/common/Dockerfile": "FROM alpine\n"})
			return top
		}, true},
		{"sparse, left-out file written, unchanged", func(t *testing.T) string {
			top := sparse(t, cloneOf(t, src), "--no-cone", "/kernel/6.6.x/", "/kernel/Makefile")
			writeFiles(t, top, map[string]string{"kernel/common/Dockerfile": "FROM scratch\n"})
			return top
		}, false},
		{"sparse, left-out file written, expected outside the patterns", func(t *testing.T) string {
			top := sparse(t, cloneOf(t, src), "kernel/6.6.x")
			runGit(t, top, "config", "sparse.expectFilesOutsideOfPatterns", "true")
			writeFiles(t, top, map[string]string{"kernel/common/Dockerfile": "FROM alpine\n"})
			return top
		}, false},
		// A file where a left-out folder was hides no file of the folder: git
		// finds none of them and compares none.
		{"sparse, left-out folder written as a file", func(t *testing.T) string {
			top := sparse(t, cloneOf(t, src), "kernel/6.6.x")
			writeFiles(t, top, map[string]string{"kernel/6.12.x": "a file\n"})
			return top
		}, false},
		{"sparse, left-out file written as a folder", func(t *testing.T) string {
			top := sparse(t, cloneOf(t, src), "kernel/6.6.x")
			writeFiles(t, top, map[string]string{"kernel/common/Dockerfile/x": "x\n"})
			return top
		}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			top := tc.setup(t)
			k := filepath.Join(top, "kernel")
			// lkbuild goes first: git's refresh writes the index, and clears
			// the skip-worktree bit of a left-out file written by hand, which
			// lkbuild must see for itself.
			co, err := Open(Options{KernelDir: k})
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			if co.Path != "kernel" || co.Rev == nil {
				t.Fatalf("Path = %q, Rev = %v", co.Path, co.Rev)
			}
			s, err := co.Dir.Lookup("6.6.x")
			if err != nil {
				t.Fatal(err)
			}
			got, err := co.Hash(s)
			if err != nil {
				t.Fatalf("Hash: %v", err)
			}
			// The hash comes from HEAD's tree, so it is the same in every
			// checkout.
			want := gitSeriesHash(t, top, "kernel", "6.6.x")
			if dirty := strings.HasSuffix(want, kernel.DirtySuffix); dirty != tc.wantDirty {
				t.Fatalf("git says dirty = %v: the fixture is wrong", dirty)
			}
			if got != want {
				t.Errorf("Hash = %s, git says %s", got, want)
			}
			if clean := gitSeriesHash(t, src, "kernel", "6.6.x"); strings.TrimSuffix(got, kernel.DirtySuffix) != clean {
				t.Errorf("Hash = %s, the source repository's is %s", got, clean)
			}
			repo := co.Rev.(*Repo)
			commit, when, err := repo.Commit()
			if err != nil {
				t.Fatal(err)
			}
			log := strings.Fields(runGit(t, top, "log", "-1", "--format=%H %cI"))
			if wantWhen, _ := time.Parse(time.RFC3339, log[1]); commit != log[0] || !when.Equal(wantWhen) {
				t.Errorf("Commit = %s %s, git says %s", commit, when, log)
			}
			if got, want := repo.RemoteURL(), strings.TrimSpace(runGit(t, top, "config", "--get", "remote.origin.url")); got != want {
				t.Errorf("RemoteURL = %q, git says %q", got, want)
			}
		})
	}
}

// A checkout lkbuild cannot read as git does is refused with an error
// that says why, not read wrong.
func TestCheckoutsRefused(t *testing.T) {
	gitEnv(t)
	src := linuxkitSource(t)
	t.Run("partial clone", func(t *testing.T) {
		top := cloneOf(t, src)
		runGit(t, top, "config", "extensions.partialClone", "origin")
		_, err := Open(Options{KernelDir: filepath.Join(top, "kernel")})
		if !errors.Is(err, gitrepo.ErrUnsupportedExtension) || !strings.Contains(err.Error(), "partialClone") {
			t.Errorf("Open: %v, want ErrUnsupportedExtension naming partialClone", err)
		}
	})
	t.Run("sha256", func(t *testing.T) {
		dir := t.TempDir()
		runGit(t, dir, "init", "-q", "--object-format=sha256", "-b", "main")
		writeFiles(t, dir, map[string]string{"kernel/6.6.x/build-args": "KERNEL_VERSION=6.6.71\n"})
		runGit(t, dir, "add", "-A")
		runGit(t, dir, "commit", "-q", "-m", "sha256")
		_, err := Open(Options{KernelDir: filepath.Join(dir, "kernel")})
		if !errors.Is(err, gitrepo.ErrUnsupportedExtension) || !strings.Contains(err.Error(), "objectformat = sha256") {
			t.Errorf("Open: %v, want ErrUnsupportedExtension naming objectformat", err)
		}
	})
	t.Run("sparse index", func(t *testing.T) {
		top := sparse(t, cloneOf(t, src), "--sparse-index", "kernel")
		co, err := Open(Options{KernelDir: filepath.Join(top, "kernel")})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := co.Rev.LsTree(false, "kernel/6.6.x"); err != nil {
			t.Errorf("LsTree: %v", err)
		}
		_, err = co.Rev.Dirty("kernel")
		if err == nil || !strings.Contains(err.Error(), "index.sparse") {
			t.Errorf("Dirty: %v, want an error naming index.sparse", err)

		}
	})
}
