package kernelsrc

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/lkbuild/lkbuild/internal/flock"
	"github.com/lkbuild/lkbuild/kernel"
	"github.com/lkbuild/lkbuild/oci"
)

// Options configures Fetch.
type Options struct {
	// Mirror is the folder that holds v<MAJOR>.x/ folders in kernel.org's
	// layout: an http or https URL, a file URL or a local directory (for
	// air-gapped hosts). The default is kernel.DefaultSourceMirror.
	Mirror string
	// Dir is where verified sources are kept (see the package
	// documentation): lkbuild's cachedir.Dir.Sources(). Required.
	Dir string
	// Keyring holds the keys trusted to sign sha256sums.asc and the
	// .tar.sign: LinuxKit's kernel/common/keys.asc. Required.
	Keyring *kernel.Keyring
	// HTTPClient makes the requests. The default is an http.Client with
	// no overall timeout: ctx bounds the requests.
	HTTPClient *http.Client
	// Retries is how many times a request that failed without moving any
	// data (a network error, 408, 416, 429, 5xx) is tried again before
	// Fetch gives up. The default (0) is 4; -1 means no retries.
	Retries int
	// Workers is how many xz blocks are decoded at once. The default (0)
	// is the number of usable CPUs; 1 decodes sequentially.
	Workers int
	// Progress, when set, is called as work goes on, from the goroutine
	// running Fetch.
	Progress func(Progress)
	// Offline forbids the network: what is not in the cache must come
	// from a local mirror (a directory or file URL); an http or https
	// mirror makes that an error wrapping ErrOffline.
	Offline bool

	// retryDelay is the wait before the first retry; it doubles with each
	// failure, up to maxDelay. Tests shorten it. The default is 1 s.
	retryDelay time.Duration
}

// Progress reports how far a Fetch is.
type Progress struct {
	Phase Phase
	// File is the URL or path being downloaded or extracted.
	File string
	// Done and Total count bytes: downloaded bytes of the tarball, or
	// decompressed bytes of the tar while extracting. Total is 0 when
	// unknown.
	Done, Total int64
}

// Phase is a step of Fetch.
type Phase int

const (
	// PhaseWait: another process holds the lock on this tarball.
	PhaseWait Phase = iota + 1
	// PhaseDownload: the tarball is being downloaded (or copied from a
	// local mirror).
	PhaseDownload
	// PhaseExtract: the tarball is being decompressed, signature-checked
	// and extracted.
	PhaseExtract
)

func (p Phase) String() string {
	switch p {
	case PhaseWait:
		return "wait"
	case PhaseDownload:
		return "download"
	case PhaseExtract:
		return "extract"
	}
	return fmt.Sprintf("Phase(%d)", int(p))
}

// Tree is a verified kernel source tree in the cache.
type Tree struct {
	// Dir is the top directory of the source (linux-<version>/ as the tar
	// names it; the extraction root if the tar has no single top
	// directory). It is shared: treat it as read-only.
	Dir string
	// Version is the release.
	Version kernel.Version
	// SHA256 is the tarball's digest in hex: the cache key.
	SHA256 string
	// URL is where the tarball was fetched from (or would have been, for a
	// cached tree): KERNEL_SOURCE in LinuxKit's /kernel-source-info.
	URL string
	// Tarball is the verified .tar.xz in the cache.
	Tarball string
	// Cached is true when the tree was already in the cache.
	Cached bool
}

// Limits on what the mirror may send.
const (
	maxSumsSize      = 16 << 20 // kernel.org's v6.x/sha256sums.asc is about 0.5 MB
	maxSignatureSize = 1 << 20
	maxTarballSize   = 4 << 30
	progressStep     = 4 << 20
)

// Fetch returns the verified source tree of release v: from the cache
// when an earlier call (by this or another process) put it there, else
// fetched from the mirror, verified and extracted as the package
// documentation describes. sha256sums.asc names the cache key: the copy
// an earlier call kept in the cache is used when it verifies against the
// keyring and lists the release, so a release already in the cache costs
// no request; otherwise it is fetched, verified and kept.
//
// Every failure leaves the cache as it was (apart from a verified tarball
// in sha256/) and returns an error that names the file and the fix, and
// that wraps what callers can test with errors.Is or errors.As:
// ErrNotFound and *HTTPError for the mirror, and kernel.ErrUnknownKey,
// kernel.ErrBadSignature, kernel.ErrNotSigned, kernel.ErrNotInSums,
// kernel.ErrHashMismatch, kernel.ErrXZTruncated or kernel.ErrXZCorrupt for
// the checks.
func Fetch(ctx context.Context, opts Options, v kernel.Version) (Tree, error) {
	tree, err := fetch(ctx, opts, v)
	if err != nil {
		return Tree{}, fmt.Errorf("fetch kernel %s source: %w", v, err)
	}
	return tree, nil
}

// withDefaults fills in what o leaves to its defaults.
func (o Options) withDefaults() Options {
	if o.Mirror == "" {
		o.Mirror = kernel.DefaultSourceMirror
	}
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{}
	}
	switch {
	case o.Retries == 0:
		o.Retries = 4
	case o.Retries < 0:
		o.Retries = 0
	}
	if o.retryDelay == 0 {
		o.retryDelay = time.Second
	}
	if o.Progress == nil {
		o.Progress = func(Progress) {}
	}
	return o
}

// mirror is o's mirror; o has its defaults.
func (o Options) mirror() (mirror, error) {
	return newMirror(o.Mirror, o.HTTPClient, o.Retries, o.retryDelay, o.Offline)
}

func fetch(ctx context.Context, o Options, v kernel.Version) (Tree, error) {
	if o.Dir == "" {
		return Tree{}, errors.New("no cache directory")
	}
	cacheDir, err := filepath.Abs(o.Dir)
	if err != nil {
		return Tree{}, err
	}
	if o.Keyring == nil {
		return Tree{}, errors.New("no keyring: pass the keys of kernel/common/keys.asc")
	}
	o = o.withDefaults()
	m, err := o.mirror()
	if err != nil {
		return Tree{}, err
	}
	files, err := kernel.SourceURLs(m.base(), v)
	if err != nil {
		return Tree{}, err
	}
	c, err := openCache(cacheDir)
	if err != nil {
		return Tree{}, err
	}

	// 1. The signed list of digests names the tarball's cache key: the
	// copy an earlier fetch kept, when it still verifies and lists the
	// tarball (kernel.org only ever adds lines), else the mirror's.
	want, ok := keptSum(c, o.Keyring, files)
	if !ok {
		sumsData := &memSink{limit: maxSumsSize, name: files.Sums}
		if err := m.get(ctx, files.Sums, sumsData); err != nil {
			return Tree{}, err
		}
		if want, err = lookupSum(o.Keyring, files, sumsData.buf.Bytes()); err != nil {
			return Tree{}, err
		}
		c.keep(c.sums(files.Sums), sumsData.buf.Bytes())
	}
	sum := hex.EncodeToString(want[:])
	tree := Tree{Version: v, SHA256: sum, URL: files.Tarball, Tarball: c.tarball(sum)}
	if dir, ok, err := c.findTree(sum); ok || err != nil {
		tree.Dir, tree.Cached = dir, true
		return tree, err
	}

	unlock, err := flock.Exclusive(ctx, c.lock(sum), func() { o.Progress(Progress{Phase: PhaseWait, File: files.Tarball}) })
	if err != nil {
		return Tree{}, fmt.Errorf("lock the source cache: %w", err)
	}
	defer unlock()
	if dir, ok, err := c.findTree(sum); ok || err != nil {
		tree.Dir, tree.Cached = dir, true
		return tree, err
	}
	if err := c.removeTemps(sum); err != nil {
		return Tree{}, err
	}

	// 2. The detached signature: a key we do not know fails here, before
	// the download.
	sigData := &memSink{limit: maxSignatureSize, name: files.Signature}
	sigKept := false
	if kept, err := os.ReadFile(c.signature(sum)); err == nil && len(kept) <= maxSignatureSize {
		sigData.buf.Write(kept) // kept by an earlier fetch; checked below as always
		sigKept = true
	} else if err := m.get(ctx, files.Signature, sigData); err != nil {
		return Tree{}, err
	}
	verifier, err := o.Keyring.NewDetachedVerifier(files.Signature, sigData.buf.Bytes())
	if err != nil {
		return Tree{}, err
	}
	defer verifier.Close()

	// 3. The tarball, unless a verified copy is already there.
	if _, err := os.Stat(c.tarball(sum)); errors.Is(err, fs.ErrNotExist) {
		if err := download(ctx, m, c, files.Tarball, sum, o.Progress); err != nil {
			return Tree{}, err
		}
	} else if err != nil {
		return Tree{}, err
	}

	// 4 and 5. One pass: decompress, check the signature, extract.
	dir, err := extract(ctx, c, files, sum, verifier, o)
	if err != nil {
		return Tree{}, err
	}
	if !sigKept {
		c.keep(c.signature(sum), sigData.buf.Bytes())
	}
	tree.Dir = dir
	return tree, nil
}

// lookupSum verifies data, a sha256sums.asc, and returns the tarball's
// digest in it.
func lookupSum(keys *kernel.Keyring, files kernel.SourceFiles, data []byte) ([sha256.Size]byte, error) {
	plain, _, err := keys.VerifyClearSigned(files.Sums, data)
	if err != nil {
		return [sha256.Size]byte{}, err
	}
	sums, err := kernel.ParseSHA256Sums(files.Sums, plain)
	if err != nil {
		return [sha256.Size]byte{}, err
	}
	want, err := sums.Lookup(files.TarballName)
	if err != nil {
		return [sha256.Size]byte{}, fmt.Errorf("%s: %w: is %s released, and does the mirror have it?", files.Sums, err, files.Version)
	}
	return want, nil
}

// keptSum is lookupSum of the copy of sha256sums.asc in the cache, if
// there is one that verifies and lists the tarball.
func keptSum(c cache, keys *kernel.Keyring, files kernel.SourceFiles) ([sha256.Size]byte, bool) {
	data, err := os.ReadFile(c.sums(files.Sums))
	if err != nil || len(data) > maxSumsSize {
		return [sha256.Size]byte{}, false
	}
	want, err := lookupSum(keys, files, data)
	return want, err == nil
}

// download gets the tarball into the cache under its digest, or fails
// with nothing left behind.
func download(ctx context.Context, m mirror, c cache, loc, sum string, progress func(Progress)) (err error) {
	f, err := os.CreateTemp(c.tmp(), sum+".xz-*")
	if err != nil {
		return err
	}
	name := f.Name()
	defer func() {
		if f != nil {
			_ = f.Close()
		}
		if err != nil {
			_ = os.Remove(name)
		}
	}()
	last := int64(0)
	s := &fileSink{f: f, h: sha256.New(), limit: maxTarballSize, progress: func(done int64) {
		if done-last >= progressStep {
			last = done
			progress(Progress{Phase: PhaseDownload, File: loc, Done: done})
		}
	}}
	if err := m.get(ctx, loc, s); err != nil {
		return err
	}
	progress(Progress{Phase: PhaseDownload, File: loc, Done: s.n, Total: s.n})
	if got := hex.EncodeToString(s.h.Sum(nil)); got != sum {
		return fmt.Errorf("%s: %w: got %s, want %s: the download or the mirror's copy is damaged or was tampered with; try again or use another mirror",
			loc, kernel.ErrHashMismatch, got, sum)
	}
	if err := f.Sync(); err != nil {
		return err
	}
	err = f.Close()
	f = nil
	if err != nil {
		return err
	}
	return os.Rename(name, c.tarball(sum))
}

// errReader remembers the first error of a reader other than EOF, so that
// it can be told apart from errors of what reads from it.
type errReader struct {
	r   io.Reader
	err error
	// progress counts the bytes read.
	n, next  int64
	progress func(n int64)
}

func (e *errReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	e.n += int64(n)
	if e.n >= e.next {
		e.next = e.n + progressStep
		e.progress(e.n)
	}
	if err != nil && !errors.Is(err, io.EOF) && e.err == nil {
		e.err = err
	}
	return n, err
}

// errWriter remembers the first error of a writer.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(p []byte) (int, error) {
	n, err := e.w.Write(p)
	if err != nil && e.err == nil {
		e.err = err
	}
	return n, err
}

// badTarball explains a tarball that matched its signed digest but does
// not decode.
func badTarball(loc string, err error) error {
	if errors.Is(err, kernel.ErrXZTruncated) || errors.Is(err, kernel.ErrXZCorrupt) {
		return fmt.Errorf("%s: %w: the file the signed sha256sums.asc lists is itself bad; report it to the mirror and use another one", loc, err)
	}
	return fmt.Errorf("read %s: %w", loc, err)
}

// extract decompresses the cached tarball once, feeding the plain tar to
// the signature check and to the extractor, and moves the tree into the
// cache only if the signature is good. It returns the tree's directory.
func extract(ctx context.Context, c cache, files kernel.SourceFiles, sum string, verifier *kernel.DetachedVerifier, o Options) (_ string, err error) {
	f, err := os.Open(c.tarball(sum))
	if err != nil {
		return "", err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return "", err
	}
	tmp, err := os.MkdirTemp(c.tmp(), sum+".tree-*")
	if err != nil {
		return "", err
	}
	defer func() {
		if err != nil {
			_ = os.RemoveAll(tmp)
		}
	}()
	// MkdirTemp makes it 0700; the tree is as readable as the cache.
	if err := os.Chmod(tmp, 0o755); err != nil {
		return "", err
	}
	xr, err := kernel.NewXZReader(f, st.Size(), kernel.XZReaderConfig{Workers: o.Workers})
	if err != nil {
		return "", badTarball(files.Tarball, err)
	}
	defer xr.Close()
	total := xr.Index().Size
	src := &errReader{r: xr, progress: func(n int64) {
		o.Progress(Progress{Phase: PhaseExtract, File: files.Tarball, Done: n, Total: total})
	}}
	sig := &errWriter{w: verifier}
	tee := io.TeeReader(src, sig)
	_, xerr := oci.ExtractLayer(ctx, tee, tmp, oci.WithOwnership(false), oci.WithDevices(false))
	if xerr == nil {
		// The signature covers the whole .tar, past the end-of-archive
		// blocks the extractor stops at.
		_, xerr = io.Copy(io.Discard, tee)
	}
	// Blame the decoder first, then the signature, then the extractor:
	// the extractor's errors may only echo theirs. The signature is only
	// judged over all the data, or when its check stopped by itself.
	if src.err != nil {
		return "", badTarball(files.Tarball, src.err)
	}
	if xerr == nil || sig.err != nil {
		if _, err := verifier.Verify(); err != nil {
			return "", err
		}
	}
	if xerr != nil {
		return "", fmt.Errorf("extract %s: %w", files.Tarball, xerr)
	}
	o.Progress(Progress{Phase: PhaseExtract, File: files.Tarball, Done: total, Total: total})
	top, err := topDir(tmp)
	if err != nil {
		return "", err
	}
	if err := os.Rename(tmp, c.tree(sum)); err != nil {
		return "", err
	}
	return filepath.Join(c.tree(sum), top), nil
}
