// This file holds the portable half of the extractor (tar reading,
// whiteouts, hard links, the checks on names and link targets); it is long
// because those rules only make sense read together.

package oci

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// ErrUnsafePath is wrapped by the error Extract and ExtractLayer return when
// a layer entry tries to reach outside the extraction root: a name or hard
// link target whose ".." components climb above the root, a whiteout naming
// "." or "..", an entry that would replace the root itself, or a hard link to
// something other than a regular file. The whole layer is refused: an
// archive that does this was not produced by an honest image builder.
//
// Absolute names are not unsafe: like docker and containerd, the extractor
// reads "/etc/passwd" as "<root>/etc/passwd". Symlink targets are never
// checked either; they are stored as written and resolved inside the root,
// as if the root were a chroot, whenever a later entry goes through them.
var ErrUnsafePath = errors.New("unsafe path in layer")

// ErrDiffIDMismatch is returned (wrapped) when a layer's uncompressed
// contents do not hash to the diff_id its image config gives for it.
var ErrDiffIDMismatch = errors.New("layer does not match its diff_id")

// errSparse refuses GNU sparse entries: archive/tar expands their holes into
// zeros, so a few hundred bytes of header could make us write terabytes.
// Image builders (docker, buildkit, ggcr) never write sparse entries.
var errSparse = fmt.Errorf("sparse files: %w", errors.ErrUnsupported)

// ExtractStats reports what an extraction did. Counts are per entry written,
// summed over all layers.
type ExtractStats struct {
	Files, Dirs, Symlinks, Hardlinks int
	// Whiteouts counts the entries removed by .wh. files and opaque dirs.
	Whiteouts int
	// SkippedDevices counts the character and block device nodes not created
	// because devices are off (the default when not root, see WithDevices).
	SkippedDevices int
	// Devices counts the device nodes and FIFOs created. FIFOs need no
	// privilege and are always created.
	Devices int
	// Bytes is the size of the regular file contents written.
	Bytes int64
}

func (s *ExtractStats) add(o ExtractStats) {
	s.Files += o.Files
	s.Dirs += o.Dirs
	s.Symlinks += o.Symlinks
	s.Hardlinks += o.Hardlinks
	s.Whiteouts += o.Whiteouts
	s.SkippedDevices += o.SkippedDevices
	s.Devices += o.Devices
	s.Bytes += o.Bytes
}

// ExtractOption configures Extract and ExtractLayer.
type ExtractOption func(*extractOptions) error

type extractOptions struct {
	// ownership applies the uid/gid of the headers, and keeps the setuid,
	// setgid and sticky bits, which are stripped otherwise.
	ownership bool
	devices   bool
	progress  func(i, n int)
	// link makes hard links (linkat without flags); nil means the real
	// syscall. Tests swap it to exercise the copy fallback.
	link func(oldDir int, oldName string, newDir int, newName string) error
	// rootless is true unless the process is real root: directories then
	// keep owner rwx (a 0555 directory becomes 0755), so that later layers
	// can write into them and the user can remove the tree, from inside or
	// outside its user namespace. Real root needs neither.
	rootless bool
}

func makeExtractOptions(opts []ExtractOption) (extractOptions, error) {
	root := runningAsRealRoot()
	o := extractOptions{
		ownership: root,
		devices:   root,
		rootless:  !root,
	}
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return extractOptions{}, err
		}
	}
	return o, nil
}

// WithOwnership sets whether the uid and gid of each entry are applied, and
// whether the setuid, setgid and sticky bits are kept. When ownership is off
// every entry belongs to the extracting user and those three bits are
// stripped, so that no setuid file owned by that user ever appears.
//
// The default is on only for real root: effective uid 0 in the initial user
// namespace, where any uid can be set. Inside a user namespace (even as its
// root) the default is off; pass WithOwnership(true) when the namespace maps
// enough ids for the image, and expect an error for ids it does not map.
func WithOwnership(preserve bool) ExtractOption {
	return func(o *extractOptions) error {
		o.ownership = preserve
		return nil
	}
}

// WithDevices sets whether character and block device nodes are created.
// When off they are skipped and counted in ExtractStats.SkippedDevices.
// FIFOs are not device nodes here: creating one needs no privilege, so they
// are always created.
//
// The default is on only for real root (see WithOwnership); mknod of a
// device fails with EPERM in a user namespace.
func WithDevices(create bool) ExtractOption {
	return func(o *extractOptions) error {
		o.devices = create
		return nil
	}
}

// WithLayerProgress makes Extract call fn(i, n) after layer i of n (i counts
// from 1) has been applied. It is called from the goroutine running Extract.
// ExtractLayer does not call it. The default is no callback; a nil fn is an
// error.
func WithLayerProgress(fn func(i, n int)) ExtractOption {
	return func(o *extractOptions) error {
		if fn == nil {
			return errors.New("layer progress callback is nil")
		}
		o.progress = fn
		return nil
	}
}

// withLinkFunc replaces linkat(2) for hard links, for tests.
func withLinkFunc(link func(oldDir int, oldName string, newDir int, newName string) error) ExtractOption {
	return func(o *extractOptions) error {
		o.link = link
		return nil
	}
}

// extractCopyBuffer is the size of the buffer file contents go through, from
// the tar stream to write(2). Large enough that a big file costs few
// syscalls; one buffer serves a whole Extract.
const extractCopyBuffer = 1 << 20

// layerApplier applies layers to one root. The Linux implementation lives
// in extract_linux.go; other systems get an error from newLayerApplier.
type layerApplier interface {
	apply(ctx context.Context, r io.Reader) (ExtractStats, error)
	Close() error
}

// Extract applies the layers of img, bottom to top, into dir (created if
// missing), following the OCI rules for whiteouts and opaque directories. It
// never creates, changes or removes anything outside dir: see ErrUnsafePath
// for what makes it refuse a layer. Layer blobs are decompressed here (gzip,
// zstd or none, detected from the stream) and streamed: a layer is never
// held in memory. On error, dir holds what was extracted so far.
//
// Modes, owners and times come from the headers, with these exceptions
// unless the process is real root: owners are ignored and setuid, setgid and
// sticky bits stripped (see WithOwnership), device nodes are skipped (see
// WithDevices), and every directory gets owner rwx added to its mode (a 0555
// directory becomes 0755), so that later layers can write into it and the
// same user can remove the tree with os.RemoveAll or rm -rf. Directory modes
// and times are set once a layer is complete, so a read-only directory can
// still be filled by its own layer.
//
// Each layer's blob is read to its end, so that a layer whose Compressed
// reader verifies the digest (as remote layers do) reports a mismatch.
func Extract(ctx context.Context, img v1.Image, dir string, opts ...ExtractOption) (_ ExtractStats, err error) {
	var stats ExtractStats
	o, err := makeExtractOptions(opts)
	if err != nil {
		return stats, fmt.Errorf("extract: %w", err)
	}
	layers, err := img.Layers()
	if err != nil {
		return stats, fmt.Errorf("extract: list layers: %w", err)
	}
	a, err := newLayerApplier(dir, &o, make([]byte, extractCopyBuffer))
	if err != nil {
		return stats, fmt.Errorf("extract: %w", err)
	}
	defer func() {
		if cerr := a.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("extract: %w", cerr)
		}
	}()
	for i, l := range layers {
		s, err := applyImageLayer(ctx, a, l)
		stats.add(s)
		if err != nil {
			d, derr := l.Digest()
			if derr != nil {
				return stats, fmt.Errorf("extract layer %d of %d: %w", i+1, len(layers), err)
			}
			return stats, fmt.Errorf("extract layer %d of %d (%s): %w", i+1, len(layers), d, err)
		}
		if o.progress != nil {
			o.progress(i+1, len(layers))
		}
	}
	return stats, nil
}

// ExtractLayer applies one uncompressed tar stream (one layer) into dir
// (created if missing), with the same rules as Extract. It reads r up to the
// end of the tar archive, not necessarily to EOF.
func ExtractLayer(ctx context.Context, r io.Reader, dir string, opts ...ExtractOption) (_ ExtractStats, err error) {
	o, err := makeExtractOptions(opts)
	if err != nil {
		return ExtractStats{}, fmt.Errorf("extract: %w", err)
	}
	// The copy buffer is allocated on the first file with contents.
	a, err := newLayerApplier(dir, &o, nil)
	if err != nil {
		return ExtractStats{}, fmt.Errorf("extract: %w", err)
	}
	defer func() {
		if cerr := a.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("extract: %w", cerr)
		}
	}()
	// A bufio.Reader turns the 512-byte header reads of archive/tar into few
	// large reads of r.
	return a.apply(ctx, bufio.NewReaderSize(r, 64<<10))
}

// Magic numbers of the compressions Decompress knows.
var (
	gzipMagic = []byte{0x1f, 0x8b}
	zstdMagic = []byte{0x28, 0xb5, 0x2f, 0xfd}
	xzMagic   = []byte{0xfd, '7', 'z', 'X', 'Z', 0x00}
)

// Decompress reads r as it is, or through gzip, zstd or xz when it starts
// with their magic number: a layer blob (whatever its media type says), a
// bundle archive, a tar inside an image. close releases the decoder. The
// decoders stream: gzip holds a 32 KiB window, zstd at most the window its
// frames ask for (klauspost/compress refuses more than 512 MiB), xz one
// dictionary of the size the file asks for (64 MiB for xz -9).
func Decompress(r io.Reader) (_ io.Reader, close func(), _ error) {
	br, ok := r.(*bufio.Reader)
	if !ok || br.Size() < len(xzMagic) {
		br = bufio.NewReaderSize(r, 64<<10)
	}
	magic, err := br.Peek(len(xzMagic))
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, nil, fmt.Errorf("read: %w", err)
	}
	switch {
	case bytes.HasPrefix(magic, gzipMagic):
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, nil, fmt.Errorf("gzip: %w", err)
		}
		return zr, func() { _ = zr.Close() }, nil
	case bytes.HasPrefix(magic, zstdMagic):
		zr, err := zstd.NewReader(br)
		if err != nil {
			return nil, nil, fmt.Errorf("zstd: %w", err)
		}
		return zr, zr.Close, nil
	case bytes.HasPrefix(magic, xzMagic):
		zr, err := xz.NewReader(br)
		if err != nil {
			return nil, nil, fmt.Errorf("xz: %w", err)
		}
		return zr, func() {}, nil
	}
	return br, func() {}, nil
}

// ExtractArchive is ExtractLayer for a tar that may be compressed (gzip,
// zstd or xz, sniffed from its first bytes: Decompress).
func ExtractArchive(ctx context.Context, r io.Reader, dir string, opts ...ExtractOption) (ExtractStats, error) {
	src, closeDec, err := Decompress(bufio.NewReaderSize(r, 256<<10))
	if err != nil {
		return ExtractStats{}, fmt.Errorf("extract: %w", err)
	}
	defer closeDec()
	return ExtractLayer(ctx, src, dir, opts...)
}

// applyImageLayer decompresses one layer blob and applies it. The
// compression is sniffed from the blob rather than taken from the media
// type, which some registries and tools get wrong. We decompress with
// klauspost/compress, which is faster than the standard library that
// v1.Layer.Uncompressed uses, and in a goroutine of its own (see
// readahead), so that inflating and writing files use two cores.
func applyImageLayer(ctx context.Context, a layerApplier, l v1.Layer) (_ ExtractStats, err error) {
	rc, err := l.Compressed()
	if err != nil {
		return ExtractStats{}, fmt.Errorf("open layer: %w", err)
	}
	defer func() {
		if cerr := rc.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("close layer: %w", cerr)
		}
	}()
	br := bufio.NewReaderSize(rc, 256<<10)
	src, closeDec, err := Decompress(br)
	if err != nil {
		return ExtractStats{}, fmt.Errorf("layer: %w", err)
	}
	defer closeDec()
	// The uncompressed stream is hashed as it is read, in the readahead's
	// goroutine, and checked against the config's diff_id at its end.
	sum := sha256.New()
	ra := newReadahead(io.TeeReader(src, sum), 512<<10, 8)
	defer ra.Close()
	stats, err := a.apply(ctx, ra)
	if err != nil {
		return stats, err
	}
	// Read the rest of the blob: the end of the tar stream, the gzip
	// trailer with its CRC, and whatever a verifying reader needs to see
	// before it compares digests.
	if _, err := io.Copy(io.Discard, ra); err != nil {
		return stats, fmt.Errorf("read layer: %w", err)
	}
	if _, err := io.Copy(io.Discard, br); err != nil {
		return stats, fmt.Errorf("read layer: %w", err)
	}
	want, err := l.DiffID()
	if err != nil {
		return stats, fmt.Errorf("layer diff_id: %w", err)
	}
	if got := hex.EncodeToString(sum.Sum(nil)); want.Algorithm != "sha256" || want.Hex != got {
		return stats, fmt.Errorf("%w: the config says %s, the layer is sha256:%s", ErrDiffIDMismatch, want, got)
	}
	return stats, nil
}

// readahead reads r in a goroutine of its own into a few fixed chunks, so
// that the reader (decompression, typically) runs while the consumer writes
// files. Unlike io.Pipe, whose Write waits for the reader, the producer runs
// ahead by up to all chunks. Close must be called, and waits for the
// goroutine to end.
type readahead struct {
	full chan []byte // chunks with data, in order; closed after the last
	free chan []byte // chunks to refill
	stop chan struct{}
	done chan struct{}
	err  error  // the producer's final error, valid once full is closed
	cur  []byte // unread part of last
	last []byte // the chunk being read, to return to free
}

func newReadahead(r io.Reader, chunk, n int) *readahead {
	ra := &readahead{
		full: make(chan []byte, n),
		free: make(chan []byte, n),
		stop: make(chan struct{}),
		done: make(chan struct{}),
	}
	for range n {
		ra.free <- make([]byte, chunk)
	}
	go ra.fill(r)
	return ra
}

func (ra *readahead) fill(r io.Reader) {
	defer close(ra.done)
	defer close(ra.full)
	for {
		var b []byte
		select {
		case b = <-ra.free:
		case <-ra.stop:
			ra.err = errors.New("read after close")
			return
		}
		n, err := io.ReadFull(r, b[:cap(b)])
		if n > 0 {
			// Never blocks: full holds as many chunks as exist.
			ra.full <- b[:n]
		}
		if err != nil {
			if errors.Is(err, io.ErrUnexpectedEOF) {
				err = io.EOF
			}
			ra.err = err
			return
		}
	}
}

func (ra *readahead) Read(p []byte) (int, error) {
	for len(ra.cur) == 0 {
		if ra.last != nil {
			ra.free <- ra.last[:cap(ra.last)]
			ra.last = nil
		}
		b, ok := <-ra.full
		if !ok {
			return 0, ra.err
		}
		ra.cur, ra.last = b, b
	}
	n := copy(p, ra.cur)
	ra.cur = ra.cur[n:]
	return n, nil
}

// Close stops the producer and waits for it. If the producer is inside a
// Read of the source, Close waits for that Read to return.
func (ra *readahead) Close() {
	select {
	case <-ra.stop:
	default:
		close(ra.stop)
	}
	<-ra.done
}

// cleanEntryName turns a tar entry name into a slash-separated path relative
// to the root, without "." or ".." components or a trailing slash; "" is the
// root itself. A leading "/" is dropped (absolute names are read relative to
// the root, as docker does). ".." components are applied lexically, and one
// that would climb above the root makes the name unsafe: we refuse it rather
// than clamp it, since no honest layer contains one.
func cleanEntryName(name string) (string, error) {
	if strings.IndexByte(name, 0) >= 0 {
		return "", fmt.Errorf("%w: NUL byte in name", ErrUnsafePath)
	}
	s := strings.TrimLeft(name, "/")
	for strings.HasPrefix(s, "./") {
		s = strings.TrimLeft(s[2:], "/")
	}
	s = strings.TrimRight(s, "/")
	if s == "." {
		return "", nil
	}
	if nameIsClean(s) {
		return s, nil
	}
	var parts []string
	for _, c := range strings.Split(s, "/") {
		switch c {
		case "", ".":
		case "..":
			if len(parts) == 0 {
				return "", fmt.Errorf("%w: %q climbs above the root", ErrUnsafePath, shortName(name))
			}
			parts = parts[:len(parts)-1]
		default:
			parts = append(parts, c)
		}
	}
	return strings.Join(parts, "/"), nil
}

// nameIsClean reports whether s (no leading or trailing slash) has no empty,
// "." or ".." component: the common case, which needs no allocation.
func nameIsClean(s string) bool {
	for s != "" {
		c := s
		if i := strings.IndexByte(s, '/'); i >= 0 {
			c, s = s[:i], s[i+1:]
		} else {
			s = ""
		}
		if c == "" || c == "." || c == ".." {
			return false
		}
	}
	return true
}

// splitEntryName splits a cleaned, non-root name into its parent ("" for the
// root) and its last component.
func splitEntryName(rel string) (parent, base string) {
	if i := strings.LastIndexByte(rel, '/'); i >= 0 {
		return rel[:i], rel[i+1:]
	}
	return "", rel
}

// OCI whiteout names (image-spec layer.md).
const (
	whiteoutPrefix = ".wh."
	whiteoutMeta   = ".wh..wh." // aufs metadata (.wh..wh.plnk, ...): ignored
	whiteoutOpaque = ".wh..wh..opq"
)

// whiteoutKind classifies the last component of an entry name.
type whiteoutKind int

const (
	notWhiteout whiteoutKind = iota
	whiteoutFile
	whiteoutOpaqueDir
	whiteoutIgnored
)

// parseWhiteout classifies base; for whiteoutFile it returns the name the
// whiteout removes. A whiteout of "", "." or ".." would remove the directory
// it sits in or its parent, and is unsafe.
func parseWhiteout(base string) (whiteoutKind, string, error) {
	switch {
	case !strings.HasPrefix(base, whiteoutPrefix):
		return notWhiteout, "", nil
	case base == whiteoutOpaque:
		return whiteoutOpaqueDir, "", nil
	case strings.HasPrefix(base, whiteoutMeta):
		return whiteoutIgnored, "", nil
	}
	target := base[len(whiteoutPrefix):]
	if target == "" || target == "." || target == ".." {
		return whiteoutFile, "", fmt.Errorf("%w: whiteout %q", ErrUnsafePath, shortName(base))
	}
	return whiteoutFile, target, nil
}

// initialIDMap reports whether data, the contents of /proc/self/uid_map or
// gid_map, is the identity map of the initial user namespace, where root can
// chown to any id and create device nodes.
func initialIDMap(data string) bool {
	f := strings.Fields(data)
	return len(f) == 3 && f[0] == "0" && f[1] == "0" && f[2] == "4294967295"
}

// maxNameInError is how much of an entry name an error message shows.
const maxNameInError = 160

// shortName returns name for an error message: whole when short, else its
// first and last bytes around a count of what was left out, so a hostile
// 10,000-byte name cannot make a message of tens of kilobytes.
func shortName(name string) string {
	if len(name) <= maxNameInError {
		return name
	}
	const keep = maxNameInError / 2
	return fmt.Sprintf("%s...(%d bytes)...%s", name[:keep], len(name)-2*keep, name[len(name)-keep:])
}

// pathError is an os.PathError naming the entry by its short name.
func pathError(op, path string, err error) error {
	return &os.PathError{Op: op, Path: shortName(path), Err: err}
}
