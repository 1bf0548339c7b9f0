//go:build !linux

package objtree

import (
	"errors"
	"io/fs"
	"time"
)

var errUnsupported = errors.New("object trees are only supported on Linux")

func opaque(string) bool                       { return false }
func isWhiteout(fs.FileInfo) bool              { return false }
func setMtime(string, string, time.Time) error { return errUnsupported }
func copyUp(string, string, string) error      { return errUnsupported }
