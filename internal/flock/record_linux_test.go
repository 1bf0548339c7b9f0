package flock

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// posixLock holds a classic fcntl record lock (F_SETLK) on file, as
// LinuxKit locks its cache.
func posixLock(t *testing.T, file string) func() {
	t.Helper()
	f, err := os.OpenFile(file, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	lk := unix.Flock_t{Type: unix.F_WRLCK, Whence: io.SeekStart}
	if err := unix.FcntlFlock(f.Fd(), unix.F_SETLK, &lk); err != nil {
		t.Fatal(err)
	}
	return func() { f.Close() } // closing drops a classic lock
}

// TestExclusiveRecord: the record lock waits for a classic POSIX lock and
// for another record lock (also in the same process), and ignores a flock.
func TestExclusiveRecord(t *testing.T) {
	tests := []struct {
		name     string
		hold     func(t *testing.T, file string) func() // nil: free
		wantBusy bool
	}{
		{name: "free"},
		{name: "held by a POSIX lock", hold: posixLock, wantBusy: true},
		{name: "held by another record lock", wantBusy: true, hold: func(t *testing.T, file string) func() {
			unlock, err := ExclusiveRecord(t.Context(), file, nil)
			if err != nil {
				t.Fatal(err)
			}
			return unlock
		}},
		{name: "flock is another kind", hold: func(t *testing.T, file string) func() {
			unlock, err := TryExclusive(file)
			if err != nil {
				t.Fatal(err)
			}
			return unlock
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), ".lock")
			release := func() {}
			if tc.hold != nil {
				release = tc.hold(t, file)
			}
			defer release()
			// While held: a short wait ends with the context.
			ctx, cancel := context.WithTimeout(t.Context(), 250*time.Millisecond)
			waited := 0
			unlock, err := ExclusiveRecord(ctx, file, func() { waited++ })
			cancel()
			if tc.wantBusy {
				if !errors.Is(err, context.DeadlineExceeded) || waited != 1 {
					t.Fatalf("held: %v, waiting called %d times; want the deadline after one call", err, waited)
				}
			} else {
				if err != nil {
					t.Fatalf("free: %v", err)
				}
				unlock()
				unlock()
			}
			// Once released the lock is taken at once.
			release()
			unlock, err = ExclusiveRecord(t.Context(), file, func() { t.Error("waiting after release") })
			if err != nil {
				t.Fatal(err)
			}
			unlock()
		})
	}
}

// TestExclusiveRecordWaits: a waiter gets the lock when the holder lets go.
func TestExclusiveRecordWaits(t *testing.T) {
	file := filepath.Join(t.TempDir(), ".lock")
	release := posixLock(t, file)
	go func() {
		time.Sleep(150 * time.Millisecond)
		release()
	}()
	start := time.Now()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	unlock, err := ExclusiveRecord(ctx, file, nil)
	if err != nil {
		t.Fatal(err)
	}
	unlock()
	if d := time.Since(start); d < 150*time.Millisecond {
		t.Errorf("took the lock after %v, before the holder let go", d)
	}
}
