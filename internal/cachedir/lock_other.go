//go:build !linux

package cachedir

import (
	"errors"
	"time"
)

var errUnsupported = errors.New("cache locks are only supported on Linux")

func lockShared(string) (func(), error)       { return nil, errUnsupported }
func tryLockExclusive(string) (func(), error) { return nil, errUnsupported }
func usage(string) (int64, time.Time)         { return 0, time.Time{} }
