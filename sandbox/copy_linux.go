package sandbox

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// copyTree copies the tree at src into dst (which may exist), keeping file
// types, modes, owners where the namespace allows, and modification times.
// Hard links become separate files. It is the fallback for hosts where
// overlayfs is refused.
func copyTree(src, dst string) error {
	buf := make([]byte, 1<<20)
	type dirMode struct {
		path string
		info fs.FileInfo
	}
	var dirs []dirMode
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		st, _ := info.Sys().(*unix.Stat_t)
		switch mode := info.Mode(); {
		case mode.IsDir():
			if err := os.MkdirAll(target, 0o700); err != nil {
				return err
			}
			// Modes and times of directories are set last: a read-only
			// directory could not take its children otherwise.
			dirs = append(dirs, dirMode{target, info})
			if st != nil {
				unix.Lchown(target, int(st.Uid), int(st.Gid))
			}
			return nil
		case mode&fs.ModeSymlink != 0:
			link, err := os.Readlink(p)
			if err != nil {
				return err
			}
			if err := os.Symlink(link, target); err != nil {
				return err
			}
		case mode.IsRegular():
			if err := copyFile(p, target, buf); err != nil {
				return err
			}
		case mode&(fs.ModeDevice|fs.ModeCharDevice|fs.ModeNamedPipe) != 0 && st != nil:
			if err := unix.Mknod(target, st.Mode, int(st.Rdev)); err != nil {
				return nil // device nodes need privilege the namespace may lack
			}
		default:
			return nil // sockets and the like are not part of a rootfs
		}
		if st != nil {
			unix.Lchown(target, int(st.Uid), int(st.Gid)) // best effort: ids may be unmapped
		}
		if info.Mode()&fs.ModeSymlink == 0 {
			if err := os.Chmod(target, info.Mode()&(fs.ModePerm|fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky)); err != nil {
				return err
			}
		}
		ts := []unix.Timespec{unix.NsecToTimespec(info.ModTime().UnixNano()), unix.NsecToTimespec(info.ModTime().UnixNano())}
		unix.UtimesNanoAt(unix.AT_FDCWD, target, ts, unix.AT_SYMLINK_NOFOLLOW)
		return nil
	})
	if err != nil {
		return err
	}
	for i := len(dirs) - 1; i >= 0; i-- {
		d := dirs[i]
		if err := os.Chmod(d.path, d.info.Mode()&(fs.ModePerm|fs.ModeSetgid|fs.ModeSticky)); err != nil {
			return err
		}
		t := d.info.ModTime()
		os.Chtimes(d.path, t, t)
	}
	return nil
}

func copyFile(src, dst string, buf []byte) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.CopyBuffer(out, in, buf); err != nil {
		out.Close()
		return fmt.Errorf("copy %s: %w", src, err)
	}
	return out.Close()
}
