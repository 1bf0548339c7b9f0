//go:build !linux

package toolchain

import "errors"

func lockFile(path string) (func(), error) {
	return nil, errors.New("file locks are only supported on Linux")
}
