package builder

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/lkbuild/lkbuild/kernel"
	"github.com/lkbuild/lkbuild/sandbox"
)

// DefaultXZLevel is the xz preset of src/linux.tar.xz. Upstream's tar cJf
// uses 6, which costs about five times the CPU of 1 for a 30 % smaller
// file; lkbuild picks 1 so the source archive does not dominate the build.
const DefaultXZLevel = 1

// sourceArchive makes src/linux.tar.xz, or takes it from the cache: it is a
// function of the verified source, the patches, the epoch and the
// builder's xz, and costs more CPU than anything but the compile.
func (b *build) sourceArchive(ctx context.Context, spec sandbox.Spec, s kernel.Step, out string) error {
	h := sha256.New()
	fmt.Fprintf(h, "source %s\nepoch %d\nbuilder %s\nxz -%d 16MiB\nstep %s\n", b.src.SHA256, b.plan.Epoch.Unix(), b.rootfs.Digest, b.pol.XZLevel, s)
	for _, p := range b.patches {
		fmt.Fprintf(h, "patch %s %s\n", p.rel, p.sha256)
	}
	cached := filepath.Join(b.env.Cache.Archives(), hex.EncodeToString(h.Sum(nil))+".tar.xz")
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return err
	}
	if os.Link(cached, out) == nil {
		b.logf("step %s: from the cache, %s", s.Name, cached)
		return nil
	}
	if err := b.action(ctx, spec, s); err != nil {
		return err
	}
	// Keep it for the next build of the same inputs; a failure here only
	// costs that build the time.
	if os.MkdirAll(filepath.Dir(cached), 0o755) == nil {
		tmp := cached + ".tmp-" + strconv.Itoa(os.Getpid())
		if os.Link(out, tmp) == nil {
			if os.Rename(tmp, cached) != nil {
				os.Remove(tmp)
			}
		}
	}
	return nil
}

// xzCommand is how the builder's xz compresses the source archive. With an
// explicit block size, xz 5.4's multi-threaded output does not depend on
// the thread count (from 2 up), so -j does not change the bytes.
func (b *build) xzCommand() []string {
	return []string{"xz", "-" + strconv.Itoa(b.pol.XZLevel), "-T" + strconv.Itoa(max(b.plan.Jobs, 2)), "--block-size=16MiB", "-c"}
}
