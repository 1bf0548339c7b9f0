// Package gitfetch clones one tag of a git repository into a cache, for
// inputs a hermetic build must have on disk before its sandbox starts (the
// Intel microcode of x86_64 kernels). It uses go-git: no git binary.
package gitfetch

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"

	"github.com/lkbuild/lkbuild/internal/rmtree"
)

// Checkout is a cached clone.
type Checkout struct {
	// Dir is the work tree, checked out at the tag. Treat it as read-only.
	Dir string
	// Commit is the commit the tag points to.
	Commit string
	// Cached is true when an earlier call made it.
	Cached bool
}

// Clone returns a checkout of tag ref of the repository at url (any URL
// go-git takes, or a local path) under cacheDir, cloning it the first time.
// A checkout only appears under its final name when complete.
func Clone(ctx context.Context, url, ref, cacheDir string) (Checkout, error) {
	if url == "" || ref == "" {
		return Checkout{}, errors.New("clone: no repository or tag")
	}
	sum := sha256.Sum256([]byte(url + "\n" + ref))
	dir := filepath.Join(cacheDir, hex.EncodeToString(sum[:12]))
	if c, err := open(dir); err == nil {
		c.Cached = true
		return c, nil
	}
	if err := os.MkdirAll(cacheDir, 0o755); err != nil {
		return Checkout{}, fmt.Errorf("clone %s: %w", url, err)
	}
	tmp, err := os.MkdirTemp(cacheDir, ".tmp-")
	if err != nil {
		return Checkout{}, fmt.Errorf("clone %s: %w", url, err)
	}
	defer rmtree.RemoveAll(tmp)
	src := url
	if !strings.Contains(url, "://") {
		// A local mirror: go-git wants an absolute path.
		if src, err = filepath.Abs(url); err != nil {
			return Checkout{}, fmt.Errorf("clone %s: %w", url, err)
		}
	}
	opts := &git.CloneOptions{
		URL:           src,
		ReferenceName: plumbing.NewTagReferenceName(ref),
		SingleBranch:  true,
		Depth:         1,
		Tags:          git.NoTags,
	}
	if _, err := git.PlainCloneContext(ctx, tmp, false, opts); err != nil {
		// Local repositories cannot always serve shallow clones.
		rmtree.RemoveAll(tmp)
		if err := os.Mkdir(tmp, 0o755); err != nil {
			return Checkout{}, fmt.Errorf("clone %s: %w", url, err)
		}
		opts.Depth = 0
		if _, err2 := git.PlainCloneContext(ctx, tmp, false, opts); err2 != nil {
			return Checkout{}, fmt.Errorf("clone tag %s of %s: %w", ref, url, err2)
		}
	}
	if err := os.Rename(tmp, dir); err != nil {
		if c, err := open(dir); err == nil { // another process won
			c.Cached = true
			return c, nil
		}
		return Checkout{}, fmt.Errorf("clone %s: %w", url, err)
	}
	return open(dir)
}

func open(dir string) (Checkout, error) {
	r, err := git.PlainOpen(dir)
	if err != nil {
		return Checkout{}, err
	}
	head, err := r.Head()
	if err != nil {
		return Checkout{}, err
	}
	return Checkout{Dir: dir, Commit: head.Hash().String()}, nil
}
