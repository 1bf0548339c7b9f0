package kernel

import (
	"bytes"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"path"
	"strconv"
)

// HashObject returns what `git hash-object --stdin` prints for data, minus
// the newline: the SHA-1 of the blob header "blob <len>\x00" and data.
func HashObject(data []byte) string {
	h := sha1.New()
	h.Write([]byte("blob " + strconv.Itoa(len(data)) + "\x00"))
	h.Write(data)
	return hex.EncodeToString(h.Sum(nil))
}

// SharedHash is LinuxKit's hash of the files every series shares. lsTree is
// the output of
//
//	git ls-tree -r --full-tree HEAD -- K/Makefile K/common
//
// byte for byte (K the kernel directory). The Makefile pipes it straight
// into `git hash-object --stdin`, so no newline is dropped: make's $(shell)
// only trims the hash that comes out.
func SharedHash(lsTree []byte) string { return HashObject(lsTree) }

// SeriesHash is LinuxKit's hash of one series, given the shared hash and
// the output of
//
//	git ls-tree --full-tree HEAD -- K/<series>
//
// (not recursive: one line naming the series folder's tree). The Makefile
// hashes `(echo $(SHARED_HASH); git ls-tree ...)`, so the shared hash and a
// newline come first.
func SeriesHash(shared string, seriesLsTree []byte) string {
	var b bytes.Buffer
	b.WriteString(shared)
	b.WriteByte('\n')
	b.Write(seriesLsTree)
	return HashObject(b.Bytes())
}

// DirtySuffix is appended to the hash when tracked files under the kernel
// directory differ from HEAD.
const DirtySuffix = "-dirty"

// Revision is what the hash needs from git. Paths are slash-separated and
// relative to the root of the repository; "" is the root itself.
// internal/kernelgit implements it with go-git.
type Revision interface {
	// LsTree returns what `git ls-tree [-r] --full-tree <commit> -- paths`
	// prints, byte for byte.
	LsTree(recursive bool, paths ...string) ([]byte, error)
	// Dirty reports whether `git update-index -q --refresh && git
	// diff-index --quiet HEAD -- path` finds a difference: a tracked file
	// under path that is modified, deleted, staged or added to the index.
	// Untracked files do not count.
	Dirty(path string) (bool, error)
}

// Checkout is a kernel directory inside a git work tree: what
// `make show-tag` and `make list` run on.
type Checkout struct {
	Dir *Dir
	// Path is the kernel directory relative to the repository root,
	// slash-separated; "" when the kernel directory is the root.
	Path string
	// Rev answers the git questions; nil when the directory is not in a
	// git work tree.
	Rev Revision
}

func (c *Checkout) repoPath(rel string) string { return path.Join(c.Path, rel) }

func (c *Checkout) rev() (Revision, error) {
	if c.Rev == nil {
		return nil, fmt.Errorf("%s: the series hash comes from git history: %w", c.Dir.file("."), ErrNoGit)
	}
	return c.Rev, nil
}

// SharedHash computes the hash of Makefile and common/ as `make list`
// prints it ("Shared hash:"). It has no -dirty suffix, as in make.
func (c *Checkout) SharedHash() (string, error) {
	rev, err := c.rev()
	if err != nil {
		return "", err
	}
	out, err := rev.LsTree(true, c.repoPath("Makefile"), c.repoPath("common"))
	if err != nil {
		return "", fmt.Errorf("list shared files: %w", err)
	}
	return SharedHash(out), nil
}

// Hash computes the hash LinuxKit tags the images of series s with,
// including the -dirty suffix when tracked files under the kernel
// directory are modified.
//
// In the series layout this is SeriesHash of s's base series: the Makefile
// derives the folder from the version (6.6.71 -> 6.6.x), so a variant
// such as 5.11.x-rt is tagged with 5.11.x's hash and its own folder does
// not count. In the flat layout it is the tree hash of the whole kernel
// directory, which is what the Makefile of that time used.
func (c *Checkout) Hash(s *Series) (string, error) {
	rev, err := c.rev()
	if err != nil {
		return "", err
	}
	var hash string
	switch c.Dir.Layout {
	case LayoutFlat:
		if hash, err = c.treeHash(rev); err != nil {
			return "", err
		}
	default:
		shared, err := c.SharedHash()
		if err != nil {
			return "", err
		}
		out, err := rev.LsTree(false, c.repoPath(s.Base))
		if err != nil {
			return "", fmt.Errorf("list series %s: %w", s.Base, err)
		}
		if len(out) == 0 {
			// make would go on and hash the shared files alone, giving every
			// uncommitted series the same tag, and no -dirty for an
			// untracked folder. That tag would name the wrong image.
			return "", fmt.Errorf("%s: not in the commit being hashed: commit the series folder first", c.Dir.file(s.Base))
		}
		hash = SeriesHash(shared, out)
	}
	dirty, err := rev.Dirty(c.Path)
	if err != nil {
		return "", fmt.Errorf("check for local changes: %w", err)
	}
	if dirty {
		hash += DirtySuffix
	}
	return hash, nil
}

// treeHash is the flat-era hash: the third field of
// `git ls-tree --full-tree HEAD -- K`, the tree object of K.
func (c *Checkout) treeHash(rev Revision) (string, error) {
	if c.Path == "" {
		return "", errors.New("a flat kernel directory at the root of its repository has no tree hash of its own")
	}
	out, err := rev.LsTree(false, c.Path)
	if err != nil {
		return "", fmt.Errorf("list %s: %w", c.Path, err)
	}
	fields := bytes.Fields(out)
	if len(fields) < 4 || string(fields[1]) != "tree" {
		return "", fmt.Errorf("%s is not a directory in the commit being hashed", c.Path)
	}
	return string(fields[2]), nil
}
