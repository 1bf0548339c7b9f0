// Package gitfetch fetches the files of one tag of a git repository into a
// cache, for inputs a hermetic build must have on disk before its sandbox
// starts (the Intel microcode of x86_64 kernels). It uses go-git in process:
// no git binary, so no safe.directory or ownership rules of the host's git
// get in the way of a rootless user reading a shared mirror.
package gitfetch

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/storage/memory"

	"github.com/lkbuild/lkbuild/internal/gitrepo"
	"github.com/lkbuild/lkbuild/internal/rmtree"
)

// Checkout is the tree of a tag, in the cache.
type Checkout struct {
	// Dir holds the tag's files (no .git). Treat it as read-only.
	Dir string
	// Commit is the commit the tag points to.
	Commit string
	// Cached is true when an earlier call fetched it.
	Cached bool
}

// ErrOffline is returned by Fetch with Offline for a remote repository
// whose tag is not in the cache.
var ErrOffline = errors.New("offline")

// Option changes how Fetch works.
type Option func(*options)

type options struct{ offline bool }

// Offline forbids the network: a remote repository's tag must already be
// in the cache; a local repository is read as always.
func Offline(offline bool) Option { return func(o *options) { o.offline = offline } }

// Fetch returns the files of tag ref of the repository at url under
// cacheDir, fetching them the first time. url is anything go-git clones
// (https://...) or the path of a local repository (a mirror on an
// air-gapped host), which is read directly. A checkout only appears under
// its final name when complete.
func Fetch(ctx context.Context, url, ref, cacheDir string, opts ...Option) (Checkout, error) {
	if url == "" || ref == "" {
		return Checkout{}, errors.New("git fetch: no repository or tag")
	}
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	// A remote tag's checkout is kept by URL and tag: asking the remote
	// what the tag names would cost the request the cache saves. A local
	// repository is read anyway, and its tag can move (another bundle in
	// the same place): its checkout is kept by commit too.
	var repo *git.Repository
	var tag *plumbing.Reference
	key := url
	if !needsNetwork(url) {
		var err error
		if repo, tag, err = openTag(ctx, url, ref); err != nil {
			return Checkout{}, err
		}
		key += "@" + tag.Hash().String()
	}
	dir := checkoutDir(cacheDir, key, ref)
	if c, err := open(dir); err == nil {
		c.Cached = true
		return c, nil
	}
	if repo == nil {
		if o.offline {
			return Checkout{}, fmt.Errorf("tag %s of %s is not in the cache and the network is off: %w", ref, url, ErrOffline)
		}
		var err error
		if repo, tag, err = openTag(ctx, url, ref); err != nil {
			return Checkout{}, err
		}
	}
	// go-git does not hash what it reads: a changed object in a local
	// repository (a bundle's) would go into the build unnoticed.
	commit, err := walkTag(ctx, repo, tag.Hash(), func(h plumbing.Hash) error { return verifyObject(repo, h) })
	if err != nil {
		return Checkout{}, fmt.Errorf("tag %s of %s: %w", ref, url, err)
	}
	if err := os.MkdirAll(cacheDir, 0o755); err != nil {
		return Checkout{}, fmt.Errorf("git cache: %w", err)
	}
	tmp, err := os.MkdirTemp(cacheDir, ".tmp-")
	if err != nil {
		return Checkout{}, fmt.Errorf("git cache: %w", err)
	}
	defer rmtree.RemoveAll(tmp)
	if err := writeTree(ctx, commit, filepath.Join(tmp, "tree")); err != nil {
		return Checkout{}, fmt.Errorf("tag %s of %s: %w", ref, url, err)
	}
	if err := os.WriteFile(filepath.Join(tmp, "commit"), []byte(commit.Hash.String()+"\n"), 0o644); err != nil {
		return Checkout{}, fmt.Errorf("git cache: %w", err)
	}
	if err := os.Rename(tmp, dir); err != nil {
		if c, err := open(dir); err == nil { // another process won
			c.Cached = true
			return c, nil
		}
		return Checkout{}, fmt.Errorf("git cache: %w", err)
	}
	return open(dir)
}

// openRepo opens a local repository in place, or clones a remote one into
// memory: only the tag's history is fetched.
func openRepo(ctx context.Context, url, ref string) (*git.Repository, error) {
	if !strings.Contains(url, "://") {
		// As git reads it: a linked work tree or a sparse checkout opens.
		return gitrepo.Open(url)
	}
	return git.CloneContext(ctx, memory.NewStorage(), nil, &git.CloneOptions{
		URL:           url,
		ReferenceName: plumbing.NewTagReferenceName(ref),
		SingleBranch:  true,
		Depth:         1,
		Tags:          git.NoTags,
		NoCheckout:    true,
	})
}

// checkoutDir is where the checkout of tag ref of url is kept.
func checkoutDir(cacheDir, url, ref string) string {
	sum := sha256.Sum256([]byte(url + "\n" + ref))
	return filepath.Join(cacheDir, hex.EncodeToString(sum[:12]))
}

// needsNetwork reports whether cloning url uses the network: any URL but
// a file:// one; a local path is opened in place.
func needsNetwork(url string) bool {
	return strings.Contains(url, "://") && !strings.HasPrefix(url, "file://")
}

// openTag opens the repository at url and finds tag ref in it.
func openTag(ctx context.Context, url, ref string) (*git.Repository, *plumbing.Reference, error) {
	repo, err := openRepo(ctx, url, ref)
	if err != nil {
		return nil, nil, fmt.Errorf("tag %s of %s: %w", ref, url, err)
	}
	tag, err := repo.Tag(ref)
	if err != nil {
		return nil, nil, fmt.Errorf("tag %s of %s: %w", ref, url, err)
	}
	return repo, tag, nil
}

// walkTag calls visit for every object from h down to the files of the
// commit it names: annotated tags, the commit, its trees and blobs (not
// its parents), and returns the commit.
func walkTag(ctx context.Context, repo *git.Repository, h plumbing.Hash, visit func(plumbing.Hash) error) (*object.Commit, error) {
	for i := 0; ; i++ {
		if i == 10 {
			return nil, errors.New("tag chain too long")
		}
		if err := visit(h); err != nil {
			return nil, err
		}
		t, err := repo.TagObject(h)
		if errors.Is(err, plumbing.ErrObjectNotFound) {
			break
		}
		if err != nil {
			return nil, err
		}
		h = t.Target
	}
	commit, err := repo.CommitObject(h)
	if err != nil {
		return nil, err
	}
	if err := visit(commit.TreeHash); err != nil {
		return nil, err
	}
	tree, err := commit.Tree()
	if err != nil {
		return nil, err
	}
	walker := object.NewTreeWalker(tree, true, nil)
	defer walker.Close()
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		_, e, err := walker.Next()
		if errors.Is(err, io.EOF) {
			return commit, nil
		}
		if err != nil {
			return nil, err
		}
		if e.Mode != filemode.Submodule {
			if err := visit(e.Hash); err != nil {
				return nil, err
			}
		}
	}
}

// verifyObject checks that the object stored as h hashes to h.
func verifyObject(repo *git.Repository, h plumbing.Hash) error {
	o, err := repo.Storer.EncodedObject(plumbing.AnyObject, h)
	if err != nil {
		return fmt.Errorf("object %s: %w", h, err)
	}
	r, err := o.Reader()
	if err != nil {
		return fmt.Errorf("object %s: %w", h, err)
	}
	defer r.Close()
	hasher := plumbing.NewHasher(o.Type(), o.Size())
	if _, err := io.Copy(hasher, r); err != nil {
		return fmt.Errorf("object %s: %w", h, err)
	}
	if got := hasher.Sum(); got != h {
		return fmt.Errorf("object %s: its content hashes to %s: changed", h, got)
	}
	return nil
}

// writeTree writes the files of commit under dir: regular files with their
// executable bit, symlinks, no submodules.
func writeTree(ctx context.Context, commit *object.Commit, dir string) error {
	tree, err := commit.Tree()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	return tree.Files().ForEach(func(f *object.File) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		if !filepath.IsLocal(f.Name) {
			return fmt.Errorf("tree entry %q leaves the tree", f.Name)
		}
		p := filepath.Join(dir, filepath.FromSlash(f.Name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		r, err := f.Reader()
		if err != nil {
			return err
		}
		defer r.Close()
		if f.Mode == filemode.Symlink {
			target, err := io.ReadAll(r)
			if err != nil {
				return err
			}
			return os.Symlink(string(target), p)
		}
		mode := os.FileMode(0o644)
		if f.Mode == filemode.Executable {
			mode = 0o755
		}
		w, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
		if err != nil {
			return err
		}
		_, err = io.Copy(w, r)
		if cerr := w.Close(); err == nil {
			err = cerr
		}
		return err
	})
}

func open(dir string) (Checkout, error) {
	data, err := os.ReadFile(filepath.Join(dir, "commit"))
	if err != nil {
		return Checkout{}, err
	}
	return Checkout{Dir: filepath.Join(dir, "tree"), Commit: strings.TrimSpace(string(data))}, nil
}
