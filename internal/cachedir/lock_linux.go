package cachedir

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// lockShared takes a shared flock on file (created if missing), waiting
// while Remove holds it. The lock goes with the process.
func lockShared(file string) (func(), error) {
	f, err := os.OpenFile(file, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_SH); err != nil {
		f.Close()
		return nil, &os.PathError{Op: "flock", Path: file, Err: err}
	}
	return func() { f.Close() }, nil
}

// tryLockExclusive takes an exclusive flock on file, or fails with
// ErrInUse while a build holds it.
func tryLockExclusive(file string) (func(), error) {
	f, err := os.OpenFile(file, os.O_RDWR|os.O_CREATE, 0o600)
	if errors.Is(err, fs.ErrNotExist) {
		return func() {}, nil // the entry's directory is gone: nobody holds it
	}
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, ErrInUse
		}
		return nil, &os.PathError{Op: "flock", Path: file, Err: err}
	}
	return func() { f.Close() }, nil
}

// usage is the disk space of the tree at p (each inode once) and its
// newest modification or status change.
func usage(p string) (int64, time.Time) {
	var size int64
	var newest time.Time
	seen := map[uint64]bool{}
	filepath.WalkDir(p, func(q string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return nil
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok {
			size += fi.Size()
			return nil
		}
		if q == p {
			// The entry's own times: a directory's mtime moves when a
			// build adds to it, a file's ctime when it is linked.
			newest = maxTime(fi.ModTime(), time.Unix(st.Ctim.Unix()))
		}
		if st.Nlink > 1 {
			if seen[st.Ino] {
				return nil
			}
			seen[st.Ino] = true
		}
		size += st.Blocks * 512
		return nil
	})
	return size, newest
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
