package kernelsrc

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
)

// cache is the sources part of lkbuild's cache (see the package
// documentation for its layout).
type cache struct{ dir string }

// openCache creates the cache's folders if missing.
func openCache(dir string) (cache, error) {
	c := cache{dir: dir}
	for _, d := range []string{"sha256", "trees", "tmp", "locks", "sums", "signatures", "archives"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return cache{}, fmt.Errorf("source cache: %w", err)
		}
	}
	return c, nil
}

func (c cache) tarball(sum string) string { return filepath.Join(c.dir, "sha256", sum) }
func (c cache) tree(sum string) string    { return filepath.Join(c.dir, "trees", sum) }
func (c cache) lock(sum string) string    { return filepath.Join(c.dir, "locks", sum+".lock") }
func (c cache) tmp() string               { return filepath.Join(c.dir, "tmp") }

// sums is where the copy of a mirror's signed sha256sums.asc is kept: its
// folder and name joined (v6.x-sha256sums.asc), whichever mirror it came
// from (they all serve kernel.org's signed file).
func (c cache) sums(loc string) string {
	return filepath.Join(c.dir, "sums", path.Base(path.Dir(filepath.ToSlash(loc)))+"-"+path.Base(filepath.ToSlash(loc)))
}

// signature is where the verified .tar.sign of the tarball sum is kept,
// for a bundle's mirror tree (WriteMirror).
func (c cache) signature(sum string) string {
	return filepath.Join(c.dir, "signatures", sum+".tar.sign")
}

// keep writes data, a verified file, to file for later fetches. A failure
// costs them a download, so it is not an error.
func (c cache) keep(file string, data []byte) {
	tmp, err := os.CreateTemp(c.tmp(), "keep-*")
	if err != nil {
		return
	}
	_, werr := tmp.Write(data)
	if cerr := tmp.Close(); werr != nil || cerr != nil || os.Rename(tmp.Name(), file) != nil {
		os.Remove(tmp.Name())
	}
}

// findTree returns the source directory of the cached tree for sum, if
// there is one. A tree is complete once it exists: it is renamed into
// place whole.
func (c cache) findTree(sum string) (string, bool, error) {
	root := c.tree(sum)
	if _, err := os.Stat(root); errors.Is(err, fs.ErrNotExist) {
		return "", false, nil
	} else if err != nil {
		return "", false, fmt.Errorf("source cache: %w", err)
	}
	top, err := topDir(root)
	if err != nil {
		return "", false, err
	}
	return filepath.Join(root, top), true, nil
}

// removeTemps removes what an earlier, killed fetch of sum left in tmp/.
// The caller holds sum's lock, so no live fetch owns them.
func (c cache) removeTemps(sum string) error {
	old, err := filepath.Glob(filepath.Join(c.tmp(), sum+".*"))
	if err != nil {
		return err
	}
	for _, p := range old {
		if err := os.RemoveAll(p); err != nil {
			return fmt.Errorf("source cache: remove a leftover: %w", err)
		}
	}
	return nil
}

// topDir returns the name of the only entry of root when it is a
// directory (linux-6.6.71 for kernel.org's tarballs, linux-source-6.12
// for Debian's), else "" for root itself.
func topDir(root string) (string, error) {
	entries, err := os.ReadDir(root)
	if err != nil {
		return "", fmt.Errorf("source cache: %w", err)
	}
	if len(entries) == 1 && entries[0].IsDir() {
		return entries[0].Name(), nil
	}
	return "", nil
}
