//go:build !linux

package sandbox

import (
	"context"
	"fmt"
	"os"
)

func initMain() int {
	fmt.Fprintln(os.Stderr, ErrUnsupported)
	return ExitSetupFailed
}

// Run is only supported on Linux.
func Run(ctx context.Context, spec Spec) error { return ErrUnsupported }

func Probe(ctx context.Context, kind string) error { return ErrUnsupported }

func OwnerMap() func(int, int) (int, int) {
	return func(int, int) (int, int) { return 0, 0 }
}

func RemoveTree(dir string) error { return ErrUnsupported }

// execName is the command shim's argv[0] (see exec_linux.go).
const execName = "lkbuild-sandbox-exec"

func execMain([]string) int {
	fmt.Fprintln(os.Stderr, ErrUnsupported)
	return ExitSetupFailed
}
