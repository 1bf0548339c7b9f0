package gitfetch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// WriteRepo writes tag ref of the repository at url as a new bare git
// repository at dst (which must not exist): the tag, the commit it names
// and that commit's tree, with the commit marked shallow. The commit keeps
// its id, so a build from dst records the commit a build from url does.
// It returns the commit.
func WriteRepo(ctx context.Context, url, ref, dst string) (string, error) {
	if _, err := os.Lstat(dst); err == nil {
		return "", fmt.Errorf("git repository %s: exists", dst)
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
	commit, err := copyTag(ctx, src, out, tag.Hash())
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

// copyTag copies the objects from h (annotated tags, then the commit)
// down to the commit's tree from src to dst, and returns the commit.
func copyTag(ctx context.Context, src, dst *git.Repository, h plumbing.Hash) (*object.Commit, error) {
	for range 10 {
		if err := copyObject(src, dst, h); err != nil {
			return nil, err
		}
		t, err := src.TagObject(h)
		if errors.Is(err, plumbing.ErrObjectNotFound) {
			break
		}
		if err != nil {
			return nil, err
		}
		h = t.Target
	}
	commit, err := src.CommitObject(h)
	if err != nil {
		return nil, err
	}
	if commit.NumParents() > 0 {
		if err := dst.Storer.SetShallow([]plumbing.Hash{commit.Hash}); err != nil {
			return nil, err
		}
	}
	tree, err := commit.Tree()
	if err != nil {
		return nil, err
	}
	if err := copyObject(src, dst, tree.Hash); err != nil {
		return nil, err
	}
	walker := object.NewTreeWalker(tree, true, nil)
	defer walker.Close()
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		_, e, err := walker.Next()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return commit, nil
			}
			return nil, err
		}
		if e.Mode.IsFile() || e.Mode == filemode.Dir {
			if err := copyObject(src, dst, e.Hash); err != nil {
				return nil, err
			}
		}
	}
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
