// Package kernelgit opens a LinuxKit kernel directory on disk and answers,
// with go-git and without a git binary, the questions its series hash asks
// of git: what `git ls-tree` prints for a commit, and whether
// `git diff-index HEAD` sees local changes.
//
// It is the I/O half of package kernel, which stays pure: go-git brings
// network transports (net/http) with it, so it lives here and kernel only
// sees the kernel.Revision interface.
package kernelgit
