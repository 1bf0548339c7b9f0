// Package mirrortest writes kernel.org-style mirrors signed by a test key,
// for the tests of package kernelsrc and for the kernel source benchmark.
package mirrortest

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/lkbuild/lkbuild/internal/pgptest"
	"github.com/lkbuild/lkbuild/kernel"
	"github.com/ulikunitz/xz"
)

// Release is one kernel release to put into a mirror.
type Release struct {
	Version kernel.Version
	// XZ is the path of the .tar.xz. It is hard-linked into the mirror
	// when it can be, else copied; the name it gets is the kernel.org one,
	// whatever its top directory is called.
	XZ string
	// Tar opens the decompressed tar, for the detached signature. When nil,
	// XZ is decompressed with github.com/ulikunitz/xz's sequential reader
	// (not lkbuild's parallel one, which the mirror is there to test).
	Tar func() (io.ReadCloser, error)
}

// Write makes a mirror in dir with, for each release,
// v<MAJOR>.x/linux-<version>.tar.xz and linux-<version>.tar.sign (key's
// detached, armored signature over the .tar), and in each v<MAJOR>.x/ a
// sha256sums.asc that key clear-signs, listing that folder's tarballs.
func Write(dir string, key *pgptest.Key, releases ...Release) error {
	sums := map[string][]string{} // sums file -> lines
	for _, r := range releases {
		f, err := kernel.SourceURLs(dir, r.Version)
		if err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Dir(f.Tarball), 0o755); err != nil {
			return err
		}
		if err := linkOrCopy(r.XZ, f.Tarball); err != nil {
			return err
		}
		digest, err := fileSHA256(f.Tarball)
		if err != nil {
			return err
		}
		sums[f.Sums] = append(sums[f.Sums], digest+"  "+f.TarballName)
		open := r.Tar
		if open == nil {
			open = func() (io.ReadCloser, error) { return decompress(r.XZ) }
		}
		tar, err := open()
		if err != nil {
			return fmt.Errorf("open the tar of %s: %w", r.XZ, err)
		}
		sig, err := key.DetachSign(tar)
		if cerr := tar.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("sign the tar of %s: %w", r.XZ, err)
		}
		if err := os.WriteFile(f.Signature, sig, 0o644); err != nil {
			return err
		}
	}
	for file, lines := range sums {
		sort.Strings(lines)
		signed, err := key.ClearSign([]byte(strings.Join(lines, "\n") + "\n"))
		if err != nil {
			return err
		}
		if err := os.WriteFile(file, signed, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// Resign rewrites the sha256sums.asc of v's folder in dir, clear-signed by
// key, with the digest of the tarball as it is now: for tests that change
// a tarball and want only the later checks to notice.
func Resign(dir string, key *pgptest.Key, v kernel.Version) error {
	f, err := kernel.SourceURLs(dir, v)
	if err != nil {
		return err
	}
	digest, err := fileSHA256(f.Tarball)
	if err != nil {
		return err
	}
	signed, err := key.ClearSign([]byte(digest + "  " + f.TarballName + "\n"))
	if err != nil {
		return err
	}
	return os.WriteFile(f.Sums, signed, 0o644)
}

func linkOrCopy(src, dst string) error {
	_ = os.Remove(dst)
	if err := os.Link(src, dst); err == nil {
		return nil
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		_ = out.Close()
		return err
	}
	return out.Close()
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// decompress opens an .xz file through github.com/ulikunitz/xz.
func decompress(path string) (io.ReadCloser, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	r, err := xz.NewReader(bufio.NewReaderSize(f, 1<<20))
	if err != nil {
		_ = f.Close()
		return nil, err
	}
	return readCloser{r, f}, nil
}

type readCloser struct {
	io.Reader
	c io.Closer
}

func (r readCloser) Close() error { return r.c.Close() }
