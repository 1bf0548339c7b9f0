package kernelgit

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/go-git/go-git/v5"

	"github.com/lkbuild/lkbuild/kernel"
)

// Options say which kernel directory to open and which commit to hash.
type Options struct {
	// KernelDir is the kernel directory. When empty it is the current
	// directory if that holds series folders (or a flat layout), else
	// ./kernel: what works from the top of a LinuxKit checkout and from
	// inside its kernel folder.
	KernelDir string
	// Commit is the commit whose tree is hashed, in any form go-git's
	// ResolveRevision takes ("HEAD", a branch, a hash). Empty means HEAD.
	// It is LinuxKit's HASH_COMMIT; as in its Makefile, the dirty check
	// compares the work tree with HEAD whatever Commit is.
	Commit string
}

// KernelDir is the kernel directory o names: o.KernelDir, else the
// current directory if it holds series folders (or a flat layout), else
// ./kernel.
func KernelDir(o Options) string {
	if o.KernelDir != "" {
		return o.KernelDir
	}
	if _, err := kernel.Detect(os.DirFS(".")); err == nil {
		return "."
	}
	return "kernel"
}

// Open reads the kernel directory and, when it lies in a git work tree,
// opens the repository. Outside git the checkout has no Rev, so it can be
// listed but has no hash.
func Open(o Options) (*kernel.Checkout, error) {
	dir := KernelDir(o)
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("kernel dir %s: %w", dir, err)
	}
	if fi, err := os.Stat(abs); err != nil {
		return nil, fmt.Errorf("kernel dir: %w", err)
	} else if !fi.IsDir() {
		return nil, fmt.Errorf("kernel dir %s: not a directory", dir)
	}
	d, err := kernel.Load(os.DirFS(abs), dir)
	if err != nil {
		return nil, err
	}
	co := &kernel.Checkout{Dir: d}
	// git finds its repository from the physical directory, whatever
	// symbolic link led there; go-git walks up the path it is given.
	real, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return nil, fmt.Errorf("kernel dir: %w", err)
	}
	repo, err := OpenRepo(real, o.Commit)
	if errors.Is(err, git.ErrRepositoryNotExists) {
		return co, nil
	}
	if err != nil {
		return nil, err
	}
	if co.Path, err = repo.Rel(real); err != nil {
		return nil, err
	}
	co.Rev = repo
	return co, nil
}

// Rel returns dir relative to the work tree root, slash-separated, "" for
// the root itself: the form kernel.Checkout.Path and git pathspecs take.
// Symbolic links are resolved on both sides first, as make's $(CURDIR) and
// git's own root are physical paths.
func (r *Repo) Rel(dir string) (string, error) {
	real, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return "", fmt.Errorf("resolve %s: %w", dir, err)
	}
	rel, err := filepath.Rel(r.root, real)
	if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return "", fmt.Errorf("%s is outside the work tree %s", dir, r.root)
	}
	if rel == "." {
		return "", nil
	}
	return filepath.ToSlash(rel), nil
}
