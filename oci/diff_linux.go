package oci

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"time"

	"golang.org/x/sys/unix"
)

// DiffOptions controls WriteDiffTar.
type DiffOptions struct {
	// Epoch is the modification time of every entry.
	Epoch time.Time
	// MapOwner turns a host uid/gid into the one to record. The default
	// records 0:0 for everything, which is right for a rootless run where
	// the sandbox mapped only the caller (to root).
	MapOwner func(uid, gid int) (int, int)
}

// WriteDiffTar writes the changes an overlayfs upper directory holds as an
// OCI layer tar: new and changed files with their modes (setuid bits
// included), owners as MapOwner says, whiteout files (.wh.<name>) for
// deletions, which overlayfs records as 0:0 character devices, and
// .wh..wh..opq markers for directories overlayfs made opaque (the
// trusted.overlay.opaque or, in a user namespace, user.overlay.opaque
// xattr). Entries come in sorted order, every mtime is Epoch and a file
// linked several times is stored once, then as hard links, so the same
// upper dir gives the same bytes.
func WriteDiffTar(w io.Writer, upper string, opts DiffOptions) error {
	if opts.MapOwner == nil {
		opts.MapOwner = func(int, int) (int, int) { return 0, 0 }
	}
	d := &diffWriter{tw: tar.NewWriter(w), upper: upper, o: opts, links: map[[2]uint64]string{}, buf: make([]byte, 256<<10)}
	if err := d.dir("."); err != nil {
		return fmt.Errorf("write diff of %s: %w", upper, err)
	}
	if err := d.tw.Close(); err != nil {
		return fmt.Errorf("write diff of %s: %w", upper, err)
	}
	return nil
}

type diffWriter struct {
	tw    *tar.Writer
	upper string
	o     DiffOptions
	links map[[2]uint64]string // (dev, ino) -> first name, for hard links
	buf   []byte
}

func (d *diffWriter) header(name string, st *unix.Stat_t, typ byte) *tar.Header {
	uid, gid := d.o.MapOwner(int(st.Uid), int(st.Gid))
	return &tar.Header{
		Typeflag: typ,
		Name:     name,
		Mode:     int64(st.Mode & 0o7777),
		Uid:      uid,
		Gid:      gid,
		ModTime:  d.o.Epoch.UTC().Truncate(time.Second),
		Format:   tar.FormatPAX,
	}
}

// dir writes the entries of one directory, sorted by name, recursing.
func (d *diffWriter) dir(rel string) error {
	f, err := os.Open(filepath.Join(d.upper, rel))
	if err != nil {
		return err
	}
	names, err := f.Readdirnames(-1)
	f.Close()
	if err != nil {
		return err
	}
	sort.Strings(names)
	for _, name := range names {
		child := name
		if rel != "." {
			child = rel + "/" + name
		}
		if err := d.entry(child); err != nil {
			return fmt.Errorf("%s: %w", child, err)
		}
	}
	return nil
}

func (d *diffWriter) entry(rel string) error {
	p := filepath.Join(d.upper, rel)
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		return &os.PathError{Op: "lstat", Path: p, Err: err}
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		h := d.header(rel+"/", &st, tar.TypeDir)
		if err := d.tw.WriteHeader(h); err != nil {
			return err
		}
		if isOpaque(p) {
			oh := d.header(rel+"/.wh..wh..opq", &st, tar.TypeReg)
			oh.Mode, oh.Size = 0o644, 0
			if err := d.tw.WriteHeader(oh); err != nil {
				return err
			}
		}
		return d.dir(rel)
	case unix.S_IFCHR:
		if st.Rdev == 0 { // an overlayfs whiteout
			h := d.header(whiteoutName(rel), &st, tar.TypeReg)
			h.Mode, h.Uid, h.Gid = 0o644, 0, 0
			return d.tw.WriteHeader(h)
		}
		h := d.header(rel, &st, tar.TypeChar)
		h.Devmajor, h.Devminor = int64(unix.Major(st.Rdev)), int64(unix.Minor(st.Rdev))
		return d.tw.WriteHeader(h)
	case unix.S_IFBLK:
		h := d.header(rel, &st, tar.TypeBlock)
		h.Devmajor, h.Devminor = int64(unix.Major(st.Rdev)), int64(unix.Minor(st.Rdev))
		return d.tw.WriteHeader(h)
	case unix.S_IFIFO:
		return d.tw.WriteHeader(d.header(rel, &st, tar.TypeFifo))
	case unix.S_IFLNK:
		target, err := os.Readlink(p)
		if err != nil {
			return err
		}
		h := d.header(rel, &st, tar.TypeSymlink)
		h.Linkname = target
		return d.tw.WriteHeader(h)
	case unix.S_IFREG:
		if st.Nlink > 1 {
			key := [2]uint64{uint64(st.Dev), st.Ino}
			if first, ok := d.links[key]; ok {
				h := d.header(rel, &st, tar.TypeLink)
				h.Linkname = first
				return d.tw.WriteHeader(h)
			}
			d.links[key] = rel
		}
		h := d.header(rel, &st, tar.TypeReg)
		h.Size = st.Size
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := d.tw.WriteHeader(h); err != nil {
			return err
		}
		n, err := io.CopyBuffer(d.tw, f, d.buf)
		if err != nil {
			return err
		}
		if n != h.Size {
			return errors.New("changed size while being archived")
		}
		return nil
	case unix.S_IFSOCK:
		return nil // sockets are not part of an image
	}
	return fmt.Errorf("unsupported file type %v", fs.FileMode(st.Mode))
}

func whiteoutName(rel string) string {
	dir, base := filepath.Split(rel)
	return dir + ".wh." + base
}

// isOpaque reports the overlayfs opaque-directory mark, in the trusted.*
// namespace (real root) or the user.* one (userxattr, in a user namespace).
func isOpaque(p string) bool {
	buf := make([]byte, 4)
	for _, attr := range []string{"user.overlay.opaque", "trusted.overlay.opaque"} {
		if n, err := unix.Lgetxattr(p, attr, buf); err == nil && n == 1 && buf[0] == 'y' {
			return true
		}
	}
	return false
}
