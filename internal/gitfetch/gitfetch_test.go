package gitfetch

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
)

// gitRepo makes a repository with two commits: tag light (lightweight) on
// the first, tag annotated on the second.
func gitRepo(t *testing.T) (dir string, first, second string) {
	t.Helper()
	dir = t.TempDir()
	git := func(args ...string) string {
		cmd := exec.Command("git", args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@e", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@e")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	git("init", "-q")
	os.MkdirAll(filepath.Join(dir, "intel-ucode"), 0o755)
	os.WriteFile(filepath.Join(dir, "intel-ucode", "06-55-04"), []byte("v1"), 0o644)
	os.WriteFile(filepath.Join(dir, "license"), []byte("license"), 0o644)
	os.WriteFile(filepath.Join(dir, "run.sh"), []byte("#!/bin/sh\n"), 0o755)
	os.Symlink("license", filepath.Join(dir, "LICENSE"))
	git("add", ".")
	git("commit", "-q", "-m", "one")
	first = git("rev-parse", "HEAD")
	git("tag", "light")
	os.WriteFile(filepath.Join(dir, "intel-ucode", "06-55-04"), []byte("v2"), 0o644)
	git("commit", "-q", "-am", "two")
	second = git("rev-parse", "HEAD")
	git("tag", "-a", "-m", "annotated", "annotated")
	return dir, first, second
}

func TestFetch(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Fatal("git is missing (the test makes its repository with it)")
	}
	repo, first, second := gitRepo(t)
	cache := t.TempDir()
	tests := []struct {
		tag, commit, ucode string
	}{
		{"light", first, "v1"},
		{"annotated", second, "v2"},
	}
	for _, tc := range tests {
		t.Run(tc.tag, func(t *testing.T) {
			c, err := Fetch(context.Background(), repo, tc.tag, cache)
			if err != nil {
				t.Fatal(err)
			}
			if c.Commit != tc.commit || c.Cached {
				t.Errorf("checkout %+v, want commit %s", c, tc.commit)
			}
			if got, _ := os.ReadFile(filepath.Join(c.Dir, "intel-ucode", "06-55-04")); string(got) != tc.ucode {
				t.Errorf("file holds %q", got)
			}
			if fi, err := os.Stat(filepath.Join(c.Dir, "run.sh")); err != nil || fi.Mode().Perm() != 0o755 {
				t.Errorf("run.sh: %v %v", fi, err)
			}
			if l, _ := os.Readlink(filepath.Join(c.Dir, "LICENSE")); l != "license" {
				t.Errorf("symlink %q", l)
			}
			if _, err := os.Stat(filepath.Join(c.Dir, ".git")); err == nil {
				t.Errorf("checkout has .git")
			}
			again, err := Fetch(context.Background(), repo, tc.tag, cache)
			if err != nil || !again.Cached || again.Dir != c.Dir {
				t.Errorf("second fetch %+v %v", again, err)
			}
		})
	}
	if _, err := Fetch(context.Background(), repo, "no-such-tag", cache); err == nil || !strings.Contains(err.Error(), "no-such-tag") {
		t.Errorf("missing tag: %v", err)
	}
	if _, err := Fetch(context.Background(), filepath.Join(t.TempDir(), "none"), "light", cache); err == nil {
		t.Errorf("missing repository: no error")
	}
	entries, _ := os.ReadDir(cache)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".tmp-") {
			t.Errorf("left %s", e.Name())
		}
	}
}

// TestFetchOffline: offline, a remote repository's tag comes from the
// cache or is an error wrapping ErrOffline, with no request; a local
// repository is read as always.
func TestFetchOffline(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Fatal("git is missing (the test makes its repository with it)")
	}
	repo, first, _ := gitRepo(t)
	var requests atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		http.NotFound(w, r)
	}))
	defer srv.Close()
	remoteURL := srv.URL + "/intel/ucode.git"
	cache := t.TempDir()
	ctx := context.Background()

	_, err := Fetch(ctx, remoteURL, "light", cache, Offline(true))
	if !errors.Is(err, ErrOffline) || !strings.Contains(err.Error(), remoteURL) || !strings.Contains(err.Error(), "light") {
		t.Errorf("offline fetch of an uncached remote tag: got %v, want ErrOffline naming the URL and tag", err)
	}

	// A local repository needs no network.
	local, err := Fetch(ctx, repo, "light", cache, Offline(true))
	if err != nil || local.Commit != first {
		t.Fatalf("offline fetch of a local repository: %+v, %v", local, err)
	}
	// The remote's tag as a connected fetch would have left it.
	if err := os.Rename(filepath.Dir(local.Dir), checkoutDir(cache, remoteURL, "light")); err != nil {
		t.Fatal(err)
	}
	c, err := Fetch(ctx, remoteURL, "light", cache, Offline(true))
	if err != nil || !c.Cached || c.Commit != first {
		t.Errorf("offline fetch of a cached remote tag: %+v, %v", c, err)
	}
	if n := requests.Load(); n != 0 {
		t.Errorf("offline fetches made %d requests", n)
	}
}

// TestWriteRepo: the written repository holds the tag at the same commit,
// and Fetch reads it offline like the original (lightweight and annotated
// tags; the commit of the annotated one has a parent, which stays out).
func TestWriteRepo(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Fatal("git is missing (the test makes its repository with it)")
	}
	repo, first, second := gitRepo(t)
	ctx := context.Background()
	for _, tc := range []struct{ tag, commit, ucode string }{{"light", first, "v1"}, {"annotated", second, "v2"}} {
		t.Run(tc.tag, func(t *testing.T) {
			dst := filepath.Join(t.TempDir(), "ucode.git")
			commit, err := WriteRepo(ctx, repo, tc.tag, dst)
			if err != nil || commit != tc.commit {
				t.Fatalf("WriteRepo: %s, %v; want %s", commit, err, tc.commit)
			}
			c, err := Fetch(ctx, dst, tc.tag, t.TempDir(), Offline(true))
			if err != nil || c.Commit != tc.commit {
				t.Fatalf("fetch from the written repository: %+v, %v", c, err)
			}
			if got, _ := os.ReadFile(filepath.Join(c.Dir, "intel-ucode", "06-55-04")); string(got) != tc.ucode {
				t.Errorf("file holds %q, want %q", got, tc.ucode)
			}
			if l, _ := os.Readlink(filepath.Join(c.Dir, "LICENSE")); l != "license" {
				t.Errorf("symlink %q", l)
			}
			// git itself reads it; the parent of the second commit stays out,
			// and the commit is marked shallow.
			out, err := exec.Command("git", "-C", dst, "rev-parse", tc.tag+"^{commit}").CombinedOutput()
			if err != nil || strings.TrimSpace(string(out)) != tc.commit {
				t.Errorf("git rev-parse in the written repository: %s, %v", out, err)
			}
			if tc.commit == second {
				if out, err := exec.Command("git", "-C", dst, "cat-file", "-e", first).CombinedOutput(); err == nil {
					t.Errorf("the parent commit %s is in the written repository: %s", first, out)
				}
				if shallow, _ := os.ReadFile(filepath.Join(dst, "shallow")); strings.TrimSpace(string(shallow)) != second {
					t.Errorf("shallow holds %q, want %s", shallow, second)
				}
			}
			if _, err := WriteRepo(ctx, repo, tc.tag, dst); err == nil {
				t.Error("WriteRepo over an existing directory: no error")
			}
		})
	}
	if _, err := WriteRepo(ctx, repo, "no-such-tag", filepath.Join(t.TempDir(), "x.git")); err == nil || !strings.Contains(err.Error(), "no-such-tag") {
		t.Errorf("missing tag: %v", err)
	}
}

// TestFetchRefusesChangedObjects: a local repository (a bundle's) whose
// object was replaced by another one fails the fetch, naming the object.
func TestFetchRefusesChangedObjects(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Fatal("git is missing (the test makes its repository with it)")
	}
	repo, first, _ := gitRepo(t)
	dst := filepath.Join(t.TempDir(), "ucode.git")
	if _, err := WriteRepo(context.Background(), repo, "light", dst); err != nil {
		t.Fatal(err)
	}
	blob := func(path string) string {
		out, err := exec.Command("git", "-C", repo, "rev-parse", first+":"+path).Output()
		if err != nil {
			t.Fatal(err)
		}
		h := strings.TrimSpace(string(out))
		return filepath.Join(dst, "objects", h[:2], h[2:])
	}
	// The microcode file's object now holds the license's bytes.
	other, err := os.ReadFile(blob("license"))
	if err != nil {
		t.Fatal(err)
	}
	target := blob("intel-ucode/06-55-04")
	os.Chmod(target, 0o644)
	if err := os.WriteFile(target, other, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = Fetch(context.Background(), dst, "light", t.TempDir(), Offline(true))
	if err == nil || !strings.Contains(err.Error(), "changed") {
		t.Errorf("fetch of a repository with a changed object: %v, want a refusal", err)
	}
	if _, err := WriteRepo(context.Background(), dst, "light", filepath.Join(t.TempDir(), "again.git")); err == nil || !strings.Contains(err.Error(), "changed") {
		t.Errorf("WriteRepo of a repository with a changed object: %v, want a refusal", err)
	}
	if _, err := WriteRepo(context.Background(), "https://127.0.0.1:1/ucode.git", "light", filepath.Join(t.TempDir(), "x.git"), Offline(true)); !errors.Is(err, ErrOffline) {
		t.Errorf("offline WriteRepo of a remote repository: %v, want ErrOffline", err)
	}
}

// TestFetchLocalCheckouts: a local repository is read whatever checkout
// it is, as git reads it: sparse, or a linked work tree; one git would
// read differently is refused, naming the extension.
func TestFetchLocalCheckouts(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Fatal("git is missing (the test makes its repository with it)")
	}
	git := func(t *testing.T, dir string, args ...string) {
		t.Helper()
		if out, err := exec.Command("git", append([]string{"-C", dir}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	for _, tc := range []struct {
		name    string
		setup   func(t *testing.T, repo string) string
		wantErr string
	}{
		{"sparse, cone", func(t *testing.T, repo string) string {
			git(t, repo, "sparse-checkout", "set", "intel-ucode")
			return repo
		}, ""},
		{"sparse, non-cone", func(t *testing.T, repo string) string {
			git(t, repo, "sparse-checkout", "set", "--no-cone", "/license")
			return repo
		}, ""},
		{"linked worktree", func(t *testing.T, repo string) string {
			wt := filepath.Join(t.TempDir(), "wt")
			git(t, repo, "worktree", "add", "-q", wt)
			return wt
		}, ""},
		{"partial clone", func(t *testing.T, repo string) string {
			git(t, repo, "config", "extensions.partialClone", "origin")
			return repo
		}, "extensions.partialClone"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			repo, _, second := gitRepo(t)
			c, err := Fetch(context.Background(), tc.setup(t, repo), "annotated", t.TempDir(), Offline(true))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Errorf("Fetch: %v, want an error naming %s", err, tc.wantErr)
				}
				return
			}
			if err != nil || c.Commit != second {
				t.Fatalf("Fetch: %+v, %v; want commit %s", c, err, second)
			}
			if got, _ := os.ReadFile(filepath.Join(c.Dir, "intel-ucode", "06-55-04")); string(got) != "v2" {
				t.Errorf("file holds %q", got)
			}
		})
	}
}
