package builder

import (
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
	os.Exit(rootfstest.Run(m, &fixtures, rootfstest.AMD64))
}
