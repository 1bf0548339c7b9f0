package kernelgit

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// treeFile is a file of HEAD's tree: its canonical mode and object.
type treeFile struct {
	mode filemode.FileMode
	hash plumbing.Hash
}

// Dirty reports whether LinuxKit's check,
//
//	git update-index -q --refresh && git diff-index --quiet HEAD -- <dir>
//
// finds a change under dir (relative to the root, "" for all): a file
// staged or committed differently, added to or removed from the index, or
// modified or deleted in the work tree. Untracked files do not count, as
// they are in no index entry.
//
// It compares contents, not stat data: after --refresh git does the same
// (an entry whose stat changed but content did not is refreshed, not
// reported). Entries marked skip-worktree, the files a sparse checkout
// leaves out, are taken from the index, as git does; but in a sparse
// checkout (core.sparseCheckout) such a file that is there in the work
// tree all the same is compared like any other, as git (2.36 on) does
// unless sparse.expectFilesOutsideOfPatterns is set. Submodules compare
// by the commit the index records. A sparse index (index.sparse), which
// holds folders in place of the files under them, is an error. Two things
// git does are not done: clean filters (.gitattributes, core.autocrlf) are
// not applied to work tree files, and entries marked assume-unchanged
// (`git update-index --assume-unchanged`) are compared like any other,
// because go-git does not read that flag: such a file, if changed, makes
// the tree dirty here and not for git.
func (r *Repo) Dirty(dir string) (bool, error) {
	ref, err := r.repo.Head()
	if err != nil {
		return false, fmt.Errorf("read HEAD: %w", err)
	}
	commit, err := r.repo.CommitObject(ref.Hash())
	if err != nil {
		return false, fmt.Errorf("read HEAD commit: %w", err)
	}
	tree, err := commit.Tree()
	if err != nil {
		return false, fmt.Errorf("read HEAD tree: %w", err)
	}
	head := map[string]treeFile{}
	if err := r.collect(head, tree, "", dir); err != nil {
		return false, err
	}
	idx, err := r.repo.Storer.Index()
	if err != nil && r.sparseIndex {
		return false, fmt.Errorf("read sparse index (index.sparse), which is not supported "+
			"(`git sparse-checkout init --no-sparse-index` turns it off): %w", err)
	}
	if err != nil {
		return false, fmt.Errorf("read index: %w", err)
	}
	for _, e := range idx.Entries {
		if !under(e.Name, dir) {
			continue
		}
		if e.Stage != 0 {
			return true, nil // unmerged
		}
		h, ok := head[e.Name]
		if !ok {
			return true, nil // added
		}
		delete(head, e.Name)
		mode := canonMode(e.Mode)
		if mode != h.mode || e.Hash != h.hash {
			return true, nil // staged
		}
		if mode == filemode.Submodule {
			continue
		}
		if e.SkipWorktree {
			present, err := r.presentOutsideSparse(e.Name)
			if err != nil {
				return false, err
			}
			if !present {
				continue
			}
		}
		changed, err := r.worktreeDiffers(e.Name, mode, h)
		if err != nil || changed {
			return changed, err
		}
	}
	// What HEAD has and the index lacks was removed with `git rm --cached`.
	return len(head) > 0, nil
}

// presentOutsideSparse reports whether git compares the work tree file of
// a skip-worktree entry: in a sparse checkout, git clears the bit of an
// entry whose path exists (clear_skip_worktree_from_present_files), so a
// file written where the sparse patterns leave none is checked.
func (r *Repo) presentOutsideSparse(name string) (bool, error) {
	if !r.sparseCheckout || r.expectOutside {
		return false, nil
	}
	p := filepath.Join(r.root, filepath.FromSlash(name))
	_, err := os.Lstat(p)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("stat %s: %w", p, err)
	}
	return true, nil
}

// collect gathers the files of tree under dir, by path from the root.
func (r *Repo) collect(out map[string]treeFile, tree *object.Tree, prefix, dir string) error {
	for _, e := range tree.Entries {
		full := prefix + e.Name
		mode := canonMode(e.Mode)
		if !under(full, dir) && !leadsToAny(full, []string{dir}) {
			continue
		}
		if mode != filemode.Dir {
			if under(full, dir) {
				out[full] = treeFile{mode: mode, hash: e.Hash}
			}
			continue
		}
		sub, err := r.repo.TreeObject(e.Hash)
		if err != nil {
			return fmt.Errorf("read tree %s: %w", full, err)
		}
		if err := r.collect(out, sub, full+"/", dir); err != nil {
			return err
		}
	}
	return nil
}

// worktreeDiffers reports whether the work tree file name differs from
// the committed file h, in content or in mode. indexMode is the index's
// mode, which stands when core.fileMode is off.
func (r *Repo) worktreeDiffers(name string, indexMode filemode.FileMode, h treeFile) (bool, error) {
	p := filepath.Join(r.root, filepath.FromSlash(name))
	fi, err := os.Lstat(p)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
		return true, nil // deleted, or a folder on its path replaced by a file
	}
	if err != nil {
		return false, fmt.Errorf("stat %s: %w", p, err)
	}
	var mode filemode.FileMode
	var size int64
	var content io.Reader
	switch {
	case fi.Mode()&fs.ModeSymlink != 0:
		target, err := os.Readlink(p)
		if err != nil {
			return false, fmt.Errorf("read link %s: %w", p, err)
		}
		mode, size, content = filemode.Symlink, int64(len(target)), strings.NewReader(target)
	case fi.Mode().IsRegular():
		switch {
		case !r.fileMode && (indexMode == filemode.Regular || indexMode == filemode.Executable):
			mode = indexMode
		case fi.Mode()&0o100 != 0:
			mode = filemode.Executable
		default:
			mode = filemode.Regular
		}
		f, err := os.Open(p)
		if err != nil {
			return false, fmt.Errorf("open %s: %w", p, err)
		}
		defer f.Close()
		size, content = fi.Size(), f
	default:
		return true, nil // a folder or special file where a file was
	}
	if mode != h.mode {
		return true, nil
	}
	hasher := plumbing.NewHasher(plumbing.BlobObject, size)
	n, err := io.Copy(hasher, content)
	if err != nil {
		return false, fmt.Errorf("read %s: %w", p, err)
	}
	if n != size {
		return true, nil // changing under us: not what was committed
	}
	return hasher.Sum() != h.hash, nil
}
