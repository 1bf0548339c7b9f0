package oci

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// ErrDigestMismatch is returned when a blob's content does not hash to the
// digest it was fetched or stored under.
var ErrDigestMismatch = errors.New("digest mismatch")

// Store is a content-addressed blob store laid out as an OCI image layout
// (https://github.com/opencontainers/image-spec/blob/main/image-layout.md).
// It serves two purposes: it is lkbuild's blob cache (pulled images, built
// layers), and the same code writes lkbuild's OCI layout output.
//
// Blobs are written to a temporary file in the blobs directory, verified
// against their digest and renamed into place, so a crash or a concurrent
// writer never leaves a partial blob under a digest name, and several
// processes can share one store.
type Store struct {
	path layout.Path
}

// staleTempAge is how old an unlocked temporary blob must be for
// OpenStore to remove it.
const staleTempAge = time.Minute

// OpenStore opens the OCI layout at dir, creating an empty one if dir does
// not hold a layout yet. Temporary blobs a killed process left behind
// (unlocked, over a minute old) are removed.
func OpenStore(dir string) (*Store, error) {
	if _, err := os.Stat(filepath.Join(dir, "oci-layout")); err == nil {
		removeStaleTemps(filepath.Join(dir, "blobs", "sha256"), time.Now().Add(-staleTempAge))
		return &Store{path: layout.Path(dir)}, nil
	}
	if err := os.MkdirAll(filepath.Join(dir, "blobs", "sha256"), 0o755); err != nil {
		return nil, fmt.Errorf("create store: %w", err)
	}
	// Write the layout marker last, atomically, so a concurrent opener
	// either sees a complete layout or creates the same files itself.
	tmp, err := os.MkdirTemp(dir, ".init-")
	if err != nil {
		return nil, fmt.Errorf("create store: %w", err)
	}
	defer os.RemoveAll(tmp)
	p, err := layout.Write(tmp, empty.Index)
	if err != nil {
		return nil, fmt.Errorf("create store: %w", err)
	}
	for _, f := range []string{"index.json", "oci-layout"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err == nil {
			continue
		}
		if err := os.Rename(filepath.Join(string(p), f), filepath.Join(dir, f)); err != nil {
			return nil, fmt.Errorf("create store: %w", err)
		}
	}
	return &Store{path: layout.Path(dir)}, nil
}

// Dir is the directory that holds the layout.
func (s *Store) Dir() string { return string(s.path) }

// Layout is the store as a go-containerregistry layout.Path.
func (s *Store) Layout() layout.Path { return s.path }

// BlobPath is where the blob with digest h lives (whether or not it exists).
func (s *Store) BlobPath(h v1.Hash) string {
	return filepath.Join(string(s.path), "blobs", h.Algorithm, h.Hex)
}

// HasBlob reports whether the blob with digest h is present. When size is
// not negative, the stored blob must also have that size.
func (s *Store) HasBlob(h v1.Hash, size int64) bool {
	fi, err := os.Stat(s.BlobPath(h))
	return err == nil && fi.Mode().IsRegular() && (size < 0 || fi.Size() == size)
}

// WriteBlob copies r into the store under digest h, verifying the content
// as it goes. A blob that is already present is not written again (r is
// not read). On any error nothing is left under the digest name.
func (s *Store) WriteBlob(h v1.Hash, size int64, r io.Reader) error {
	if s.HasBlob(h, size) {
		return nil
	}
	if h.Algorithm != "sha256" {
		return fmt.Errorf("write blob %s: unsupported digest algorithm", h)
	}
	w, err := s.newBlobWriter()
	if err != nil {
		return err
	}
	defer w.abort()
	n, err := io.Copy(w, r)
	if err != nil {
		return fmt.Errorf("write blob %s: %w", h, err)
	}
	if size >= 0 && n != size {
		return fmt.Errorf("write blob %s: got %d bytes, want %d: %w", h, n, size, ErrDigestMismatch)
	}
	_, err = w.commit(h)
	return err
}

// blobWriter streams a blob of not yet known digest into a temporary file
// in the store and renames it to its digest on commit.
type blobWriter struct {
	s    *Store
	f    *os.File
	h    hash.Hash
	n    int64
	done bool
}

func (s *Store) newBlobWriter() (*blobWriter, error) {
	dir := filepath.Join(string(s.path), "blobs", "sha256")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create blob: %w", err)
	}
	f, err := os.CreateTemp(dir, ".tmp-")
	if err != nil {
		return nil, fmt.Errorf("create blob: %w", err)
	}
	lockTemp(f)
	return &blobWriter{s: s, f: f, h: sha256.New()}, nil
}

func (w *blobWriter) Write(p []byte) (int, error) {
	n, err := w.f.Write(p)
	w.h.Write(p[:n])
	w.n += int64(n)
	return n, err
}

func (w *blobWriter) digest() v1.Hash {
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(w.h.Sum(nil))}
}

// commit closes the temporary file and renames it to its digest. When want
// is not the zero hash, the content must hash to it.
func (w *blobWriter) commit(want v1.Hash) (v1.Hash, error) {
	got := w.digest()
	if want != (v1.Hash{}) && got != want {
		return got, fmt.Errorf("write blob %s: content hashes to %s: %w", want, got, ErrDigestMismatch)
	}
	if err := w.f.Close(); err != nil {
		return got, fmt.Errorf("write blob %s: %w", got, err)
	}
	if err := os.Chmod(w.f.Name(), 0o644); err != nil {
		return got, fmt.Errorf("write blob %s: %w", got, err)
	}
	if err := os.Rename(w.f.Name(), w.s.BlobPath(got)); err != nil {
		return got, fmt.Errorf("write blob %s: %w", got, err)
	}
	w.done = true
	return got, nil
}

// abort removes the temporary file unless the blob was committed.
func (w *blobWriter) abort() {
	if w.done {
		return
	}
	w.f.Close()
	os.Remove(w.f.Name())
}

// WriteImage stores every blob of img (layers, config, manifest) that is not
// present yet, up to four layers at a time. Layers are taken in their
// compressed form, as a registry serves them.
func (s *Store) WriteImage(ctx context.Context, img v1.Image, progress func(Progress)) error {
	return s.writeImage(ctx, img, progress, retryPolicy{attempts: 1})
}

// retryPolicy says how often to try a blob copy that fails part way.
type retryPolicy struct {
	attempts  int
	backoff   time.Duration
	maxWait   time.Duration
	retryable func(error) bool
}

func (p retryPolicy) do(ctx context.Context, f func() error) error {
	var err error
	for i := 0; i < max(p.attempts, 1); i++ {
		if i > 0 {
			if serr := sleepCtx(ctx, min(p.backoff<<(i-1), p.maxWait)); serr != nil {
				return serr
			}
		}
		if err = f(); err == nil || p.retryable == nil || !p.retryable(err) {
			return err
		}
	}
	return err
}

func (s *Store) writeImage(ctx context.Context, img v1.Image, progress func(Progress), retry retryPolicy) error {
	layers, err := img.Layers()
	if err != nil {
		return fmt.Errorf("list layers: %w", err)
	}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
		sem  = make(chan struct{}, 4)
	)
	for i, l := range layers {
		d, err := l.Digest()
		if err != nil {
			return fmt.Errorf("layer %d digest: %w", i, err)
		}
		size, err := l.Size()
		if err != nil {
			return fmt.Errorf("layer %s size: %w", d, err)
		}
		if s.HasBlob(d, size) {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case sem <- struct{}{}:
				defer func() { <-sem }()
			case <-ctx.Done():
				mu.Lock()
				errs = append(errs, ctx.Err())
				mu.Unlock()
				return
			}
			err := retry.do(ctx, func() error { return s.writeLayer(ctx, l, d, size, progress) })
			if err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	cfgName, err := img.ConfigName()
	if err != nil {
		return fmt.Errorf("config digest: %w", err)
	}
	cfg, err := img.RawConfigFile()
	if err != nil {
		return fmt.Errorf("read config: %w", err)
	}
	if err := s.writeBytes(cfgName, cfg); err != nil {
		return err
	}
	d, err := img.Digest()
	if err != nil {
		return fmt.Errorf("manifest digest: %w", err)
	}
	m, err := img.RawManifest()
	if err != nil {
		return fmt.Errorf("read manifest: %w", err)
	}
	// The manifest goes last: its presence means the whole image is here.
	return s.writeBytes(d, m)
}

func (s *Store) writeLayer(ctx context.Context, l v1.Layer, d v1.Hash, size int64, progress func(Progress)) error {
	rc, err := l.Compressed()
	if err != nil {
		return fmt.Errorf("fetch layer %s: %w", d, err)
	}
	defer rc.Close()
	var r io.Reader = &ctxReader{ctx: ctx, r: rc}
	if progress != nil {
		r = &progressReader{r: r, digest: d, total: size, report: progress}
	}
	if err := s.WriteBlob(d, size, r); err != nil {
		return fmt.Errorf("fetch layer: %w", err)
	}
	return nil
}

func (s *Store) writeBytes(h v1.Hash, b []byte) error {
	return s.WriteBlob(h, int64(len(b)), bytes.NewReader(b))
}

// Image returns the image whose manifest has digest h, when the manifest,
// its config and all its layers are in the store. Reading it makes no
// network request.
func (s *Store) Image(h v1.Hash) (v1.Image, bool) {
	rawManifest, err := os.ReadFile(s.BlobPath(h))
	if err != nil || digestOf(rawManifest) != h {
		return nil, false
	}
	m, err := v1.ParseManifest(bytes.NewReader(rawManifest))
	if err != nil || !s.HasBlob(m.Config.Digest, m.Config.Size) {
		return nil, false
	}
	rawConfig, err := os.ReadFile(s.BlobPath(m.Config.Digest))
	if err != nil {
		return nil, false
	}
	cf, err := v1.ParseConfigFile(bytes.NewReader(rawConfig))
	if err != nil || len(cf.RootFS.DiffIDs) != len(m.Layers) {
		return nil, false
	}
	layers := map[v1.Hash]v1.Layer{}
	for i, l := range m.Layers {
		sl, err := s.Layer(l.Digest, l.Size, cf.RootFS.DiffIDs[i], l.MediaType)
		if err != nil {
			return nil, false
		}
		layers[l.Digest] = sl
	}
	mt := m.MediaType
	if mt == "" {
		mt = types.OCIManifestSchema1
	}
	img, err := partial.CompressedToImage(&builtImage{config: rawConfig, manifest: rawManifest, mediaType: mt, layers: layers})
	if err != nil {
		return nil, false
	}
	return img, true
}

// Progress reports bytes moved for one blob.
type Progress struct {
	Digest   v1.Hash
	Complete int64
	Total    int64
}

type progressReader struct {
	r      io.Reader
	digest v1.Hash
	done   int64
	total  int64
	report func(Progress)
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.done += int64(n)
	p.report(Progress{Digest: p.digest, Complete: p.done, Total: p.total})
	return n, err
}

// ctxReader stops a long copy when its context is cancelled.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(b []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(b)
}
