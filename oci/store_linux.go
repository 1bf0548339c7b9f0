package oci

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/lkbuild/lkbuild/internal/flock"
)

// lockLayout takes the lock that serializes changes to a layout's
// index.json: an fcntl record lock, which LinuxKit's own lock on its
// cache's .lock conflicts with (a flock would not).
func lockLayout(ctx context.Context, file string) (func(), error) {
	return flock.ExclusiveRecord(ctx, file, nil)
}

// lockTemp marks a temporary blob as being written: the flock goes with
// the open file, so it is released when the writer closes it or dies.
func lockTemp(f *os.File) {
	unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
}

// removeStaleTemps removes the temporary blobs in dir that no process
// holds and that are older than before: what a killed lkbuild left (a
// SIGKILL mid-pull leaves a partial layer of any size). A temp file just
// created and not locked yet is younger than before.
func removeStaleTemps(dir string, before time.Time) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), ".tmp-") {
			continue
		}
		p := filepath.Join(dir, e.Name())
		fi, err := e.Info()
		if err != nil || !fi.Mode().IsRegular() || fi.ModTime().After(before) {
			continue
		}
		f, err := os.Open(p)
		if err != nil {
			continue
		}
		if unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB) == nil {
			os.Remove(p)
		}
		f.Close()
	}
}
