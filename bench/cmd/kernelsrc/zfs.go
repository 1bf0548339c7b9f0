package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/lkbuild/lkbuild/kernel"
)

// zfsFormat names the layout of the OpenZFS mirror fixture.
const zfsFormat = "zfs-mirror-v1"

// zfsCmd is `kernelsrc zfs`: a mirror in OpenZFS's release layout,
// zfs-<v>/zfs-<v>.tar.gz and its detached signature (.asc), signed by a
// key it generates, for the zfs-kmod tests. It prints
// "<mirror dir> <keys.asc>".
func zfsCmd(args []string) error {
	fs := flag.NewFlagSet("zfs", flag.ExitOnError)
	src := fs.String("src", "", "the OpenZFS release `tarball`, zfs-<version>.tar.gz")
	fixtures := fs.String("fixtures", "/var/cache/lkbuild-fixtures", "fixture cache `dir`")
	_ = fs.Parse(args)
	base := filepath.Base(*src)
	v, ok := strings.CutSuffix(strings.TrimPrefix(base, "zfs-"), ".tar.gz")
	if !ok || !strings.HasPrefix(base, "zfs-") || kernel.CheckZFSVersion(v) != nil {
		return fmt.Errorf("-src %q: want a file named zfs-<version>.tar.gz", *src)
	}
	dir, err := makeZFSMirror(*fixtures, *src, v)
	if err != nil {
		return err
	}
	fmt.Println(filepath.Join(dir, "mirror"), filepath.Join(dir, "keys.asc"))
	return nil
}

// makeZFSMirror returns <fixtures>/zfs-mirror-<key>/ (keys.asc, mirror/,
// INFO), making it first if it is missing.
func makeZFSMirror(fixtures, src, v string) (string, error) {
	return fixture(fixtures, "zfs-mirror", zfsFormat, v, src, func(tmp, digest string) (string, error) {
		signer, err := newSigner(tmp, "lkbuild OpenZFS fixture", "zfs@lkbuild.invalid")
		if err != nil {
			return "", err
		}
		tarball, signature := kernel.ZFSFiles(filepath.Join(tmp, "mirror"), v)
		if err := os.MkdirAll(filepath.Dir(tarball), 0o755); err != nil {
			return "", err
		}
		data, err := os.ReadFile(src)
		if err != nil {
			return "", err
		}
		if err := os.WriteFile(tarball, data, 0o644); err != nil {
			return "", err
		}
		sig, err := signer.DetachSign(bytes.NewReader(data))
		if err != nil {
			return "", err
		}
		if err := os.WriteFile(signature, sig, 0o644); err != nil {
			return "", err
		}
		return fmt.Sprintf("made-by: bench/cmd/kernelsrc zfs (%s)\nsource: %s sha256:%s, served as zfs-%s/zfs-%s.tar.gz\nsigned by: a key generated then, public part in keys.asc\n",
			zfsFormat, src, digest, v, v), nil
	})
}
