//go:build linux

// This file is long because it is one security boundary: every entry of
// an untrusted layer is created relative to directory fds the extractor
// holds, and splitting the fd bookkeeping across files would hide how each
// path is kept inside the root.

package oci

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	securejoin "github.com/cyphar/filepath-securejoin"
	pathrs "github.com/cyphar/filepath-securejoin/pathrs-lite"
	"golang.org/x/sys/unix"
)

// runningAsRealRoot reports whether the process is root in the initial user
// namespace. If /proc is unreadable we trust the euid alone: a wrong guess
// then shows up as a loud chown or mknod error rather than as a rootfs with
// silently wrong owners.
func runningAsRealRoot() bool {
	if os.Geteuid() != 0 {
		return false
	}
	for _, f := range []string{"/proc/self/uid_map", "/proc/self/gid_map"} {
		data, err := os.ReadFile(f)
		if err == nil && !initialIDMap(string(data)) {
			return false
		}
	}
	return true
}

// Directory handles kept open between entries. Tar streams list a directory's
// children together, so a small cache of handles serves nearly every entry
// without a lookup; it is emptied when it grows past softMaxDirFds (at the
// start of an entry, when no handle is in use). Within one entry at most
// hardMaxDirFds stay open; deeper walks use handles closed as they go.
const (
	softMaxDirFds = 256
	hardMaxDirFds = 1024
)

// extractor applies layers to one root through directory file descriptors.
//
// How it stays inside the root: every entry is created, replaced or removed
// with an *at syscall on its last component (never a path with a slash),
// relative to a handle on its parent directory, with O_NOFOLLOW or
// AT_SYMLINK_NOFOLLOW. Parent handles come from dirFd, which walks real
// directories one component at a time with O_NOFOLLOW and hands anything
// else (a symlink in the path) to filepath-securejoin, whose pathrs-lite
// resolves it inside the root as in a chroot. So a symlink can be followed
// only as a parent directory and only into the root, and never as the last
// component: an entry whose name is an existing symlink replaces the
// symlink.
type extractor struct {
	o   *extractOptions
	buf []byte // for file contents; allocated when first needed if nil

	root     *os.File // O_PATH handle on the root
	rootFd   int
	rootPath string // the root with symlinks resolved, for SecureJoin

	// dirs maps a cleaned entry path ("" is the root, never stored) to an
	// open handle on the directory it resolves to. The lexical path is a
	// valid key because resolution only changes when something on the way
	// is removed or replaced: every removal of a directory or symlink sets
	// stale, and the whole cache is dropped before the next entry.
	dirs  map[string]int
	stale bool
	temps []int // handles for the current entry only

	// Per layer.
	seen    map[string]struct{} // paths this layer created, with their parents
	dirMeta map[string]dirMeta  // directory metadata applied at layer end
	stats   ExtractStats
}

var _ layerApplier = (*extractor)(nil)

// dirMeta is what finishDirs applies to a directory. Modes are set after the
// whole layer is written so that a 0555 directory can still be filled, and
// times last so that creating children does not change them.
type dirMeta struct {
	mode     uint32
	uid, gid int
	times    [2]unix.Timespec
}

func newLayerApplier(dir string, o *extractOptions, buf []byte) (layerApplier, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create root: %w", err)
	}
	rootPath, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return nil, fmt.Errorf("resolve root: %w", err)
	}
	if rootPath, err = filepath.Abs(rootPath); err != nil {
		return nil, fmt.Errorf("resolve root: %w", err)
	}
	root, err := os.OpenFile(rootPath, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open root: %w", err)
	}
	return &extractor{
		o:        o,
		buf:      buf,
		root:     root,
		rootFd:   int(root.Fd()),
		rootPath: rootPath,
		dirs:     make(map[string]int),
	}, nil
}

func (e *extractor) Close() error {
	e.closeTemps()
	e.dropDirs()
	return e.root.Close()
}

func (e *extractor) dropDirs() {
	for k, fd := range e.dirs {
		_ = unix.Close(fd)
		delete(e.dirs, k)
	}
}

func (e *extractor) closeTemps() {
	for _, fd := range e.temps {
		_ = unix.Close(fd)
	}
	e.temps = e.temps[:0]
}

func (e *extractor) apply(ctx context.Context, r io.Reader) (ExtractStats, error) {
	e.seen = make(map[string]struct{})
	e.dirMeta = make(map[string]dirMeta)
	e.stats = ExtractStats{}
	tr := tar.NewReader(r)
	for {
		if err := ctx.Err(); err != nil {
			return e.stats, err
		}
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return e.stats, fmt.Errorf("read tar: %w", err)
		}
		if err := e.entry(hdr, tr); err != nil {
			return e.stats, fmt.Errorf("extract %q: %w", shortName(hdr.Name), err)
		}
	}
	if err := e.finishDirs(); err != nil {
		return e.stats, err
	}
	return e.stats, nil
}

func (e *extractor) entry(hdr *tar.Header, r io.Reader) error {
	e.closeTemps()
	if e.stale || len(e.dirs) > softMaxDirFds {
		e.dropDirs()
		e.stale = false
	}
	if hdr.Typeflag == tar.TypeXGlobalHeader {
		return nil
	}
	rel, err := cleanEntryName(hdr.Name)
	if err != nil {
		return err
	}
	if isSparse(hdr) {
		return errSparse
	}
	if rel == "" {
		if hdr.Typeflag != tar.TypeDir {
			return fmt.Errorf("%w: entry would replace the root", ErrUnsafePath)
		}
		m, err := e.metaOf(hdr)
		if err != nil {
			return err
		}
		e.dirMeta[""] = m
		e.stats.Dirs++
		return nil
	}
	parent, base := splitEntryName(rel)
	kind, target, err := parseWhiteout(base)
	if err != nil {
		return err
	}
	switch kind {
	case whiteoutFile:
		return e.whiteout(parent, target)
	case whiteoutOpaqueDir:
		return e.opaque(parent)
	case whiteoutIgnored:
		return nil
	}
	switch hdr.Typeflag {
	case tar.TypeDir:
		err = e.mkdir(rel, parent, base, hdr)
	case tar.TypeReg:
		err = e.file(rel, parent, base, hdr, r)
	case tar.TypeSymlink:
		err = e.symlink(rel, parent, base, hdr)
	case tar.TypeLink:
		err = e.hardlink(rel, parent, base, hdr)
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		err = e.device(rel, parent, base, hdr)
	default:
		err = fmt.Errorf("entry type %q: %w", hdr.Typeflag, errors.ErrUnsupported)
	}
	if err != nil {
		return err
	}
	e.markSeen(rel)
	return nil
}

// isSparse reports a GNU sparse entry, old style or PAX.
func isSparse(hdr *tar.Header) bool {
	if hdr.Typeflag == tar.TypeGNUSparse {
		return true
	}
	for k := range hdr.PAXRecords {
		if strings.HasPrefix(k, "GNU.sparse.") {
			return true
		}
	}
	return false
}

// markSeen records that this layer has rel and, implicitly, its parents;
// whiteouts and opaque directories leave those alone (they hide only lower
// layers), whatever the order of the entries.
func (e *extractor) markSeen(rel string) {
	for rel != "" {
		if _, ok := e.seen[rel]; ok {
			return
		}
		e.seen[rel] = struct{}{}
		rel, _ = splitEntryName(rel)
	}
}

// dirFd returns a handle on the directory rel resolves to inside the root,
// creating missing directories (mode 0755) if create is set. The handle
// belongs to the extractor and stays valid until the next entry.
func (e *extractor) dirFd(rel string, create bool) (int, error) {
	if rel == "" {
		return e.rootFd, nil
	}
	if fd, ok := e.dirs[rel]; ok {
		return fd, nil
	}
	// Start from the deepest cached ancestor.
	cur, start := e.rootFd, 0
	for i := len(rel); ; {
		j := strings.LastIndexByte(rel[:i], '/')
		if j < 0 {
			break
		}
		if fd, ok := e.dirs[rel[:j]]; ok {
			cur, start = fd, j+1
			break
		}
		i = j
	}
	owned := false // cur is ours to close (not cached, not the root)
	release := func() {
		if owned {
			_ = unix.Close(cur)
		}
	}
	for start < len(rel) {
		end := strings.IndexByte(rel[start:], '/')
		if end < 0 {
			end = len(rel)
		} else {
			end += start
		}
		name := rel[start:end]
		next, err := openNoFollowDir(cur, name)
		if errors.Is(err, unix.ENOENT) && create {
			next, err = mkdirNoFollow(cur, name)
		}
		if errors.Is(err, unix.ENOTDIR) || errors.Is(err, unix.ELOOP) {
			// A symlink (or a non-directory) on the way.
			release()
			return e.resolveDir(rel, create)
		}
		if err != nil {
			release()
			return -1, pathError("openat", rel[:end], err)
		}
		release()
		cur, owned = next, false
		if len(e.dirs) < hardMaxDirFds {
			e.dirs[rel[:end]] = next
		} else {
			owned = true
		}
		start = end + 1
	}
	if owned {
		e.temps = append(e.temps, cur)
	}
	return cur, nil
}

// openNoFollowDir opens name in dir as a directory, failing with ENOTDIR
// (or ELOOP) if it is a symlink or anything else.
func openNoFollowDir(dir int, name string) (int, error) {
	for {
		fd, err := unix.Openat(dir, name, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if !errors.Is(err, unix.EINTR) {
			return fd, err
		}
	}
}

// mkdirNoFollow creates an implicit parent directory (one the layer uses
// without listing it) with mode 0755 whatever the umask, and opens it.
func mkdirNoFollow(dir int, name string) (int, error) {
	err := unix.Mkdirat(dir, name, 0o755)
	if errors.Is(err, unix.EEXIST) {
		return openNoFollowDir(dir, name) // created meanwhile: use as is
	}
	if err != nil {
		return -1, err
	}
	fd, err := unix.Openat(dir, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	if err := unix.Fchmod(fd, 0o755); err != nil {
		_ = unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

// resolveDir resolves a directory path that goes through a symlink. To
// create, SecureJoin first expands the symlinks lexically inside the root
// (a dangling symlink names a directory to create, as with docker), then
// pathrs-lite's MkdirAllHandle creates what is missing of that symlink-free
// path without ever leaving the root, even if the tree changes meanwhile.
// To look up, pathrs-lite's OpenatInRoot does the whole resolution.
func (e *extractor) resolveDir(rel string, create bool) (int, error) {
	var (
		h   *os.File
		err error
	)
	if create {
		var real, sub string
		real, err = securejoin.SecureJoin(e.rootPath, rel)
		if err == nil {
			sub, err = filepath.Rel(e.rootPath, real)
		}
		if err == nil {
			h, err = pathrs.MkdirAllHandle(e.root, sub, 0o755)
		}
	} else {
		h, err = pathrs.OpenatInRoot(e.root, rel)
	}
	if err != nil {
		return -1, fmt.Errorf("resolve %q in root: %w", shortName(rel), err)
	}
	defer h.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(h.Fd()), &st); err != nil {
		return -1, pathError("fstat", rel, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return -1, pathError("resolve", rel, unix.ENOTDIR)
	}
	fd, err := unix.FcntlInt(h.Fd(), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return -1, pathError("dup", rel, err)
	}
	if len(e.dirs) < hardMaxDirFds {
		e.dirs[rel] = fd
	} else {
		e.temps = append(e.temps, fd)
	}
	return fd, nil
}

// removeExisting removes whatever is at name in dir (a directory with its
// contents), so that an entry can take its place.
func (e *extractor) removeExisting(dir int, rel, name string) (bool, error) {
	var st unix.Stat_t
	if err := unix.Fstatat(dir, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return false, nil
		}
		return false, pathError("fstatat", rel, err)
	}
	if t := st.Mode & unix.S_IFMT; t == unix.S_IFDIR || t == unix.S_IFLNK {
		e.stale = true
	}
	if err := removeAllAt(dir, name); err != nil {
		return false, pathError("remove", rel, err)
	}
	return true, nil
}

// createAt runs create, and if the name exists, replaces it: removes it and
// runs create again.
func (e *extractor) createAt(dir int, rel, name string, create func() error) error {
	err := create()
	if errors.Is(err, unix.EEXIST) {
		if _, err := e.removeExisting(dir, rel, name); err != nil {
			return err
		}
		err = create()
	}
	return err
}

// removeAllAt removes name in dir, and its contents if it is a directory,
// without following symlinks.
func removeAllAt(dir int, name string) error {
	err := unix.Unlinkat(dir, name, 0)
	if err == nil || errors.Is(err, unix.ENOENT) {
		return nil
	}
	if !errors.Is(err, unix.EISDIR) {
		return err
	}
	for attempt := 0; ; attempt++ {
		fd, err := unix.Openat(dir, name, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		names, err := dirNames(fd)
		for _, n := range names {
			if err == nil {
				err = removeAllAt(fd, n)
			}
		}
		_ = unix.Close(fd)
		if err != nil {
			return err
		}
		err = unix.Unlinkat(dir, name, unix.AT_REMOVEDIR)
		if err == nil || errors.Is(err, unix.ENOENT) {
			return nil
		}
		// Retry if something appeared meanwhile.
		if !errors.Is(err, unix.ENOTEMPTY) || attempt == 3 {
			return err
		}
	}
}

// dirNames lists the directory open (possibly O_PATH) as dir.
func dirNames(dir int) ([]string, error) {
	fd, err := unix.Openat(dir, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), ".")
	names, err := f.Readdirnames(-1)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return names, err
}

// whiteout removes parent/name, left by a lower layer. A name this layer
// added stays: whiteouts apply to lower layers only.
func (e *extractor) whiteout(parent, name string) error {
	rel := name
	if parent != "" {
		rel = parent + "/" + name
	}
	if _, ok := e.seen[rel]; ok {
		return nil
	}
	dir, err := e.dirFd(parent, false)
	if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) {
		return nil // nothing there to remove
	}
	if err != nil {
		return err
	}
	removed, err := e.removeExisting(dir, rel, name)
	if removed {
		e.stats.Whiteouts++
	}
	return err
}

// opaque empties the directory rel of what lower layers put there, keeping
// what this layer added, before or after the marker.
func (e *extractor) opaque(rel string) error {
	dir, err := e.dirFd(rel, true)
	if err != nil {
		return err
	}
	e.markSeen(rel)
	return e.clearLower(dir, rel)
}

func (e *extractor) clearLower(dir int, rel string) error {
	names, err := dirNames(dir)
	if err != nil {
		return pathError("readdir", rel, err)
	}
	for _, name := range names {
		child := name
		if rel != "" {
			child = rel + "/" + name
		}
		if _, ok := e.seen[child]; !ok {
			removed, err := e.removeExisting(dir, child, name)
			if err != nil {
				return err
			}
			if removed {
				e.stats.Whiteouts++
			}
			continue
		}
		// Added or used by this layer: if it is a directory, lower layers
		// may still have entries in it.
		fd, err := openNoFollowDir(dir, name)
		if errors.Is(err, unix.ENOTDIR) || errors.Is(err, unix.ELOOP) || errors.Is(err, unix.ENOENT) {
			continue
		}
		if err != nil {
			return pathError("openat", child, err)
		}
		err = e.clearLower(fd, child)
		_ = unix.Close(fd)
		if err != nil {
			return err
		}
	}
	return nil
}

// metaOf checks the owner and computes the mode and times of an entry.
func (e *extractor) metaOf(hdr *tar.Header) (dirMeta, error) {
	const maxID = 1<<32 - 2 // (uid_t)-1 means "unchanged" to chown
	if hdr.Uid < 0 || hdr.Uid > maxID || hdr.Gid < 0 || hdr.Gid > maxID {
		return dirMeta{}, fmt.Errorf("invalid owner %d:%d", hdr.Uid, hdr.Gid)
	}
	mode := uint32(hdr.Mode) & 0o7777
	if !e.o.ownership {
		mode &= 0o777
	}
	atime := hdr.AccessTime
	if atime.IsZero() {
		atime = hdr.ModTime
	}
	return dirMeta{
		mode:  mode,
		uid:   hdr.Uid,
		gid:   hdr.Gid,
		times: [2]unix.Timespec{timespecOf(atime), timespecOf(hdr.ModTime)},
	}, nil
}

func timespecOf(t time.Time) unix.Timespec {
	return unix.Timespec{Sec: t.Unix(), Nsec: int64(t.Nanosecond())}
}

// setTimes sets the times of name in dir, not following a symlink.
func setTimes(dir int, rel, name string, m dirMeta) error {
	if err := unix.UtimesNanoAt(dir, name, m.times[:], unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return pathError("utimensat", rel, err)
	}
	return nil
}

func (e *extractor) mkdir(rel, parent, base string, hdr *tar.Header) error {
	m, err := e.metaOf(hdr)
	if err != nil {
		return err
	}
	dir, err := e.dirFd(parent, true)
	if err != nil {
		return err
	}
	// Owner-only until finishDirs sets the real mode.
	err = unix.Mkdirat(dir, base, 0o700)
	if errors.Is(err, unix.EEXIST) {
		var st unix.Stat_t
		if err := unix.Fstatat(dir, base, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return pathError("fstatat", rel, err)
		}
		if st.Mode&unix.S_IFMT == unix.S_IFDIR {
			err = nil // merge with the existing directory
		} else {
			err = e.createAt(dir, rel, base, func() error { return unix.Mkdirat(dir, base, 0o700) })
		}
	}
	if err != nil {
		return pathError("mkdirat", rel, err)
	}
	e.dirMeta[rel] = m
	e.stats.Dirs++
	return nil
}

// finishDirs applies the mode, owner and times of the layer's directories,
// children before parents.
func (e *extractor) finishDirs() error {
	rels := make([]string, 0, len(e.dirMeta))
	for rel := range e.dirMeta {
		rels = append(rels, rel)
	}
	sort.Sort(sort.Reverse(sort.StringSlice(rels)))
	for _, rel := range rels {
		e.closeTemps()
		m := e.dirMeta[rel]
		dir, base := e.rootFd, "."
		if rel != "" {
			var parent string
			parent, base = splitEntryName(rel)
			var err error
			dir, err = e.dirFd(parent, false)
			if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) {
				continue // removed or replaced later in the layer
			}
			if err != nil {
				return fmt.Errorf("extract %q: %w", shortName(rel), err)
			}
		}
		if err := e.setDirMeta(dir, rel, base, m); err != nil {
			return fmt.Errorf("extract %q: %w", shortName(rel), err)
		}
	}
	e.closeTemps()
	return nil
}

func (e *extractor) setDirMeta(dir int, rel, base string, m dirMeta) error {
	fd, err := unix.Openat(dir, base, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) || errors.Is(err, unix.ELOOP) {
		return nil // replaced by a non-directory later in the layer
	}
	if err != nil {
		return pathError("openat", rel, err)
	}
	defer unix.Close(fd)
	if e.o.ownership {
		if err := unix.Fchown(fd, m.uid, m.gid); err != nil {
			return pathError("fchown", rel, err)
		}
	}
	mode := m.mode
	if e.o.rootless {
		mode |= 0o700
	}
	if err := unix.Fchmod(fd, mode); err != nil {
		return pathError("fchmod", rel, err)
	}
	return setTimes(dir, rel, base, m)
}

// fdWriter writes to a raw file descriptor, without the bookkeeping of
// *os.File.
type fdWriter int

func (w fdWriter) Write(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		m, err := unix.Write(int(w), p[n:])
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return n, err
		}
		if m == 0 {
			return n, io.ErrShortWrite
		}
		n += m
	}
	return n, nil
}

func (e *extractor) file(rel, parent, base string, hdr *tar.Header, r io.Reader) (err error) {
	m, err := e.metaOf(hdr)
	if err != nil {
		return err
	}
	dir, err := e.dirFd(parent, true)
	if err != nil {
		return err
	}
	fd := -1
	// O_EXCL|O_NOFOLLOW: never write through an existing file or symlink;
	// createAt replaces it instead.
	err = e.createAt(dir, rel, base, func() error {
		var err error
		for {
			fd, err = unix.Openat(dir, base, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
			if !errors.Is(err, unix.EINTR) {
				return err
			}
		}
	})
	if err != nil {
		return pathError("create", rel, err)
	}
	defer func() {
		if cerr := unix.Close(fd); cerr != nil && err == nil {
			err = pathError("close", rel, cerr)
		}
	}()
	if hdr.Size > 0 {
		if e.buf == nil {
			e.buf = make([]byte, extractCopyBuffer)
		}
		n, err := io.CopyBuffer(fdWriter(fd), r, e.buf)
		e.stats.Bytes += n
		if err != nil {
			return pathError("write", rel, err)
		}
	}
	// chown before chmod: chown clears the setuid and setgid bits.
	if e.o.ownership {
		if err := unix.Fchown(fd, m.uid, m.gid); err != nil {
			return pathError("fchown", rel, err)
		}
	}
	if err := unix.Fchmod(fd, m.mode); err != nil {
		return pathError("fchmod", rel, err)
	}
	if err := setTimes(dir, rel, base, m); err != nil {
		return err
	}
	e.stats.Files++
	return nil
}

func (e *extractor) symlink(rel, parent, base string, hdr *tar.Header) error {
	m, err := e.metaOf(hdr)
	if err != nil {
		return err
	}
	dir, err := e.dirFd(parent, true)
	if err != nil {
		return err
	}
	// The target is stored as written: it is only ever followed by dirFd,
	// inside the root.
	err = e.createAt(dir, rel, base, func() error { return unix.Symlinkat(hdr.Linkname, dir, base) })
	if err != nil {
		return pathError("symlinkat", rel, err)
	}
	if e.o.ownership {
		if err := unix.Fchownat(dir, base, m.uid, m.gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return pathError("lchown", rel, err)
		}
	}
	if err := setTimes(dir, rel, base, m); err != nil {
		return err
	}
	e.stats.Symlinks++
	return nil
}

// hardlink links rel to an existing regular file of the root, named by the
// link target like an entry name (cleaned, absolute read as relative to the
// root, ".." above the root refused). If link(2) fails (EMLINK, EPERM from
// protected_hardlinks, EXDEV), the file is copied.
func (e *extractor) hardlink(rel, parent, base string, hdr *tar.Header) error {
	target, err := cleanEntryName(hdr.Linkname)
	if err != nil {
		return fmt.Errorf("hard link target: %w", err)
	}
	if target == "" {
		return fmt.Errorf("%w: hard link to the root", ErrUnsafePath)
	}
	tparent, tbase := splitEntryName(target)
	tdir, err := e.dirFd(tparent, false)
	if err != nil {
		return fmt.Errorf("hard link target: %w", err)
	}
	var st unix.Stat_t
	if err := unix.Fstatat(tdir, tbase, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("hard link target: %w", pathError("fstatat", target, err))
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return fmt.Errorf("%w: hard link target %q is not a regular file", ErrUnsafePath, shortName(hdr.Linkname))
	}
	dir, err := e.dirFd(parent, true)
	if err != nil {
		return err
	}
	var cur unix.Stat_t
	if err := unix.Fstatat(dir, base, &cur, unix.AT_SYMLINK_NOFOLLOW); err == nil && cur.Dev == st.Dev && cur.Ino == st.Ino {
		e.stats.Hardlinks++ // already linked, or linked to itself
		return nil
	}
	link := e.o.link
	if link == nil {
		link = func(od int, on string, nd int, nn string) error { return unix.Linkat(od, on, nd, nn, 0) }
	}
	err = e.createAt(dir, rel, base, func() error { return link(tdir, tbase, dir, base) })
	if err != nil {
		if _, err := e.removeExisting(dir, rel, base); err != nil {
			return err
		}
		if err := e.copyFile(tdir, tbase, target, dir, base, rel); err != nil {
			return err
		}
	}
	e.stats.Hardlinks++
	return nil
}

// copyFile copies a regular file with its mode, owner (if ownership is on)
// and times: the fallback for a hard link.
func (e *extractor) copyFile(sdir int, sname, srel string, dir int, name, rel string) (err error) {
	src, err := unix.Openat(sdir, sname, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return pathError("open", srel, err)
	}
	defer unix.Close(src)
	var st unix.Stat_t
	if err := unix.Fstat(src, &st); err != nil {
		return pathError("fstat", srel, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return fmt.Errorf("%w: hard link target %q is not a regular file", ErrUnsafePath, shortName(srel))
	}
	dst, err := unix.Openat(dir, name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return pathError("create", rel, err)
	}
	defer func() {
		if cerr := unix.Close(dst); cerr != nil && err == nil {
			err = pathError("close", rel, cerr)
		}
	}()
	if e.buf == nil {
		e.buf = make([]byte, extractCopyBuffer)
	}
	if _, err := io.CopyBuffer(fdWriter(dst), fdReader(src), e.buf); err != nil {
		return pathError("copy", rel, err)
	}
	if e.o.ownership {
		if err := unix.Fchown(dst, int(st.Uid), int(st.Gid)); err != nil {
			return pathError("fchown", rel, err)
		}
	}
	if err := unix.Fchmod(dst, st.Mode&0o7777); err != nil {
		return pathError("fchmod", rel, err)
	}
	return setTimes(dir, rel, name, dirMeta{times: [2]unix.Timespec{st.Atim, st.Mtim}})
}

type fdReader int

func (r fdReader) Read(p []byte) (int, error) {
	for {
		n, err := unix.Read(int(r), p)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return 0, err
		}
		if n == 0 && len(p) > 0 {
			return 0, io.EOF
		}
		return n, nil
	}
}

// device creates a device node or FIFO. Device nodes are skipped (and
// counted) when devices are off; FIFOs need no privilege.
func (e *extractor) device(rel, parent, base string, hdr *tar.Header) error {
	var typ uint32
	switch hdr.Typeflag {
	case tar.TypeChar:
		typ = unix.S_IFCHR
	case tar.TypeBlock:
		typ = unix.S_IFBLK
	default:
		typ = unix.S_IFIFO
	}
	if typ != unix.S_IFIFO && !e.o.devices {
		e.stats.SkippedDevices++
		return nil
	}
	m, err := e.metaOf(hdr)
	if err != nil {
		return err
	}
	const maxDev = 1<<32 - 1
	if hdr.Devmajor < 0 || hdr.Devmajor > maxDev || hdr.Devminor < 0 || hdr.Devminor > maxDev {
		return fmt.Errorf("invalid device number %d,%d", hdr.Devmajor, hdr.Devminor)
	}
	dev := unix.Mkdev(uint32(hdr.Devmajor), uint32(hdr.Devminor))
	dir, err := e.dirFd(parent, true)
	if err != nil {
		return err
	}
	err = e.createAt(dir, rel, base, func() error { return unix.Mknodat(dir, base, typ|0o600, int(dev)) })
	if err != nil {
		return pathError("mknodat", rel, err)
	}
	if e.o.ownership {
		if err := unix.Fchownat(dir, base, m.uid, m.gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return pathError("lchown", rel, err)
		}
	}
	// We just created base and it is not a symlink; fchmodat2 makes sure
	// (Linux 6.6+), older kernels have only the following version.
	err = unix.Fchmodat(dir, base, m.mode, unix.AT_SYMLINK_NOFOLLOW)
	if errors.Is(err, unix.EOPNOTSUPP) {
		err = unix.Fchmodat(dir, base, m.mode, 0)
	}
	if err != nil {
		return pathError("fchmodat", rel, err)
	}
	if err := setTimes(dir, rel, base, m); err != nil {
		return err
	}
	e.stats.Devices++
	return nil
}
