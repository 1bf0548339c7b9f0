//go:build !linux

package oci

import "errors"

// errExtractNotLinux is what Extract and ExtractLayer return on other systems:
// safe extraction needs openat2, O_PATH and the other *at syscalls of Linux.
var errExtractNotLinux = errors.New("rootfs extraction is only supported on Linux")

func runningAsRealRoot() bool { return false }

func newLayerApplier(string, *extractOptions, []byte) (layerApplier, error) {
	return nil, errExtractNotLinux
}
