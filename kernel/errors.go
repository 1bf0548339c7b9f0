package kernel

import (
	"errors"
	"fmt"
)

// Errors that callers can test for with errors.Is.
var (
	// ErrNotKernelDir means a directory holds neither series folders nor
	// flat config-<series>-<arch> files.
	ErrNotKernelDir = errors.New("not a LinuxKit kernel directory")
	// ErrNoSeries means a requested series has no folder (or, in the flat
	// layout, no config files).
	ErrNoSeries = errors.New("no such series")
	// ErrNoConfig means a series has no config for the requested arch.
	ErrNoConfig = errors.New("no config for this arch")
	// ErrNoVersion means a series has no KERNEL_VERSION, so it cannot be
	// named or built (LinuxKit keeps such folders for deprecated series).
	ErrNoVersion = errors.New("series has no kernel version")
	// ErrNoGit means the kernel directory is not inside a git work tree, so
	// there is no series hash.
	ErrNoGit = errors.New("not in a git work tree")
)

// FileError is an error about one file of a kernel directory, and one line
// of it when Line is not zero. Its message reads "File:Line: Err", the form
// editors and terminals turn into a link.
type FileError struct {
	File string // path as the user knows it, e.g. "kernel/6.6.x/build-args"
	Line int    // 1-based; 0 when the error is about the whole file
	Err  error
}

func (e *FileError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %v", e.File, e.Line, e.Err)
	}
	return fmt.Sprintf("%s: %v", e.File, e.Err)
}

func (e *FileError) Unwrap() error { return e.Err }
