package flock

import (
	"context"
	"errors"
	"io"
	"os"
	"sync"

	"golang.org/x/sys/unix"
)

// ExclusiveRecord takes an exclusive record lock over the whole of file
// (created with mode 0o644 if missing) with fcntl(F_OFD_SETLK), waiting
// while another holds it, until ctx ends; then it returns ctx.Err().
// waiting, if not nil, is called once if the lock is busy.
//
// It is for files other programs lock with fcntl rather than flock(2):
// on Linux the two kinds never see each other, but an open file
// description lock conflicts with a classic POSIX record lock (F_SETLK),
// such as the one LinuxKit takes on its cache's .lock. Like a flock it
// belongs to the open file, not to the process, so two goroutines that
// each call ExclusiveRecord exclude each other too, and closing another
// descriptor of the file does not drop it.
func ExclusiveRecord(ctx context.Context, file string, waiting func()) (unlock func(), err error) {
	return waitFor(ctx, file, waiting, func(f *os.File) error { return setRecordLock(f, unix.F_WRLCK) }, recordUnlocker)
}

// setRecordLock applies an open file description lock of type typ
// (F_WRLCK, F_UNLCK) to the whole of f without waiting. A lock held
// elsewhere is ErrBusy.
func setRecordLock(f *os.File, typ int16) error {
	lk := unix.Flock_t{Type: typ, Whence: io.SeekStart}
	for {
		err := unix.FcntlFlock(f.Fd(), unix.F_OFD_SETLK, &lk)
		switch {
		case err == nil:
			return nil
		case errors.Is(err, unix.EINTR):
			continue
		case errors.Is(err, unix.EAGAIN), errors.Is(err, unix.EACCES):
			return ErrBusy
		}
		return &os.PathError{Op: "fcntl F_OFD_SETLK", Path: f.Name(), Err: err}
	}
}

// recordUnlocker releases the record lock on f and closes it, once.
func recordUnlocker(f *os.File) func() {
	return sync.OnceFunc(func() {
		_ = setRecordLock(f, unix.F_UNLCK)
		_ = f.Close()
	})
}
