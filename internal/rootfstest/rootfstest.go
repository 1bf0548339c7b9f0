// Package rootfstest gives tests the rootfs fixtures of scripts/fixtures:
// Unpack unpacks each named rootfs.tar.gz once per test binary (as the
// user running the tests, so rootless overlayfs takes the trees as lower
// layers), Need hands a test its tree, and SmallTree copies the few
// directories a shell needs.
package rootfstest

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"

	"github.com/lkbuild/lkbuild/internal/rmtree"
	"github.com/lkbuild/lkbuild/internal/testenv"
	"github.com/lkbuild/lkbuild/oci"
)

// The environment variables naming the fixtures (paths of rootfs.tar.gz).
const (
	AMD64 = "LKBUILD_TEST_ROOTFS_TGZ"
	ARM64 = "LKBUILD_TEST_ROOTFS_ARM64_TGZ"
)

// Trees maps a fixture's variable to the directory it was unpacked in.
type Trees map[string]string

// Unpack unpacks the fixtures that are set among vars under a new
// temporary directory, which the returned function removes.
func Unpack(vars ...string) (Trees, func(), error) {
	tmp, err := os.MkdirTemp("", "lkbuild-rootfs-test-")
	if err != nil {
		return nil, nil, err
	}
	trees := Trees{}
	for _, v := range vars {
		tgz := os.Getenv(v)
		if tgz == "" {
			continue
		}
		dir := filepath.Join(tmp, v)
		if err := unpack(tgz, dir); err != nil {
			os.RemoveAll(tmp)
			return nil, nil, fmt.Errorf("unpack %s=%s: %w", v, tgz, err)
		}
		trees[v] = dir
	}
	return trees, func() { rmtree.RemoveAll(tmp) }, nil
}

// Need returns the tree of fixture v, or skips the test (fails it under
// LKBUILD_REQUIRE_ALL=1) when v was not set.
func (t Trees) Need(tb testing.TB, v string) string {
	tb.Helper()
	dir, ok := t[v]
	testenv.Need(tb, ok, v+" is not set: point it at rootfs.tar.gz from scripts/fixtures (scripts/test.sh does)")
	return dir
}

// shellDirs are what bash and coreutils need of a Debian rootfs.
var shellDirs = []string{"bin", "lib", "lib64", "usr/bin", "usr/lib/x86_64-linux-gnu", "usr/lib64", "etc"}

// SmallTree copies the parts of the rootfs at root a shell needs into a
// new directory of the test's.
func SmallTree(tb testing.TB, root string) string {
	tb.Helper()
	dst := tb.TempDir()
	keep := func(name string, _ fs.DirEntry) bool {
		for _, d := range shellDirs {
			if name == d || strings.HasPrefix(name, d+"/") || strings.HasPrefix(d, name+"/") {
				return true
			}
		}
		return false
	}
	pr, pw := io.Pipe()
	go func() {
		pw.CloseWithError(oci.WriteTar(pw, os.DirFS(root), oci.TarOptions{Epoch: time.Unix(0, 0), Include: keep}))
	}()
	if _, err := oci.ExtractLayer(context.Background(), pr, dst); err != nil {
		tb.Fatalf("small tree of %s: %v", root, err)
	}
	return dst
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
	_, err = oci.ExtractLayer(context.Background(), zr, dir)
	return err
}

// Run is the rest of a TestMain: it unpacks the fixtures named by vars
// into *trees, runs the tests, removes the trees and returns the exit
// code.
func Run(m *testing.M, trees *Trees, vars ...string) int {
	t, cleanup, err := Unpack(vars...)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	*trees = t
	defer cleanup()
	return m.Run()
}
