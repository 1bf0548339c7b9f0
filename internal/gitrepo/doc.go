// Package gitrepo opens git repositories on disk with go-git, reading them
// as git does where go-git alone refuses them.
//
// `git sparse-checkout` and per-worktree settings turn on the repository
// extension worktreeConfig: git then reads $GIT_DIR/config.worktree on top
// of the common config. go-git refuses every extension but its no-ops, so
// on its own it cannot open a sparse checkout. This package opens the
// repository with a storage whose Config does what git does, and still
// refuses, by name, every other extension: those (objectFormat,
// partialClone, refStorage, ...) change how objects or references are read.
package gitrepo
