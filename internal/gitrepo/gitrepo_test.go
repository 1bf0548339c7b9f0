package gitrepo

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"

	"github.com/lkbuild/lkbuild/internal/testenv"
)

// gitEnv makes git, and go-git's config reading, independent of the
// machine: a fresh HOME, no system config, a fixed author and date.
func gitEnv(t *testing.T) {
	t.Helper()
	testenv.LookPath(t, "git", "git")
	t.Setenv("HOME", t.TempDir())
	t.Setenv("XDG_CONFIG_HOME", "")
	t.Setenv("GIT_CONFIG_NOSYSTEM", "1")
	t.Setenv("LC_ALL", "C")
	for _, kv := range [][2]string{
		{"GIT_AUTHOR_NAME", "Test"}, {"GIT_AUTHOR_EMAIL", "test@example.com"},
		{"GIT_COMMITTER_NAME", "Test"}, {"GIT_COMMITTER_EMAIL", "test@example.com"},
		{"GIT_AUTHOR_DATE", "2025-01-01T00:00:00Z"}, {"GIT_COMMITTER_DATE", "2025-01-01T00:00:00Z"},
	} {
		t.Setenv(kv[0], kv[1])
	}
}

// gitOut runs the real git in dir and returns its output and exit code;
// an exit code other than 0 and 1 fails the test.
func gitOut(t *testing.T, dir string, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	out, err := cmd.Output()
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.ExitCode() == 1 {
		return string(out), 1
	}
	if err != nil {
		msg := ""
		if ee != nil {
			msg = string(ee.Stderr)
		}
		t.Fatalf("git %q in %s: %v\n%s", args, dir, err, msg)
	}
	return string(out), 0
}

func runGit(t *testing.T, dir string, args ...string) string {
	t.Helper()
	out, code := gitOut(t, dir, args...)
	if code != 0 {
		t.Fatalf("git %q in %s: exit 1", args, dir)
	}
	return out
}

// source makes a repository with a kernel folder and one beside it, two
// commits deep (so that a depth-1 clone is shallow), and returns it.
func source(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	runGit(t, dir, "init", "-q", "-b", "main")
	for name, data := range map[string]string{
		"README.md":              "top\n",
		"kernel/Makefile":        "all:\n",
		"kernel/6.6.x/build-arg": "KERNEL_VERSION=6.6.70\n",
		"other/file":             "other\n",
	} {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	runGit(t, dir, "add", "-A")
	runGit(t, dir, "commit", "-q", "-m", "one")
	runGit(t, dir, "commit", "-q", "--allow-empty", "-m", "two")
	return dir
}

// clone clones src with extra git clone arguments and returns the clone.
func clone(t *testing.T, src string, args ...string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "clone")
	runGit(t, src, append(append([]string{"clone", "-q"}, args...), "file://"+src, dst)...)
	return dst
}

// configKeys are compared with what `git config --get` says.
var configKeys = [][3]string{
	{"core", "", "sparseCheckout"},
	{"core", "", "sparseCheckoutCone"},
	{"core", "", "fileMode"},
	{"index", "", "sparse"},
	{"remote", "origin", "url"},
}

func rawOption(cfg *config.Config, section, sub, key string) string {
	s := cfg.Raw.Section(section)
	if sub != "" {
		return s.Subsection(sub).Option(key)
	}
	return s.Option(key)
}

// TestDiscover opens each kind of checkout from a folder inside it and
// compares the repository with what git reads: the work tree root, HEAD
// and the config, config.worktree included.
func TestDiscover(t *testing.T) {
	gitEnv(t)
	src := source(t)
	cases := []struct {
		name string
		// setup returns a folder inside the work tree.
		setup func(t *testing.T) string
	}{
		{"plain clone", func(t *testing.T) string {
			return filepath.Join(clone(t, src), "kernel")
		}},
		{"sparse, cone", func(t *testing.T) string {
			dir := clone(t, src)
			runGit(t, dir, "sparse-checkout", "set", "kernel")
			runGit(t, dir, "config", "--worktree", "core.fileMode", "false")
			return filepath.Join(dir, "kernel")
		}},
		{"sparse, non-cone", func(t *testing.T) string {
			dir := clone(t, src)
			runGit(t, dir, "sparse-checkout", "set", "--no-cone", "/kernel/6.6.x/")
			return filepath.Join(dir, "kernel", "6.6.x")
		}},
		{"sparse, sparse index", func(t *testing.T) string {
			dir := clone(t, src)
			runGit(t, dir, "sparse-checkout", "set", "--sparse-index", "kernel")
			return filepath.Join(dir, "kernel")
		}},
		{"sparse, cloned with --sparse", func(t *testing.T) string {
			return clone(t, src, "--sparse")
		}},
		{"linked worktree", func(t *testing.T) string {
			dir := clone(t, src)
			wt := filepath.Join(t.TempDir(), "wt")
			runGit(t, dir, "worktree", "add", "-q", "-b", "side", wt)
			return filepath.Join(wt, "kernel")
		}},
		{"linked worktree, sparse", func(t *testing.T) string {
			dir := clone(t, src)
			wt := filepath.Join(t.TempDir(), "wt")
			runGit(t, dir, "worktree", "add", "-q", "-b", "side", wt)
			runGit(t, wt, "sparse-checkout", "set", "kernel")
			runGit(t, wt, "config", "--worktree", "core.fileMode", "false")
			return filepath.Join(wt, "kernel")
		}},
		{"main worktree of a sparse linked worktree", func(t *testing.T) string {
			dir := clone(t, src)
			wt := filepath.Join(t.TempDir(), "wt")
			runGit(t, dir, "worktree", "add", "-q", "-b", "side", wt)
			runGit(t, wt, "sparse-checkout", "set", "kernel")
			return filepath.Join(dir, "other")
		}},
		{"shallow clone", func(t *testing.T) string {
			return filepath.Join(clone(t, src, "--depth", "1"), "kernel")
		}},
		{"worktreeConfig off", func(t *testing.T) string {
			dir := clone(t, src)
			runGit(t, dir, "config", "extensions.worktreeConfig", "false")
			p := filepath.Join(dir, ".git", "config.worktree")
			if err := os.WriteFile(p, []byte("[core]\n\tfileMode = false\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			return dir
		}},
		{"config.worktree names an extension", func(t *testing.T) string {
			dir := clone(t, src)
			runGit(t, dir, "sparse-checkout", "set", "kernel")
			p := filepath.Join(dir, ".git", "config.worktree")
			f, err := os.OpenFile(p, os.O_APPEND|os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.WriteString("[extensions]\n\tobjectFormat = sha256\n"); err != nil {
				t.Fatal(err)
			}
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
			return dir
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := tc.setup(t)
			repo, err := Discover(dir)
			if err != nil {
				t.Fatalf("Discover(%s): %v", dir, err)
			}
			wt, err := repo.Worktree()
			if err != nil {
				t.Fatal(err)
			}
			if got, want := wt.Filesystem.Root(), strings.TrimSpace(runGit(t, dir, "rev-parse", "--show-toplevel")); got != want {
				t.Errorf("work tree root = %s, git says %s", got, want)
			}
			head, err := repo.Head()
			if err != nil {
				t.Fatal(err)
			}
			if got, want := head.Hash().String(), strings.TrimSpace(runGit(t, dir, "rev-parse", "HEAD")); got != want {
				t.Errorf("HEAD = %s, git says %s", got, want)
			}
			cfg, err := repo.Config()
			if err != nil {
				t.Fatal(err)
			}
			for _, k := range configKeys {
				name := strings.Join([]string{k[0], k[1], k[2]}, ".")
				if k[1] == "" {
					name = k[0] + "." + k[2]
				}
				want, _ := gitOut(t, dir, "config", "--get", name)
				if got := rawOption(cfg, k[0], k[1], k[2]); got != strings.TrimSpace(want) {
					t.Errorf("%s = %q, git says %q", name, got, strings.TrimSpace(want))
				}
			}
			if got, want := cfg.Remotes["origin"].URLs[0], "file://"+src; got != want {
				t.Errorf("origin = %s, want %s", got, want)
			}
			if err := repo.Storer.SetConfig(cfg); !errors.Is(err, ErrReadOnlyConfig) {
				t.Errorf("SetConfig: %v, want ErrReadOnlyConfig", err)
			}
		})
	}
}

// TestUnsupported: a repository git reads differently because of an
// extension is refused, naming the extension; and nothing found is
// git.ErrRepositoryNotExists.
func TestUnsupported(t *testing.T) {
	gitEnv(t)
	src := source(t)
	cases := []struct {
		name    string
		setup   func(t *testing.T) string
		want    error
		wantMsg string
	}{
		{"sha256 objects", func(t *testing.T) string {
			dir := t.TempDir()
			runGit(t, dir, "init", "-q", "--object-format=sha256", "-b", "main")
			runGit(t, dir, "commit", "-q", "--allow-empty", "-m", "one")
			return dir
		}, ErrUnsupportedExtension, "extensions.objectformat = sha256"},
		{"sha256 objects beside worktreeConfig", func(t *testing.T) string {
			dir := t.TempDir()
			runGit(t, dir, "init", "-q", "--object-format=sha256", "-b", "main")
			runGit(t, dir, "commit", "-q", "--allow-empty", "-m", "one")
			runGit(t, dir, "sparse-checkout", "set", "kernel")
			return dir
		}, ErrUnsupportedExtension, "extensions.objectformat = sha256"},
		{"partial clone", func(t *testing.T) string {
			dir := clone(t, src)
			runGit(t, dir, "config", "extensions.partialClone", "origin")
			return dir
		}, ErrUnsupportedExtension, "extensions.partialClone = origin"},
		{"bad worktreeConfig", func(t *testing.T) string {
			dir := clone(t, src)
			runGit(t, dir, "config", "extensions.worktreeConfig", "maybe")
			return dir
		}, nil, "extensions.worktreeConfig: bad boolean"},
		{"not a repository", func(t *testing.T) string {
			return t.TempDir()
		}, git.ErrRepositoryNotExists, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := tc.setup(t)
			_, err := Discover(dir)
			if err == nil {
				t.Fatal("Discover succeeded")
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Errorf("err = %v, want %v", err, tc.want)
			}
			// The extension's name is for the user: check it is there.
			if !strings.Contains(err.Error(), tc.wantMsg) {
				t.Errorf("err = %q, want it to say %q", err, tc.wantMsg)
			}
		})
	}
}

// TestOpen: Open takes the top of a work tree or a bare repository, and
// does not look in parent folders.
func TestOpen(t *testing.T) {
	gitEnv(t)
	src := source(t)
	head := strings.TrimSpace(runGit(t, src, "rev-parse", "HEAD"))
	cases := []struct {
		name    string
		setup   func(t *testing.T) string
		notRepo bool
	}{
		{"work tree", func(t *testing.T) string { return src }, false},
		{"bare", func(t *testing.T) string { return clone(t, src, "--bare") }, false},
		{"sparse", func(t *testing.T) string {
			dir := clone(t, src)
			runGit(t, dir, "sparse-checkout", "set", "kernel")
			return dir
		}, false},
		{"linked worktree", func(t *testing.T) string {
			wt := filepath.Join(t.TempDir(), "wt")
			runGit(t, clone(t, src), "worktree", "add", "-q", wt)
			return wt
		}, false},
		{"folder inside a work tree", func(t *testing.T) string { return filepath.Join(src, "kernel") }, true},
		{"missing", func(t *testing.T) string { return filepath.Join(t.TempDir(), "nope") }, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			repo, err := Open(tc.setup(t))
			if tc.notRepo {
				if !errors.Is(err, git.ErrRepositoryNotExists) {
					t.Errorf("err = %v, want ErrRepositoryNotExists", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			ref, err := repo.Head()
			if err != nil {
				t.Fatal(err)
			}
			if ref.Hash().String() != head {
				t.Errorf("HEAD = %s, want %s", ref.Hash(), head)
			}
		})
	}
}

func TestParseBool(t *testing.T) {
	for _, tc := range []struct {
		in    string
		v, ok bool
	}{
		{"", true, true}, {"true", true, true}, {"Yes", true, true}, {"on", true, true}, {"1", true, true},
		{"false", false, true}, {"NO", false, true}, {"off", false, true}, {"0", false, true},
		{"maybe", false, false}, {"2", false, false},
	} {
		if v, ok := ParseBool(tc.in); v != tc.v || ok != tc.ok {
			t.Errorf("ParseBool(%q) = %v, %v; want %v, %v", tc.in, v, ok, tc.v, tc.ok)
		}
	}
}
