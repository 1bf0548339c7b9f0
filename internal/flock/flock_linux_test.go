package flock

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// acquire takes a lock on file the way one of the package's functions
// does; waiting is passed on to Exclusive.
type acquire func(t *testing.T, file string, waiting func()) (func(), error)

func tryExclusive(_ *testing.T, file string, _ func()) (func(), error) { return TryExclusive(file) }
func shared(_ *testing.T, file string, _ func()) (func(), error)       { return Shared(file) }

// exclusive waits for the lock, for at most 10s so that a bug fails the
// test instead of hanging it.
func exclusive(t *testing.T, file string, waiting func()) (func(), error) {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	return Exclusive(ctx, file, waiting)
}

// exclusiveCancelled waits for the lock with a context already cancelled.
func exclusiveCancelled(_ *testing.T, file string, waiting func()) (func(), error) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return Exclusive(ctx, file, waiting)
}

// exclusiveTimeout waits for the lock for 250ms, a few polls.
func exclusiveTimeout(t *testing.T, file string, waiting func()) (func(), error) {
	ctx, cancel := context.WithTimeout(t.Context(), 250*time.Millisecond)
	defer cancel()
	return Exclusive(ctx, file, waiting)
}

// TestLocks: each lock is taken on its own open of the file, as another
// process would, while another is held (or nothing is).
func TestLocks(t *testing.T) {
	tests := []struct {
		name string
		hold acquire // nil: the file is not locked
		// releaseAfter > 0: the holder unlocks from another goroutine after
		// it; 0: once try has returned.
		releaseAfter time.Duration
		try          acquire
		wantErr      error
		wantWaiting  int  // calls of waiting
		retry        bool // once the holder has unlocked, try succeeds again
	}{
		{name: "TryExclusive on a free file", try: tryExclusive},
		{name: "Shared on a free file", try: shared},
		{name: "Exclusive on a free file", try: exclusive},
		{name: "Exclusive with a cancelled ctx on a free file", try: exclusiveCancelled},

		{name: "TryExclusive vs TryExclusive", hold: tryExclusive, try: tryExclusive, wantErr: ErrBusy, retry: true},
		{name: "TryExclusive vs Exclusive", hold: exclusive, try: tryExclusive, wantErr: ErrBusy, retry: true},
		{name: "TryExclusive vs Shared", hold: shared, try: tryExclusive, wantErr: ErrBusy, retry: true},
		{name: "Shared with Shared", hold: shared, try: shared},

		{name: "Exclusive with a cancelled ctx vs TryExclusive", hold: tryExclusive, try: exclusiveCancelled,
			wantErr: context.Canceled, wantWaiting: 1},
		{name: "Exclusive with a cancelled ctx vs Shared", hold: shared, try: exclusiveCancelled,
			wantErr: context.Canceled, wantWaiting: 1},
		{name: "Exclusive whose ctx ends while waiting", hold: tryExclusive, try: exclusiveTimeout,
			wantErr: context.DeadlineExceeded, wantWaiting: 1, retry: true},

		{name: "Exclusive after the holder unlocks", hold: tryExclusive, releaseAfter: 150 * time.Millisecond,
			try: exclusive, wantWaiting: 1},
		{name: "Exclusive after the Shared holder unlocks", hold: shared, releaseAfter: 150 * time.Millisecond,
			try: exclusive, wantWaiting: 1},
		{name: "Shared after the holder unlocks", hold: tryExclusive, releaseAfter: 150 * time.Millisecond,
			try: shared},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "lock")
			released := make(chan struct{}) // closed once the holder has unlocked
			release := func() {}
			if tc.hold == nil {
				close(released)
			} else {
				unlock, err := tc.hold(t, file, nil)
				if err != nil {
					t.Fatalf("hold: %v", err)
				}
				if tc.releaseAfter > 0 {
					go func() {
						defer close(released)
						time.Sleep(tc.releaseAfter)
						unlock()
					}()
				} else {
					release = sync.OnceFunc(func() { unlock(); close(released) })
				}
			}
			t.Cleanup(func() { release(); <-released }) // also when try fails

			waiting := 0
			start := time.Now()
			unlock, err := tc.try(t, file, func() { waiting++ })
			elapsed := time.Since(start)
			if !errors.Is(err, tc.wantErr) || (err == nil) != (tc.wantErr == nil) {
				t.Fatalf("try: %v, want %v", err, tc.wantErr)
			}
			if err == nil {
				unlock()
				unlock() // a second unlock does nothing
			} else if unlock != nil {
				t.Errorf("try: an unlock func with error %v", err)
			}
			if waiting != tc.wantWaiting {
				t.Errorf("waiting called %d times, want %d", waiting, tc.wantWaiting)
			}
			if tc.releaseAfter > 0 && elapsed < tc.releaseAfter {
				t.Errorf("try took the lock after %v, before the holder unlocked (%v)", elapsed, tc.releaseAfter)
			}
			if _, err := os.Stat(file); err != nil {
				t.Errorf("lock file: %v", err)
			}

			release()
			if tc.retry {
				<-released
				unlock, err := tc.try(t, file, nil)
				if err != nil {
					t.Fatalf("try after the holder unlocked: %v", err)
				}
				unlock()
			}
		})
	}
}

// TestMissingDir: a lock file whose directory is gone fails with
// fs.ErrNotExist, not ErrBusy (cachedir takes that for an entry nobody
// holds).
func TestMissingDir(t *testing.T) {
	for _, tc := range []struct {
		name string
		try  acquire
	}{
		{"TryExclusive", tryExclusive},
		{"Shared", shared},
		{"Exclusive", exclusive},
	} {
		t.Run(tc.name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "gone", "lock")
			unlock, err := tc.try(t, file, func() { t.Error("waiting called") })
			if !errors.Is(err, fs.ErrNotExist) || errors.Is(err, ErrBusy) || unlock != nil {
				t.Errorf("got %v, want fs.ErrNotExist", err)
			}
		})
	}
}

// TestHeld: Held tells a held lock from a free or missing one and creates
// no file.
func TestHeld(t *testing.T) {
	tests := []struct {
		name    string
		hold    acquire // nil: not locked
		missing bool    // the file does not exist
		want    bool
	}{
		{name: "missing file", missing: true},
		{name: "free file"},
		{name: "held shared", hold: shared, want: true},
		{name: "held exclusive", hold: tryExclusive, want: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "lock")
			if !tc.missing {
				if err := os.WriteFile(file, nil, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			if tc.hold != nil {
				unlock, err := tc.hold(t, file, nil)
				if err != nil {
					t.Fatal(err)
				}
				defer unlock()
			}
			held, err := Held(file)
			if err != nil || held != tc.want {
				t.Fatalf("Held = %v, %v; want %v", held, err, tc.want)
			}
			if _, err := os.Stat(file); tc.missing && !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("Held created the lock file (%v)", err)
			}
			// The probe leaves the lock to its holder, and a free lock free.
			unlock, err := TryExclusive(file)
			if tc.want != errors.Is(err, ErrBusy) {
				t.Errorf("after Held, TryExclusive: %v", err)
			}
			if unlock != nil {
				unlock()
			}
		})
	}
}
