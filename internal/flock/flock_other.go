//go:build !linux

package flock

import (
	"context"
	"errors"
)

var errUnsupported = errors.New("file locks are only supported on Linux")

// Exclusive is only implemented on Linux.
func Exclusive(ctx context.Context, file string, waiting func()) (unlock func(), err error) {
	return nil, errUnsupported
}

// Held is only implemented on Linux.
func Held(file string) (bool, error) { return false, errUnsupported }

// TryExclusive is only implemented on Linux.
func TryExclusive(file string) (unlock func(), err error) { return nil, errUnsupported }

// Shared is only implemented on Linux.
func Shared(file string) (unlock func(), err error) { return nil, errUnsupported }

// ExclusiveRecord is only implemented on Linux.
func ExclusiveRecord(ctx context.Context, file string, waiting func()) (unlock func(), err error) {
	return nil, errUnsupported
}
