package main

import (
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/lkbuild/lkbuild/internal/pgptest"
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
// INFO), making it first if it is missing; the key hashes the format and
// src's contents.
func makeZFSMirror(fixtures, src, v string) (string, error) {
	digest, err := fileSHA256(src)
	if err != nil {
		return "", err
	}
	k := sha256.Sum256([]byte(zfsFormat + "\n" + v + "\n" + digest))
	key := hex.EncodeToString(k[:8])
	dir := filepath.Join(fixtures, "zfs-mirror-"+key)
	if _, err := os.Stat(filepath.Join(dir, "INFO")); err == nil {
		return dir, nil
	}
	if err := os.MkdirAll(fixtures, 0o755); err != nil {
		return "", err
	}
	lock, err := os.OpenFile(filepath.Join(fixtures, ".zfs-mirror-"+key+".lock"), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return "", err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return "", err
	}
	if _, err := os.Stat(filepath.Join(dir, "INFO")); err == nil {
		return dir, nil
	}
	tmp, err := os.MkdirTemp(fixtures, ".zfs-mirror-"+key+".tmp.")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	signer, err := pgptest.NewKey("lkbuild OpenZFS fixture", "zfs@lkbuild.invalid", nil)
	if err != nil {
		return "", err
	}
	keys, err := signer.Public()
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(tmp, "keys.asc"), keys, 0o644); err != nil {
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
	f, err := os.Open(tarball)
	if err != nil {
		return "", err
	}
	sig, err := signer.DetachSign(f)
	f.Close()
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(signature, sig, 0o644); err != nil {
		return "", err
	}
	info := fmt.Sprintf("made-by: bench/cmd/kernelsrc zfs (%s)\ndate: %s\nsource: %s sha256:%s, served as zfs-%s/zfs-%s.tar.gz\nsigned by: a key generated then, public part in keys.asc\n",
		zfsFormat, time.Now().UTC().Format(time.RFC3339), src, digest, v, v)
	if err := os.WriteFile(filepath.Join(tmp, "INFO"), []byte(info), 0o644); err != nil {
		return "", err
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		return "", err
	}
	if err := os.Rename(tmp, dir); err != nil {
		return "", err
	}
	return dir, nil
}
