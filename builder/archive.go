package builder

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"time"

	"github.com/lkbuild/lkbuild/kernel"
	"github.com/lkbuild/lkbuild/sandbox"
)

// DefaultXZLevel is the xz preset of src/linux.tar.xz. Upstream's tar cJf
// uses 6, which costs about five times the CPU of 1 for a 30 % smaller
// file; lkbuild picks 1 so the source archive does not dominate the build.
const DefaultXZLevel = 1

// sourceArchive makes src/linux.tar.xz, or takes it from the cache: it is a
// function of the verified source, the patches and the xz that compresses
// it (with TarArchive.SourceTime, not of the epoch), and costs more CPU
// than anything but the compile. What it must make it makes in segments
// (segmenter), most of which an earlier build with other patches already
// compressed.
func (b *build) sourceArchive(ctx context.Context, spec sandbox.Spec, s kernel.Step, out string) error {
	t, ok := s.Action.(*kernel.TarArchive)
	if !ok {
		return fmt.Errorf("step %s: not an archive", s.Name)
	}
	// The xz that runs: the builder's, or the fast path's native one.
	xz := "builder " + b.builderID()
	if b.fast != nil && b.fast.nativeXZ {
		xz = "cross image " + b.fast.digest
	}
	xz += fmt.Sprintf(" %q segments %d-%d/%d", b.xzCommand(), segmentMin, segmentMax, segmentEvery)
	h := sha256.New()
	fmt.Fprintf(h, "source %s\nxz %s\nstep %s\n", b.src.SHA256, xz, s)
	if !t.SourceTime {
		fmt.Fprintf(h, "epoch %d\n", b.plan.Epoch.Unix())
	}
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
	req, err := newStepRequest(t, b.plan.Epoch, b.xzCommand())
	if err != nil {
		return err
	}
	if t.SourceTime {
		newest, err := newestTime(b.src.Dir)
		if err != nil {
			return fmt.Errorf("step %s: %w", s.Name, err)
		}
		req.Epoch = newest.Unix()
	}
	// The segment cache of this xz, bound into the archive's sandbox only.
	sum := sha256.Sum256([]byte(xz))
	segs := filepath.Join(b.env.Cache.Archives(), "xz-segments-"+hex.EncodeToString(sum[:8]))
	if err := os.MkdirAll(segs, 0o755); err == nil {
		req.Segments = path.Join(b.plan.Paths.Work, ".xz-segments")
		spec.Mounts = append(spec.Mounts, sandbox.Mount{Source: segs, Target: req.Segments})
	}
	req.Jobs = b.plan.Jobs
	if err := b.runAction(ctx, spec, s, req); err != nil {
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

// newestTime is the latest modification time in the tree at dir: for the
// verified release, the time of its newest file, as its tarball says.
func newestTime(dir string) (time.Time, error) {
	var newest time.Time
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if t := info.ModTime(); t.After(newest) {
			newest = t
		}
		return nil
	})
	if err != nil {
		return time.Time{}, fmt.Errorf("the source tree's newest file: %w", err)
	}
	return newest, nil
}

// xzCommand is how the builder's xz compresses one segment of the source
// archive: single-threaded (segments run side by side), so the bytes do not
// depend on -j.
func (b *build) xzCommand() []string {
	return []string{"xz", "-" + strconv.Itoa(b.pol.XZLevel), "-T1", "-c"}
}
