// Package rmtree removes directory trees that a build or an extraction
// may have left with read-only directories.
package rmtree

import (
	"io/fs"
	"os"
	"path/filepath"
)

// RemoveAll removes dir like os.RemoveAll; where that fails (a directory
// without write permission keeps its children), it makes every directory
// writable by its owner and tries again.
func RemoveAll(dir string) error {
	if err := os.RemoveAll(dir); err == nil {
		return nil
	}
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			os.Chmod(p, 0o700)
		}
		return nil
	})
	return os.RemoveAll(dir)
}
