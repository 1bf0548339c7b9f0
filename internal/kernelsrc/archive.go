package kernelsrc

import (
	"bufio"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/lkbuild/lkbuild/internal/flock"
	"github.com/lkbuild/lkbuild/kernel"
	"github.com/lkbuild/lkbuild/oci"
)

// Archive is a release published as a gzip-compressed tarball with a
// detached, armored signature over the compressed file, as OpenZFS
// publishes its releases.
type Archive struct {
	// Name says what it is, for messages: "OpenZFS 2.3.2".
	Name string
	// Tarball and Signature are the files' paths under Options.Mirror:
	// "zfs-2.3.2/zfs-2.3.2.tar.gz" and "zfs-2.3.2/zfs-2.3.2.tar.gz.asc".
	Tarball, Signature string
}

// maxArchiveSize bounds what FetchArchive downloads.
const maxArchiveSize = 1 << 30

// FetchArchive returns the verified source tree of a: from the cache when
// an earlier call put it there and the kept tarball's kept signature still
// verifies with o.Keyring (no request), else downloaded from o.Mirror, its
// signature checked with o.Keyring over every byte, and extracted (owners
// and device files left out, no entry outside the tree). The tree is kept
// under the tarball's SHA-256, and a record of a's mirror path names it
// for the next call. Options.Workers does not apply. Like Fetch, a failure leaves the cache as it was and wraps
// kernel.ErrUnknownKey, kernel.ErrBadSignature or ErrNotFound where they
// are the cause.
func FetchArchive(ctx context.Context, o Options, a Archive) (Tree, error) {
	tree, err := fetchArchive(ctx, o, a)
	if err != nil {
		return Tree{}, fmt.Errorf("fetch %s: %w", a.Name, err)
	}
	return tree, nil
}

func fetchArchive(ctx context.Context, o Options, a Archive) (Tree, error) {
	if o.Dir == "" {
		return Tree{}, errors.New("no cache directory")
	}
	if o.Keyring == nil {
		return Tree{}, errors.New("no keyring")
	}
	for _, p := range []string{a.Tarball, a.Signature} {
		if p == "" || filepath.IsAbs(p) || strings.Contains("/"+p+"/", "/../") {
			return Tree{}, fmt.Errorf("%q is not a path inside the mirror", p)
		}
	}
	cacheDir, err := filepath.Abs(o.Dir)
	if err != nil {
		return Tree{}, err
	}
	o = o.withDefaults()
	m, err := o.mirror()
	if err != nil {
		return Tree{}, err
	}
	c, err := openCache(cacheDir)
	if err != nil {
		return Tree{}, err
	}
	loc := strings.TrimSuffix(m.base(), "/") + "/" + a.Tarball
	record := c.archiveRecord(a.Tarball)
	tree := Tree{URL: loc}
	if t, ok, err := c.recordedTree(record, o.Keyring); ok || err != nil {
		t.URL = loc
		return t, err
	}
	key := filepath.Base(record)
	unlock, err := flock.Exclusive(ctx, c.lock(key), func() { o.Progress(Progress{Phase: PhaseWait, File: loc}) })
	if err != nil {
		return Tree{}, fmt.Errorf("lock the source cache: %w", err)
	}
	defer unlock()
	if t, ok, err := c.recordedTree(record, o.Keyring); ok || err != nil {
		t.URL = loc
		return t, err
	}
	if err := c.removeTemps(key); err != nil {
		return Tree{}, err
	}

	sigLoc := strings.TrimSuffix(m.base(), "/") + "/" + a.Signature
	sig := &memSink{limit: maxSignatureSize, name: sigLoc}
	if err := m.get(ctx, sigLoc, sig); err != nil {
		return Tree{}, err
	}
	verifier, err := o.Keyring.NewDetachedVerifier(sigLoc, sig.buf.Bytes())
	if err != nil {
		return Tree{}, err
	}
	defer verifier.Close()

	f, err := os.CreateTemp(c.tmp(), key+".gz-*")
	if err != nil {
		return Tree{}, err
	}
	defer func() {
		f.Close()
		os.Remove(f.Name())
	}()
	s := &fileSink{f: f, h: sha256.New(), limit: maxArchiveSize, progress: func(done int64) {
		o.Progress(Progress{Phase: PhaseDownload, File: loc, Done: done})
	}}
	if err := m.get(ctx, loc, s); err != nil {
		return Tree{}, err
	}
	sum := hex.EncodeToString(s.h.Sum(nil))
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return Tree{}, err
	}
	if _, err := io.Copy(verifier, f); err != nil {
		return Tree{}, err
	}
	if _, err := verifier.Verify(); err != nil {
		return Tree{}, fmt.Errorf("%s: %w", loc, err)
	}
	if _, ok, err := c.findTree(sum); err != nil {
		return Tree{}, err
	} else if !ok {
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return Tree{}, err
		}
		if err := extractGzip(ctx, c, f, key, sum, loc); err != nil {
			return Tree{}, err
		}
	}
	if err := f.Sync(); err != nil {
		return Tree{}, err
	}
	if err := os.Rename(f.Name(), c.tarball(sum)); err != nil {
		return Tree{}, err
	}
	tree.SHA256, tree.Tarball = sum, c.tarball(sum)
	if tree.Dir, _, err = c.findTree(sum); err != nil {
		return Tree{}, err
	}
	// What the next call needs to find the tree without a request; a
	// failure to keep them costs it a download, as for the kernel's sums.
	c.keep(c.archiveSignature(sum), sig.buf.Bytes())
	c.keep(record, []byte(sum+"\n"))
	return tree, nil
}

// archiveRecord is the file that names the verified tarball of the
// mirror path rel.
func (c cache) archiveRecord(rel string) string {
	h := sha256.Sum256([]byte(rel))
	return filepath.Join(c.dir, "archives", "archive-"+hex.EncodeToString(h[:16]))
}

// archiveSignature is where the signature of the archive sum is kept.
func (c cache) archiveSignature(sum string) string {
	return filepath.Join(c.dir, "signatures", sum+".asc")
}

// recordedTree is the tree record names, when it and its tree are there
// and the kept tarball's kept signature verifies with keys: a cache an
// earlier call filled with other keys (or a test's) is not taken on
// trust.
func (c cache) recordedTree(record string, keys *kernel.Keyring) (Tree, bool, error) {
	data, err := os.ReadFile(record)
	if err != nil {
		return Tree{}, false, nil
	}
	sum := strings.TrimSpace(string(data))
	if len(sum) != 2*sha256.Size || strings.Trim(sum, "0123456789abcdef") != "" {
		return Tree{}, false, nil
	}
	dir, ok, err := c.findTree(sum)
	if !ok || err != nil {
		return Tree{}, false, err
	}
	if !keptArchiveVerifies(c, keys, sum) {
		return Tree{}, false, nil
	}
	return Tree{Dir: dir, SHA256: sum, Tarball: c.tarball(sum), Cached: true}, true, nil
}

// keptArchiveVerifies checks the kept tarball of sum against its kept
// signature with keys, and its digest against sum.
func keptArchiveVerifies(c cache, keys *kernel.Keyring, sum string) bool {
	sig, err := os.ReadFile(c.archiveSignature(sum))
	if err != nil || len(sig) > maxSignatureSize {
		return false
	}
	f, err := os.Open(c.tarball(sum))
	if err != nil {
		return false
	}
	defer f.Close()
	v, err := keys.NewDetachedVerifier(c.archiveSignature(sum), sig)
	if err != nil {
		return false
	}
	defer v.Close()
	h := sha256.New()
	if _, err := io.Copy(io.MultiWriter(v, h), f); err != nil {
		return false
	}
	if _, err := v.Verify(); err != nil {
		return false
	}
	return hex.EncodeToString(h.Sum(nil)) == sum
}

// extractGzip extracts the gzip-compressed tar r into the cache's tree
// for sum; its temporary directory is named after key, the lock held, so
// that the next call under that lock removes what a killed one left.
func extractGzip(ctx context.Context, c cache, r io.Reader, key, sum, loc string) (err error) {
	tmp, err := os.MkdirTemp(c.tmp(), key+".tree-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = os.RemoveAll(tmp)
		}
	}()
	if err := os.Chmod(tmp, 0o755); err != nil {
		return err
	}
	gz, err := gzip.NewReader(bufio.NewReaderSize(r, 1<<20))
	if err != nil {
		return fmt.Errorf("%s: not gzip: %w", loc, err)
	}
	if _, err := oci.ExtractLayer(ctx, gz, tmp, oci.WithOwnership(false), oci.WithDevices(false)); err != nil {
		return fmt.Errorf("extract %s: %w", loc, err)
	}
	if err := os.MkdirAll(filepath.Dir(c.tree(sum)), 0o755); err != nil {
		return err
	}
	return os.Rename(tmp, c.tree(sum))
}
