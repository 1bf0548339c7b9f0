package gitfetch

import (
	"context"
	"fmt"
	"os"

	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
)

// WriteRepo writes tag ref of the repository at url as a new bare git
// repository at dst (which must not exist): the tag, the commit it names
// and that commit's tree, with the commit marked shallow. The commit keeps
// its id, so a build from dst records the commit a build from url does.
// Every object is checked against its hash on the way. Offline, a remote
// repository is an error wrapping ErrOffline. It returns the commit.
func WriteRepo(ctx context.Context, url, ref, dst string, opts ...Option) (string, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	if _, err := os.Lstat(dst); err == nil {
		return "", fmt.Errorf("git repository %s: exists", dst)
	}
	if o.offline && needsNetwork(url) {
		return "", fmt.Errorf("tag %s of %s: a git repository of it needs the network: %w", ref, url, ErrOffline)
	}
	src, err := openRepo(ctx, url, ref)
	if err != nil {
		return "", fmt.Errorf("tag %s of %s: %w", ref, url, err)
	}
	tag, err := src.Tag(ref)
	if err != nil {
		return "", fmt.Errorf("tag %s of %s: %w", ref, url, err)
	}
	out, err := git.PlainInit(dst, true)
	if err != nil {
		return "", fmt.Errorf("git repository %s: %w", dst, err)
	}
	commit, err := walkTag(ctx, src, tag.Hash(), func(h plumbing.Hash) error {
		if err := verifyObject(src, h); err != nil {
			return err
		}
		return copyObject(src, out, h)
	})
	if err == nil && commit.NumParents() > 0 {
		err = out.Storer.SetShallow([]plumbing.Hash{commit.Hash})
	}
	if err != nil {
		os.RemoveAll(dst)
		return "", fmt.Errorf("tag %s of %s: %w", ref, url, err)
	}
	if err := out.Storer.SetReference(plumbing.NewHashReference(plumbing.NewTagReferenceName(ref), tag.Hash())); err != nil {
		os.RemoveAll(dst)
		return "", fmt.Errorf("git repository %s: %w", dst, err)
	}
	return commit.Hash.String(), nil
}

func copyObject(src, dst *git.Repository, h plumbing.Hash) error {
	o, err := src.Storer.EncodedObject(plumbing.AnyObject, h)
	if err != nil {
		return fmt.Errorf("object %s: %w", h, err)
	}
	if _, err := dst.Storer.SetEncodedObject(o); err != nil {
		return fmt.Errorf("object %s: %w", h, err)
	}
	return nil
}
