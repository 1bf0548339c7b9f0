package builder

import (
	"fmt"
	"os"
	"testing"

	"github.com/lkbuild/lkbuild/internal/rootfstest"
	"github.com/lkbuild/lkbuild/sandbox"
)

// fixtures are the rootfs trees TestMain unpacked.
var fixtures rootfstest.Trees

// TestMain doubles as the sandbox init and as the in-sandbox step runner
// (both re-execute the test binary), and unpacks the rootfs fixtures once.
func TestMain(m *testing.M) {
	sandbox.MaybeInit(os.Args)
	MaybeRunStep(os.Args)
	trees, cleanup, err := rootfstest.Unpack(rootfstest.AMD64)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fixtures = trees
	code := m.Run()
	cleanup()
	os.Exit(code)
}
