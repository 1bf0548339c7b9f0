//go:build !linux

package sbom

import (
	"errors"
	"fmt"
	"os"
)

// openInRoot is Linux-only: reading an untrusted rootfs safely needs
// O_PATH handles and a race-free in-root lookup.
func openInRoot(root, name string) (*os.File, int64, error) {
	return nil, 0, fmt.Errorf("read %s in %s: package databases can only be read on Linux: %w", name, root, errors.ErrUnsupported)
}
