//go:build !linux

package sandbox

import "os"

// IsTerminal reports whether f is a terminal: never, off Linux.
func IsTerminal(f *os.File) bool { return false }

// TerminalSize is only supported on Linux.
func TerminalSize(f *os.File) (WindowSize, error) { return WindowSize{}, ErrUnsupported }

// MakeRaw is only supported on Linux.
func MakeRaw(f *os.File) (func() error, error) { return nil, ErrUnsupported }

// WatchSize delivers nothing off Linux.
func WatchSize(f *os.File) (<-chan WindowSize, func()) {
	ch := make(chan WindowSize)
	return ch, func() {}
}
