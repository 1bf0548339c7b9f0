package oci

import (
	"archive/tar"
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// DefaultGzipLevel is the gzip level of every layer lkbuild writes. It is
// fixed, with the compressor and its chunk size (chunkedGzip), so that the
// same files give the same layer digest on every machine.
const DefaultGzipLevel = 6

// TarOptions controls WriteTar.
type TarOptions struct {
	// Epoch is the modification time of every entry (SOURCE_DATE_EPOCH).
	Epoch time.Time
	// Prefix is prepended to every entry name, e.g. "./" for a tar rooted
	// at "." or "usr/src/linux-headers-6.6.71-linuxkit/". The directories
	// it names are written as entries too.
	Prefix string
	// Include, when set, is asked about every file and directory below
	// the root; returning false leaves the entry out (and, for a
	// directory, everything under it).
	Include func(name string, d fs.DirEntry) bool
	// BeforeEntry, when set, is called with each entry's tar name before
	// its header is written, once everything before it is in w (the
	// previous file's padding included): a caller that splits the stream
	// into independently compressed pieces cuts there.
	BeforeEntry func(tarName string) error
}

// WriteTar writes the tree in fsys as a tar stream that depends only on the
// names, contents, file types and executable bits of its files: entries
// appear in lexical walk order, with uid/gid 0, no user or group names,
// mtime Epoch, modes 0755 for directories and executables, 0644 for other
// files, 0777 for symlinks, and no access/change times or extended
// attributes. Device nodes, sockets and pipes are refused. Hard links are
// written as separate regular files.
//
// Symlinks are stored as they are; fsys must implement fs.ReadLinkFS
// (os.DirFS does) for trees that hold any.
func WriteTar(w io.Writer, fsys fs.FS, opts TarOptions) error {
	tw := tar.NewWriter(w)
	tw2 := &tarWriter{tw: tw, epoch: opts.Epoch.UTC().Truncate(time.Second), buf: make([]byte, 256<<10), before: opts.BeforeEntry}
	if err := tw2.prefixDirs(opts.Prefix); err != nil {
		return err
	}
	err := fs.WalkDir(fsys, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if name == "." {
			return nil
		}
		if opts.Include != nil && !opts.Include(name, d) {
			if d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		return tw2.add(fsys, name, opts.Prefix+name, d)
	})
	if err != nil {
		return fmt.Errorf("write tar: %w", err)
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("write tar: %w", err)
	}
	return nil
}

type tarWriter struct {
	tw     *tar.Writer
	epoch  time.Time
	buf    []byte
	before func(string) error
}

// writeHeader writes h, first telling BeforeEntry.
func (t *tarWriter) writeHeader(h *tar.Header) error {
	if t.before != nil {
		if err := t.tw.Flush(); err != nil {
			return err
		}
		if err := t.before(h.Name); err != nil {
			return err
		}
	}
	return t.tw.WriteHeader(h)
}

func (t *tarWriter) header(name string, typ byte, mode int64) *tar.Header {
	return &tar.Header{
		Typeflag: typ,
		Name:     name,
		Mode:     mode,
		ModTime:  t.epoch,
		Format:   tar.FormatPAX,
	}
}

// prefixDirs writes the directories that make up prefix, e.g. "usr/",
// "usr/src/" for "usr/src/". A "./" prefix gives the entry "./".
func (t *tarWriter) prefixDirs(prefix string) error {
	if prefix == "" {
		return nil
	}
	if prefix[len(prefix)-1] != '/' {
		return fmt.Errorf("tar prefix %q: must end in /", prefix)
	}
	var dirs []string
	for p := path.Clean(prefix); p != "." && p != "/"; p = path.Dir(p) {
		dirs = append(dirs, p)
	}
	if path.Clean(prefix) == "." {
		dirs = []string{"."}
	}
	for i := len(dirs) - 1; i >= 0; i-- {
		if err := t.writeHeader(t.header(dirs[i]+"/", tar.TypeDir, 0o755)); err != nil {
			return fmt.Errorf("write tar: %w", err)
		}
	}
	return nil
}

func (t *tarWriter) add(fsys fs.FS, name, tarName string, d fs.DirEntry) error {
	switch typ := d.Type(); {
	case typ.IsDir():
		return t.writeHeader(t.header(tarName+"/", tar.TypeDir, 0o755))
	case typ&fs.ModeSymlink != 0:
		target, err := fs.ReadLink(fsys, name)
		if err != nil {
			return err
		}
		h := t.header(tarName, tar.TypeSymlink, 0o777)
		h.Linkname = target
		return t.writeHeader(h)
	case typ.IsRegular():
		info, err := d.Info()
		if err != nil {
			return err
		}
		mode := int64(0o644)
		if info.Mode().Perm()&0o111 != 0 {
			mode = 0o755
		}
		f, err := fsys.Open(name)
		if err != nil {
			return err
		}
		defer f.Close()
		h := t.header(tarName, tar.TypeReg, mode)
		h.Size = info.Size()
		if err := t.writeHeader(h); err != nil {
			return err
		}
		n, err := io.CopyBuffer(t.tw, f, t.buf)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		if n != h.Size {
			return fmt.Errorf("%s: changed size while being archived", name)
		}
		return nil
	default:
		return fmt.Errorf("%s: unsupported file type %v", name, typ)
	}
}

// WriteLayer runs write to produce an uncompressed tar stream, compresses
// it with gzip at DefaultGzipLevel, on up to maxGzipWorkers CPUs, straight
// into the store and returns the layer. Nothing is held in memory but
// buffers; on error nothing is left in the store.
func (s *Store) WriteLayer(write func(io.Writer) error) (v1.Layer, error) {
	bw, err := s.newBlobWriter()
	if err != nil {
		return nil, err
	}
	defer bw.abort()
	// The compressor writes whole compressed chunks: no buffer between.
	gz, err := newChunkedGzip(bw, DefaultGzipLevel, 0)
	if err != nil {
		return nil, fmt.Errorf("write layer: %w", err)
	}
	defer gz.abort()
	diff := sha256.New()
	buf := bufio.NewWriterSize(io.MultiWriter(gz, diff), 1<<20)
	if err := write(buf); err != nil {
		return nil, fmt.Errorf("write layer: %w", err)
	}
	if err := buf.Flush(); err != nil {
		return nil, fmt.Errorf("write layer: %w", err)
	}
	if err := gz.Close(); err != nil {
		return nil, fmt.Errorf("write layer: %w", err)
	}
	size := bw.n
	d, err := bw.commit(v1.Hash{})
	if err != nil {
		return nil, err
	}
	return s.Layer(d, size, v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(diff.Sum(nil))}, types.OCILayer)
}

// Layer returns the stored blob d as a layer with the given diff ID and
// media type.
func (s *Store) Layer(d v1.Hash, size int64, diffID v1.Hash, mt types.MediaType) (v1.Layer, error) {
	if !s.HasBlob(d, size) {
		return nil, fmt.Errorf("layer %s: %w", d, os.ErrNotExist)
	}
	l, err := partial.CompressedToLayer(&storeLayer{s: s, digest: d, size: size, diffID: diffID, mt: mt})
	if err != nil {
		return nil, fmt.Errorf("layer %s: %w", d, err)
	}
	return l, nil
}

// storeLayer is a compressed layer whose blob is in a Store.
type storeLayer struct {
	s      *Store
	digest v1.Hash
	size   int64
	diffID v1.Hash
	mt     types.MediaType
}

var _ partial.CompressedLayer = (*storeLayer)(nil)

func (l *storeLayer) Digest() (v1.Hash, error)            { return l.digest, nil }
func (l *storeLayer) DiffID() (v1.Hash, error)            { return l.diffID, nil }
func (l *storeLayer) Size() (int64, error)                { return l.size, nil }
func (l *storeLayer) MediaType() (types.MediaType, error) { return l.mt, nil }
func (l *storeLayer) Compressed() (io.ReadCloser, error) {
	f, err := os.Open(l.s.BlobPath(l.digest))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("layer %s missing from store: %w", l.digest, err)
	}
	return f, err
}
