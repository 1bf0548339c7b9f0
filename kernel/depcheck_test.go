package kernel

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/lkbuild/lkbuild/internal/testenv"
)

// TestDepcheck keeps package kernel pure: it must not reach, even through
// another package, for programs, the network or raw system calls. Those
// belong in builder, toolchain and internal/kernelgit.
func TestDepcheck(t *testing.T) {
	goBin, err := exec.LookPath("go")
	testenv.Need(t, err == nil, "the go command is not in PATH; the test asks it for kernel's imports")
	out, err := exec.Command(goBin, "list", "-deps", ".").Output()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			t.Fatalf("go list -deps: %v\n%s", err, ee.Stderr)
		}
		t.Fatalf("go list -deps: %v", err)
	}
	deps := strings.Fields(string(out))
	if len(deps) == 0 || deps[len(deps)-1] != "github.com/lkbuild/lkbuild/kernel" {
		t.Fatalf("go list -deps . did not list package kernel last: %q", deps)
	}
	forbidden := map[string]string{
		"os/exec":               "run no programs",
		"net":                   "open no connections",
		"net/http":              "open no connections",
		"golang.org/x/sys/unix": "make no system calls of its own",
	}
	for _, d := range deps {
		if why, bad := forbidden[d]; bad {
			t.Errorf("package kernel imports %s (directly or not); it must %s", d, why)
		}
		if strings.HasPrefix(d, "github.com/go-git/") {
			t.Errorf("package kernel imports %s; git I/O belongs in internal/kernelgit", d)
		}
	}
}
