package objtree

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// opaque reports whether an overlay upper directory hides the lower ones
// (as root the xattr is trusted.*, in a user namespace user.*).
func opaque(dir string) bool {
	buf := make([]byte, 1)
	for _, name := range []string{"trusted.overlay.opaque", "user.overlay.opaque"} {
		if n, err := unix.Lgetxattr(dir, name, buf); err == nil && n == 1 && buf[0] == 'y' {
			return true
		}
	}
	return false
}

// isWhiteout reports whether info is an overlay whiteout: a character
// device 0/0.
func isWhiteout(info fs.FileInfo) bool {
	st, ok := info.Sys().(*syscall.Stat_t)
	return ok && info.Mode()&fs.ModeCharDevice != 0 && st.Rdev == 0
}

// openDir opens rel, a directory under root, resolving no symlink and
// nothing outside root.
func openDir(root, rel string) (int, error) {
	rfd, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, &os.PathError{Op: "open", Path: root, Err: err}
	}
	defer unix.Close(rfd)
	fd, err := unix.Openat2(rfd, rel, &unix.OpenHow{
		Flags:   unix.O_PATH | unix.O_DIRECTORY | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS,
	})
	if err != nil {
		return -1, &os.PathError{Op: "openat2", Path: filepath.Join(root, rel), Err: err}
	}
	return fd, nil
}

// setMtime sets the access and modification times of rel under root,
// without following a symlink, rel's own included.
func setMtime(root, rel string, t time.Time) error {
	dfd, err := openDir(root, path.Dir(rel))
	if err != nil {
		return err
	}
	defer unix.Close(dfd)
	ts := unix.NsecToTimespec(t.UnixNano())
	if err := unix.UtimesNanoAt(dfd, path.Base(rel), []unix.Timespec{ts, ts}, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return &os.PathError{Op: "utimensat", Path: filepath.Join(root, rel), Err: err}
	}
	return nil
}

// copyUp copies rel, a regular file or a symlink of the release at
// pristine, to the same place under upper, creating its parent
// directories with the release's modes. Nothing may be there yet.
func copyUp(upper, pristine, rel string) error {
	parent := path.Dir(rel)
	if err := mkdirs(upper, pristine, parent); err != nil {
		return err
	}
	dfd, err := openDir(upper, parent)
	if err != nil {
		return err
	}
	defer unix.Close(dfd)
	src := filepath.Join(pristine, filepath.FromSlash(rel))
	info, err := os.Lstat(src)
	if err != nil {
		return err
	}
	name := path.Base(rel)
	switch {
	case info.Mode()&fs.ModeSymlink != 0:
		target, err := os.Readlink(src)
		if err != nil {
			return err
		}
		if err := unix.Symlinkat(target, dfd, name); err != nil {
			return &os.PathError{Op: "symlink", Path: rel, Err: err}
		}
		return nil
	case !info.Mode().IsRegular():
		return fmt.Errorf("the release's %s is a %v", rel, info.Mode().Type())
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	fd, err := unix.Openat(dfd, name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, uint32(info.Mode().Perm()))
	if err != nil {
		return &os.PathError{Op: "create", Path: rel, Err: err}
	}
	out := os.NewFile(uintptr(fd), rel)
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Chmod(info.Mode().Perm()); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// mkdirs creates the directories of rel under upper that are missing,
// each with the mode of the release's.
func mkdirs(upper, pristine, rel string) error {
	if rel == "." {
		return nil
	}
	parts := strings.Split(rel, "/")
	for i := range parts {
		sub := strings.Join(parts[:i+1], "/")
		parent := path.Dir(sub)
		dfd, err := openDir(upper, parent)
		if err != nil {
			return err
		}
		mode := uint32(0o755)
		if info, err := os.Lstat(filepath.Join(pristine, filepath.FromSlash(sub))); err == nil && info.IsDir() {
			mode = uint32(info.Mode().Perm())
		}
		err = unix.Mkdirat(dfd, parts[i], mode)
		unix.Close(dfd)
		if err != nil && !errors.Is(err, unix.EEXIST) {
			return &os.PathError{Op: "mkdir", Path: sub, Err: err}
		}
	}
	// The last one must now be a directory, not something that was there.
	dfd, err := openDir(upper, rel)
	if err != nil {
		return err
	}
	unix.Close(dfd)
	return nil
}
