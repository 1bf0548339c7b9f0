package sandbox

import (
	"fmt"
	"os"
	"testing"

	"github.com/lkbuild/lkbuild/internal/rootfstest"
)

// fixtures are the rootfs trees TestMain unpacked.
var fixtures rootfstest.Trees

// TestMain doubles as the sandbox init (Run re-executes the test binary)
// and as the test tool tests run in the sandbox (tinyRootfs), and unpacks
// the rootfs fixtures once.
func TestMain(m *testing.M) {
	MaybeInit(os.Args)
	if args, ok := toolArgs(os.Args); ok {
		os.Exit(runTool(args, os.Stdout))
	}
	if child := os.Getenv(childTestVar); child != "" {
		os.Exit(runChildTest(child))
	}
	trees, cleanup, err := rootfstest.Unpack(rootfstest.AMD64, rootfstest.ARM64)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fixtures = trees
	code := m.Run()
	cleanup()
	os.Exit(code)
}
