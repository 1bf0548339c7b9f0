package sbom

import (
	"fmt"
	"os"

	pathrs "github.com/cyphar/filepath-securejoin/pathrs-lite"
	"golang.org/x/sys/unix"
)

// openInRoot opens the regular file at name inside root for reading and
// returns it with its size. Every symlink on the way is resolved as if
// root were "/" (openat2 RESOLVE_IN_ROOT, or pathrs-lite's checked walk on
// older kernels), so the rootfs of an untrusted image cannot point us at a
// host file. The lookup yields an O_PATH handle, which opens nothing: only
// once fstat on it shows a regular file is it reopened for reading, so a
// FIFO cannot block us and a device is never opened. An error for a path
// that does not exist in the root satisfies errors.Is(err, fs.ErrNotExist).
func openInRoot(root, name string) (*os.File, int64, error) {
	h, err := pathrs.OpenInRoot(root, name)
	if err != nil {
		return nil, 0, fmt.Errorf("open %s in %s: %w", name, root, err)
	}
	defer h.Close()
	fi, err := h.Stat()
	if err != nil {
		return nil, 0, err
	}
	if !fi.Mode().IsRegular() {
		return nil, 0, fmt.Errorf("open %s in %s: %s: %w", name, root, fi.Mode().Type(), ErrNotRegular)
	}
	// O_NONBLOCK is belt and braces: the handle is the regular file we
	// just checked, and the reopen goes to that inode, not to the path.
	f, err := pathrs.Reopen(h, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC)
	if err != nil {
		return nil, 0, fmt.Errorf("open %s in %s: %w", name, root, err)
	}
	return f, fi.Size(), nil
}
