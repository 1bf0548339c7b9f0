//go:build !linux

package oci

import (
	"errors"
	"io"
	"time"
)

// DiffOptions controls WriteDiffTar.
type DiffOptions struct {
	Epoch    time.Time
	MapOwner func(uid, gid int) (int, int)
}

// WriteDiffTar is only supported on Linux, where overlayfs upper dirs are.
func WriteDiffTar(w io.Writer, upper string, opts DiffOptions) error {
	return errors.New("overlayfs diffs are only supported on Linux")
}
