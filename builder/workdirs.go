package builder

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/lkbuild/lkbuild/internal/rmtree"
	"github.com/lkbuild/lkbuild/sandbox"
)

// sandboxDirs are the host directories of one build, under its scratch
// directory.
type sandboxDirs struct {
	rootUpper           string
	patchUpper, patchWk string
	buildUpper, buildWk string
	out, work, state    string
	// zfsUpper and zfsWk are the writable layer of the OpenZFS tree.
	zfsUpper, zfsWk string
}

// scratchDirs creates the build's scratch directory under the cache's
// work dir and the directories in it.
func (b *build) scratchDirs() (sandboxDirs, error) {
	work := b.env.Cache.Work()
	if err := os.MkdirAll(work, 0o755); err != nil {
		return sandboxDirs{}, fmt.Errorf("build: %w", err)
	}
	var err error
	if b.scr, err = os.MkdirTemp(work, "build-"); err != nil {
		return sandboxDirs{}, fmt.Errorf("build: %w", err)
	}
	j := func(n string) string { return filepath.Join(b.scr, n) }
	d := sandboxDirs{
		rootUpper: j("root"), patchUpper: j("linux-patched"), patchWk: j("linux-patched.work"),
		buildUpper: j("linux-build"), buildWk: j("linux-build.work"),
		out: j("out"), work: j("work"), state: j("state"),
		zfsUpper: j("zfs"), zfsWk: j("zfs.work"),
	}
	for _, p := range []string{d.rootUpper, d.patchUpper, d.patchWk, d.buildUpper, d.buildWk, d.out, d.work, d.state, d.zfsUpper, d.zfsWk} {
		if err := os.MkdirAll(p, 0o755); err != nil {
			return d, fmt.Errorf("build: %w", err)
		}
	}
	return d, nil
}

// removeScratch removes the scratch directory.
func (b *build) removeScratch() {
	if b.scr != "" {
		removeTree(b.scr)
	}
}

// removeTree removes a tree the sandbox wrote: files the sandbox's
// subordinate ids own need a user namespace to go.
func removeTree(dir string) error {
	if rmtree.RemoveAll(dir) == nil {
		return nil
	}
	return sandbox.RemoveTree(dir)
}

// spec is the sandbox of a step. The source tree at Paths.Source is an
// overlay of the cached, verified source: patches go into one upper dir,
// everything after them into another, over the first. So the cached tree
// is never written, and the patched tree stays readable (for the
// background source archive) while the build goes on.
func (b *build) spec(d sandboxDirs, afterPatches, readOnly bool) sandbox.Spec {
	p := b.plan.Paths
	src := sandbox.Mount{Target: p.Source}
	switch {
	case readOnly:
		src.Overlay = &sandbox.Overlay{Lower: []string{d.patchUpper, b.src.Dir}}
	case afterPatches:
		src.Overlay = &sandbox.Overlay{Lower: []string{d.patchUpper, b.src.Dir}, Upper: d.buildUpper, Work: d.buildWk}
	default:
		src.Overlay = &sandbox.Overlay{Lower: []string{b.src.Dir}, Upper: d.patchUpper, Work: d.patchWk}
	}
	s := sandbox.Spec{
		Rootfs:   b.rootfs.Dir,
		StateDir: d.state,
		Hostname: "lkbuild",
		Mounts: []sandbox.Mount{
			{Source: b.t.KernelDir, Target: p.Kernel, ReadOnly: true},
			src,
			{Source: d.out, Target: p.Out},
			{Source: d.work, Target: p.Work},
		},
	}
	if !readOnly {
		s.UpperDir = d.rootUpper
	}
	if u := b.plan.Ucode; u != nil && b.ucode != nil {
		s.Mounts = append(s.Mounts,
			sandbox.Mount{Source: b.ucode.Dir, Target: u.Dir, ReadOnly: true},
			sandbox.Mount{Source: filepath.Join(b.ucode.Dir, "intel-ucode"), Target: u.Firmware, ReadOnly: true})
	}
	if z := b.plan.ZFS; z != nil && b.zfs.Dir != "" {
		m := sandbox.Mount{Target: z.Dir, Overlay: &sandbox.Overlay{Lower: []string{b.zfs.Dir}, Upper: d.zfsUpper, Work: d.zfsWk}}
		if readOnly {
			m.Overlay = &sandbox.Overlay{Lower: []string{d.zfsUpper, b.zfs.Dir}}
		}
		s.Mounts = append(s.Mounts, m)
	}
	if b.env.Emulation != nil {
		Emulate(&s, *b.env.Emulation)
	}
	return s
}
