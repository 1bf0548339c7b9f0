package cachedir

import (
	"io/fs"
	"path/filepath"
	"syscall"
	"time"
)

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
