package oci

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestPublishWaitsForLinuxKit: LinuxKit locks its cache's .lock with a
// POSIX record lock (fcntl F_SETLKW) around every change and read of
// index.json; lkbuild writing into that cache waits for it.
func TestPublishWaitsForLinuxKit(t *testing.T) {
	s := newTestStore(t)
	f, err := os.OpenFile(filepath.Join(s.Dir(), ".lock"), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	lk := unix.Flock_t{Type: unix.F_WRLCK, Whence: io.SeekStart}
	if err := unix.FcntlFlock(f.Fd(), unix.F_SETLKW, &lk); err != nil {
		t.Fatal(err)
	}
	const hold = 300 * time.Millisecond
	go func() {
		time.Sleep(hold)
		f.Close() // drops the POSIX lock
	}()
	img := kernelImage(t, amd64, "a")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	if err := s.Publish(ctx, kernelEntry(img, amd64, "linuxkit/kernel", "6.12.117", "abc")); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < hold {
		t.Errorf("Publish changed index.json after %v, while LinuxKit held the lock (%v)", d, hold)
	}
	if _, ok := named(t, s)["docker.io/linuxkit/kernel:6.12.117-abc-amd64"]; !ok {
		t.Error("image not named")
	}
}
