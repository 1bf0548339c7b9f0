package builder

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/klauspost/compress/gzip"

	"github.com/lkbuild/lkbuild/internal/rmtree"
	"github.com/lkbuild/lkbuild/oci"
)

// rootfsFixtures maps a fixture's environment variable (the path of a
// rootfs.tar.gz made by scripts/fixtures) to the tree TestMain unpacked.
type rootfsFixtures map[string]string

var fixtures = rootfsFixtures{}

// TestMain doubles as the sandbox init (Run re-executes the test binary),
// and unpacks the rootfs fixtures once, as the user running the tests, so
// that rootless overlayfs accepts them as lower layers.
func TestMain(m *testing.M) {
	MaybeInit(os.Args)
	if child := os.Getenv(childTestVar); child != "" {
		os.Exit(runChildTest(child))
	}
	tmp, err := os.MkdirTemp("", "lkbuild-builder-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	for _, v := range []string{"LKBUILD_TEST_ROOTFS_TGZ", "LKBUILD_TEST_ROOTFS_ARM64_TGZ"} {
		if tgz := os.Getenv(v); tgz != "" {
			dir := filepath.Join(tmp, v)
			if err := unpack(tgz, dir); err != nil {
				fmt.Fprintf(os.Stderr, "unpack %s=%s: %v\n", v, tgz, err)
				os.Exit(1)
			}
			fixtures[v] = dir
		}
	}
	code := m.Run()
	rmtree.RemoveAll(tmp)
	os.Exit(code)
}

func unpack(tgz, dir string) error {
	f, err := os.Open(tgz)
	if err != nil {
		return err
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return err
	}
	_, err = oci.ExtractLayer(context.Background(), io.Reader(zr), dir)
	return err
}
