package gitrepo

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/go-git/go-billy/v5"
	"github.com/go-git/go-billy/v5/osfs"
	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing/cache"
	"github.com/go-git/go-git/v5/storage/filesystem"
	"github.com/go-git/go-git/v5/storage/filesystem/dotgit"
)

// Open opens the repository at path: a work tree holding .git (a folder,
// or a file naming the git dir, as `git worktree add` and submodules make)
// or, when path holds no .git, path itself as a bare repository. Nothing
// there is an error that errors.Is matches with git.ErrRepositoryNotExists.
func Open(path string) (*git.Repository, error) { return open(path, false) }

// Discover opens the repository whose work tree holds path, looking for
// .git in path and then in its parents, as git does. It finds no bare
// repository. Nothing found is an error that errors.Is matches with
// git.ErrRepositoryNotExists.
func Discover(path string) (*git.Repository, error) { return open(path, true) }

// open does what go-git's PlainOpenWithOptions does with
// EnableDotGitCommonDir, with a storage that reads worktreeConfig: go-git
// has no hook to swap in a storage after it has found the git dir.
func open(path string, walkUp bool) (*git.Repository, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("resolve %s: %w", path, err)
	}
	gitDir, workTree, err := find(abs, walkUp)
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(gitDir); errors.Is(err, fs.ErrNotExist) {
		return nil, git.ErrRepositoryNotExists
	} else if err != nil {
		return nil, fmt.Errorf("git dir: %w", err)
	}
	common, err := commonDir(gitDir)
	if err != nil {
		return nil, err
	}
	var dotFS billy.Filesystem = osfs.New(gitDir)
	if common != "" {
		dotFS = dotgit.NewRepositoryFilesystem(dotFS, osfs.New(common))
	}
	st := &storage{
		Storage: filesystem.NewStorage(dotFS, cache.NewObjectLRUDefault()),
		gitDir:  gitDir,
	}
	var wt billy.Filesystem
	if workTree != "" {
		wt = osfs.New(workTree)
	}
	return git.Open(st, wt)
}

// find returns the git dir for dir and the work tree it belongs to ("" for
// a bare repository).
func find(dir string, walkUp bool) (gitDir, workTree string, err error) {
	for p := dir; ; {
		dotGit := filepath.Join(p, git.GitDirName)
		fi, err := os.Stat(dotGit)
		switch {
		case err == nil && fi.IsDir():
			return dotGit, p, nil
		case err == nil:
			gitDir, err := readGitFile(dotGit)
			return gitDir, p, err
		// ENOTDIR: p is a file, whose folder is the next to try.
		case !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, syscall.ENOTDIR):
			return "", "", fmt.Errorf("find git dir: %w", err)
		}
		parent := filepath.Dir(p)
		if !walkUp {
			return dir, "", nil
		}
		if parent == p {
			return "", "", git.ErrRepositoryNotExists
		}
		p = parent
	}
}

// readGitFile reads a .git file, "gitdir: <path>", and returns the git dir
// it names; a relative one is relative to the folder holding the file.
func readGitFile(name string) (string, error) {
	data, err := os.ReadFile(name)
	if err != nil {
		return "", fmt.Errorf("read git file: %w", err)
	}
	line, _, _ := strings.Cut(string(data), "\n")
	dir, ok := strings.CutPrefix(line, "gitdir: ")
	if !ok {
		return "", fmt.Errorf("read git file %s: no gitdir line", name)
	}
	dir = strings.TrimSpace(dir)
	if !filepath.IsAbs(dir) {
		dir = filepath.Join(filepath.Dir(name), dir)
	}
	return dir, nil
}

// commonDir returns the common git dir named by gitDir/commondir (objects,
// references and config a linked work tree shares with the main one), or
// "" when there is none.
func commonDir(gitDir string) (string, error) {
	data, err := os.ReadFile(filepath.Join(gitDir, "commondir"))
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read commondir: %w", err)
	}
	dir := strings.TrimSpace(string(data))
	if dir == "" {
		return "", nil
	}
	if !filepath.IsAbs(dir) {
		dir = filepath.Join(gitDir, dir)
	}
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("common git dir %s: %w", dir, git.ErrRepositoryIncomplete)
	} else if err != nil {
		return "", fmt.Errorf("common git dir: %w", err)
	}
	return dir, nil
}
