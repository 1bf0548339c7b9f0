package kernelsrc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/lkbuild/lkbuild/kernel"
)

// WriteMirror writes release v as a kernel.org-style mirror tree under
// dst: v<MAJOR>.x/sha256sums.asc, linux-<version>.tar.sign and
// linux-<version>.tar.xz, the files a Fetch with Options.Mirror dst
// reads. It fetches v first (Fetch, so from the cache when it is there)
// and copies the verified files the cache kept; a .tar.sign that an older
// lkbuild did not keep comes from the mirror. It returns the tree.
func WriteMirror(ctx context.Context, o Options, v kernel.Version, dst string) (Tree, error) {
	tree, err := Fetch(ctx, o, v)
	if err != nil {
		return Tree{}, err
	}
	c := cache{dir: o.Dir}
	if c.dir, err = filepath.Abs(o.Dir); err != nil {
		return Tree{}, err
	}
	out, err := kernel.SourceURLs(dst, v)
	if err != nil {
		return Tree{}, err
	}
	if err := os.MkdirAll(filepath.Dir(out.Tarball), 0o755); err != nil {
		return Tree{}, fmt.Errorf("mirror tree: %w", err)
	}
	sums, err := os.ReadFile(c.sums(out.Sums))
	if err != nil {
		return Tree{}, fmt.Errorf("mirror tree: the kept sha256sums.asc: %w", err)
	}
	sig, err := os.ReadFile(c.signature(tree.SHA256))
	if errors.Is(err, fs.ErrNotExist) {
		// From the mirror: at least made by a key of the keyring (the
		// signature over the tar itself was checked when the tree was).
		if sig, err = mirrorSignature(ctx, o, v); err == nil {
			var vf *kernel.DetachedVerifier
			if vf, err = o.Keyring.NewDetachedVerifier(out.Signature, sig); err == nil {
				vf.Close()
			}
		}
	}
	if err != nil {
		return Tree{}, fmt.Errorf("mirror tree: the .tar.sign: %w", err)
	}
	for _, f := range []struct {
		name string
		data []byte
	}{{out.Sums, sums}, {out.Signature, sig}} {
		if err := os.WriteFile(f.name, f.data, 0o644); err != nil {
			return Tree{}, fmt.Errorf("mirror tree: %w", err)
		}
	}
	// A copy, not a link: the cache's verified tarball is not re-hashed
	// when used, and must not change with the bundle.
	if err := copyFile(tree.Tarball, out.Tarball); err != nil {
		return Tree{}, fmt.Errorf("mirror tree: %w", err)
	}
	return tree, nil
}

// mirrorSignature gets v's .tar.sign from the mirror.
func mirrorSignature(ctx context.Context, o Options, v kernel.Version) ([]byte, error) {
	m, err := o.withDefaults().mirror()
	if err != nil {
		return nil, err
	}
	files, err := kernel.SourceURLs(m.base(), v)
	if err != nil {
		return nil, err
	}
	sig := &memSink{limit: maxSignatureSize, name: files.Signature}
	if err := m.get(ctx, files.Signature, sig); err != nil {
		return nil, err
	}
	return sig.buf.Bytes(), nil
}

// copyFile copies src to dst.
func copyFile(src, dst string) error {
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
		out.Close()
		os.Remove(dst)
		return err
	}
	if err := out.Close(); err != nil {
		os.Remove(dst)
		return err
	}
	return nil
}
