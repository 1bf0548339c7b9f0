//go:build !linux

package builder

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

func probe(ctx context.Context, kind string) error { return ErrUnsupported }

func sandboxOwnerMap() func(int, int) (int, int) {
	return func(int, int) (int, int) { return 0, 0 }
}

func removeInUserns(dir string) error { return ErrUnsupported }
