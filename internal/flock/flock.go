// Package flock takes advisory file locks with flock(2), the way lkbuild
// keeps concurrent processes off the same cache entry or object tree.
//
// A lock belongs to the open file: it goes with the process, so a killed
// process never leaves one stuck and there is nothing stale to clean up.
// The lock file is created if missing and never removed: a process that
// already opened it would go on locking the removed file while a newcomer
// locks a new one under the same name, and both would hold "the" lock.
//
// ExclusiveRecord takes an fcntl record lock instead, for files that other
// programs lock that way.
//
// Locks are only supported on Linux; elsewhere every function fails.
package flock

import "errors"

// ErrBusy is returned by TryExclusive when another process (or another
// open of the file) holds the lock.
var ErrBusy = errors.New("file is locked by another process")
