//go:build !linux

package kernelsrc

import (
	"context"
	"errors"
)

// lockFile is only implemented on Linux, like the extractor Fetch uses.
func lockFile(ctx context.Context, path string, waiting func()) (func(), error) {
	return nil, errors.New("fetching kernel sources is only supported on Linux")
}
