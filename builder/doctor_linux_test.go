package builder

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/lkbuild/lkbuild/internal/testenv"
)

func TestDoctor(t *testing.T) {
	checks := Doctor(context.Background())
	byName := map[string]Check{}
	for _, c := range checks {
		byName[c.Name] = c
		if c.Status != StatusOK && c.Fix == "" {
			t.Errorf("%s is %s without a fix", c.Name, c.Status)
		}
	}
	// These machines (and CI) allow all of it; a laptop may not.
	for _, name := range []string{"user namespaces", "overlayfs in a user namespace", "binfmt_misc in a user namespace", "qemu for aarch64"} {
		c, ok := byName[name]
		testenv.Need(t, ok && c.Status == StatusOK, fmt.Sprintf("%s: %+v", name, c))
	}
	if c := byName["CPU limit"]; !strings.HasPrefix(c.Detail, "make -j") {
		t.Errorf("CPU limit: %+v", c)
	}
}
