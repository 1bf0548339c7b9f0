// Package cachedir is the layout of lkbuild's cache directory
// ($XDG_CACHE_HOME/lkbuild, or --cache-dir): every subdirectory is named
// here and nowhere else, so a bundle or an offline mode has one place to
// plug in.
//
//	blobs/     image blobs by digest (an oci.Store)
//	rootfs/    unpacked builder rootfs trees, one per manifest digest
//	sources/   verified kernel tarballs and their extracted trees
//	git/       fetched git trees (the Intel microcode), by URL and tag
//	archives/  src/linux.tar.xz by its inputs
//	trees/     the object tree of each target's last build (objtree)
//	stats/     object counts of earlier builds, for progress totals
//	logs/      the log of each build, by tag
//	work/      scratch space of running builds (removed when they end)
//	locks/     what running builds use, for lkbuild cache prune
package cachedir

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/lkbuild/lkbuild/oci"
)

// Dir is a cache directory.
type Dir struct{ root string }

// New returns the cache rooted at root, made absolute. It creates nothing:
// each user of a subdirectory creates it when it first writes there.
func New(root string) (Dir, error) {
	if root == "" {
		return Dir{}, errors.New("cache directory: none given")
	}
	abs, err := filepath.Abs(root)
	if err != nil {
		return Dir{}, fmt.Errorf("cache directory: %w", err)
	}
	return Dir{root: abs}, nil
}

// Open returns the cache rooted at root and makes it private: the root
// (when Open creates it) and every subdirectory get mode 0700, and those
// that exist already and belong to us are set to it. As root, the cache
// holds unpacked rootfs trees with their setuid binaries and device
// owners: nothing in it may be reachable by other users, whatever the
// mode of the directory it sits in (--cache-dir in a shared place).
func Open(root string) (Dir, error) {
	d, err := New(root)
	if err != nil {
		return Dir{}, err
	}
	for _, p := range append([]string{d.root}, d.subdirs()...) {
		if err := private(p); err != nil {
			return Dir{}, fmt.Errorf("cache directory: %w", err)
		}
	}
	return d, nil
}

// private creates p with mode 0700, or sets an existing p of ours to it.
func private(p string) error {
	err := os.Mkdir(p, 0o700)
	if err == nil || !errors.Is(err, fs.ErrExist) {
		if errors.Is(err, fs.ErrNotExist) {
			if err = os.MkdirAll(filepath.Dir(p), 0o755); err == nil {
				err = os.Mkdir(p, 0o700)
			}
		}
		return err
	}
	fi, err := os.Lstat(p)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s: not a directory", p)
	}
	if fi.Mode().Perm() == 0o700 {
		return nil
	}
	if err := os.Chmod(p, 0o700); err != nil {
		return fmt.Errorf("make %s private: %w", p, err)
	}
	return nil
}

func (d Dir) subdirs() []string {
	return []string{d.BlobsDir(), d.Rootfs(), d.Sources(), d.Git(), d.Archives(), d.Trees(), d.Stats(), d.Logs(), d.Work(), d.Locks()}
}

// Root is the cache directory itself.
func (d Dir) Root() string { return d.root }

// IsZero reports whether d was never set.
func (d Dir) IsZero() bool { return d.root == "" }

// Blobs opens the blob store.
func (d Dir) Blobs() (*oci.Store, error) { return oci.OpenStore(d.BlobsDir()) }

// BlobsDir holds image blobs by digest.
func (d Dir) BlobsDir() string { return d.join("blobs") }

// Rootfs holds unpacked builder rootfs trees.
func (d Dir) Rootfs() string { return d.join("rootfs") }

// Sources holds verified kernel sources.
func (d Dir) Sources() string { return d.join("sources") }

// Git holds fetched git trees.
func (d Dir) Git() string { return d.join("git") }

// Archives holds source archives (src/linux.tar.xz) by their inputs.
func (d Dir) Archives() string { return d.join("archives") }

// Trees holds the kept object trees of builds, one per target
// (objtree.Slot).
func (d Dir) Trees() string { return d.join("trees") }

// Stats holds object counts of earlier builds.
func (d Dir) Stats() string { return d.join("stats") }

// Logs holds build logs.
func (d Dir) Logs() string { return d.join("logs") }

// Locks holds the lock files of entries builds use (Use).
func (d Dir) Locks() string { return d.join("locks") }

// Work is the scratch space of running builds.
func (d Dir) Work() string { return d.join("work") }

func (d Dir) join(name string) string { return filepath.Join(d.root, name) }
