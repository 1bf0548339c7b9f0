package flock

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// pollInterval is how often Exclusive retries a busy lock.
const pollInterval = 100 * time.Millisecond

// Exclusive takes an exclusive lock on file (created with mode 0o644 if
// missing), waiting while another process holds it, until ctx ends; then
// it returns ctx.Err(). waiting, if not nil, is called once if the lock is
// busy. A free lock is taken even if ctx has already ended.
func Exclusive(ctx context.Context, file string, waiting func()) (unlock func(), err error) {
	return waitFor(ctx, file, waiting, func(f *os.File) error { return flockFile(f, unix.LOCK_EX|unix.LOCK_NB) }, unlocker)
}

// waitFor opens file (created with mode 0o644 if missing) and calls try
// on it until try takes the lock (then unlock(f) releases it), fails
// with another error than ErrBusy, or ctx ends. waiting, if not nil, is
// called once if the lock is busy. Polling keeps the wait cancellable; a
// blocking lock call is not.
func waitFor(ctx context.Context, file string, waiting func(), try func(*os.File) error, unlock func(*os.File) func()) (func(), error) {
	f, err := os.OpenFile(file, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	for told := false; ; {
		err := try(f)
		if err == nil {
			return unlock(f), nil
		}
		if !errors.Is(err, ErrBusy) {
			f.Close()
			return nil, err
		}
		if !told && waiting != nil {
			waiting()
			told = true
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, ctx.Err()
		case <-time.After(pollInterval):
		}
	}
}

// TryExclusive takes an exclusive lock on file (created with mode 0o600 if
// missing), or fails at once with ErrBusy while it is held.
func TryExclusive(file string) (unlock func(), err error) {
	return lock(file, unix.LOCK_EX|unix.LOCK_NB)
}

// Held reports whether another open file holds a lock on file, shared or
// exclusive, without waiting and without creating it: a missing file is
// held by nobody. Its probe is a lock taken and released at once.
func Held(file string) (bool, error) {
	f, err := os.Open(file)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	defer f.Close()
	switch err := flockFile(f, unix.LOCK_EX|unix.LOCK_NB); {
	case err == nil:
		_ = unix.Flock(int(f.Fd()), unix.LOCK_UN)
		return false, nil
	case errors.Is(err, ErrBusy):
		return true, nil
	default:
		return false, err
	}
}

// Shared takes a shared lock on file (created with mode 0o600 if
// missing), waiting while an exclusive lock is held.
func Shared(file string) (unlock func(), err error) {
	return lock(file, unix.LOCK_SH)
}

func lock(file string, how int) (func(), error) {
	f, err := os.OpenFile(file, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	if err := flockFile(f, how); err != nil {
		f.Close()
		return nil, err
	}
	return unlocker(f), nil
}

// flockFile applies flock(2) operation how to f, again when a signal
// interrupts it. A lock that LOCK_NB finds held is ErrBusy.
func flockFile(f *os.File, how int) error {
	for {
		err := unix.Flock(int(f.Fd()), how)
		switch {
		case err == nil:
			return nil
		case errors.Is(err, unix.EINTR):
			continue
		case errors.Is(err, unix.EWOULDBLOCK):
			return ErrBusy
		}
		return &os.PathError{Op: "flock", Path: f.Name(), Err: err}
	}
}

// unlocker releases the lock on f and closes it, once however often it is
// called: a second unlock must not reach a descriptor number reused by
// another file.
func unlocker(f *os.File) func() {
	return sync.OnceFunc(func() {
		_ = unix.Flock(int(f.Fd()), unix.LOCK_UN)
		_ = f.Close()
	})
}
