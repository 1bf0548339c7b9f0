package builder

import (
	"context"
	"errors"
	"fmt"

	"github.com/lkbuild/lkbuild/internal/cachedir"
	"github.com/lkbuild/lkbuild/internal/gitfetch"
	"github.com/lkbuild/lkbuild/internal/kernelsrc"
	"github.com/lkbuild/lkbuild/kernel"
	"github.com/lkbuild/lkbuild/oci"
	"github.com/lkbuild/lkbuild/sandbox"
	"github.com/lkbuild/lkbuild/toolchain"
)

// Environment is where a build runs: what it pulls from, caches in and
// writes to. It does not change the image a build makes.
type Environment struct {
	// Registry pulls the builder image and, with Policy.Push, receives
	// the result. Required.
	Registry *oci.Registry
	// Cache is lkbuild's cache directory (blobs, rootfs trees, sources,
	// microcode, logs, scratch space). Required.
	Cache cachedir.Dir
	// Output is the OCI layout the image is written to. Required.
	Output *oci.Store
	// SourceMirror is where kernel sources come from (kernelsrc.Options);
	// "" is kernel.org.
	SourceMirror string
	// UcodeRepo overrides the microcode repository (a URL or a local
	// mirror); the tag is the plan's.
	UcodeRepo string
	// ZFSMirror is where the zfs-kmod tool's OpenZFS release comes from:
	// a URL or a directory holding zfs-<version>/zfs-<version>.tar.gz and
	// its .asc; "" is kernel.DefaultZFSMirror (OpenZFS's GitHub releases).
	ZFSMirror string
	// Emulation runs a foreign arch's builder; nil for the host's arch.
	Emulation *toolchain.Emulation
	// CrossImage, with Emulation, is an image for the host's arch holding
	// the cross toolchain of the builder's own gcc and binutils versions
	// (a registry reference or oci:DIR:NAME): the fast path, whose output
	// is the fully emulated build's. "" builds fully emulated.
	CrossImage string
	// Offline forbids the network from the first step to the last: the
	// source, the microcode and the images must be in the cache (lkbuild
	// fetch puts them there) or in local mirrors, and what is missing is
	// a *MissingError. Registry must be made with oci.WithOffline too.
	Offline bool
}

// Policy is how a build goes: what it may skip, whether it pushes, what it
// reports.
type Policy struct {
	// Push pushes every tag after writing the layout. Force builds even
	// when the image exists (locally, or with Push in the registry).
	Push, Force bool
	// Clean builds from an empty object tree. Without it a build starts
	// from the object tree of its target's last build (same source,
	// builder, toolchain and config) when its patches changed only the
	// contents of files, and kbuild rebuilds what they reach: the image is
	// the same as a clean build's.
	Clean bool
	// XZLevel is the xz preset of src/linux.tar.xz, 0-9 (the CLI's
	// default is DefaultXZLevel; upstream uses 6).
	XZLevel int
	// Version is lkbuild's version, recorded in the Provenance only: it
	// does not change the image.
	Version string
	// Invocation is the command line that asked for the build, recorded
	// in the provenance attachment only.
	Invocation []string
	// Events receives progress; nil discards it.
	Events func(Event)
}

// check names the first missing or bad option.
func (e Environment) check() error {
	if err := e.checkFetch(); err != nil {
		return err
	}
	if e.Output == nil {
		return errors.New("build: no output layout (Environment.Output)")
	}
	return nil
}

// checkFetch checks what fetching needs: no output layout.
func (e Environment) checkFetch() error {
	switch {
	case e.Registry == nil:
		return errors.New("build: no registry (Environment.Registry)")
	case e.Cache.IsZero():
		return errors.New("build: no cache directory (Environment.Cache)")
	case e.Offline && !e.Registry.Offline():
		return errors.New("build: offline, but the registry is not (oci.WithOffline)")
	}
	return nil
}

func (p Policy) check() error {
	if p.XZLevel < 0 || p.XZLevel > 9 {
		return fmt.Errorf("build: xz level %d is not 0-9", p.XZLevel)
	}
	return nil
}

// The work Build hands to other packages, as functions so that tests can
// put fakes in their place (Option).
type (
	fetchSourceFunc   func(context.Context, kernelsrc.Options, kernel.Version) (kernelsrc.Tree, error)
	fetchArchiveFunc  func(context.Context, kernelsrc.Options, kernelsrc.Archive) (kernelsrc.Tree, error)
	fetchGitFunc      func(ctx context.Context, url, ref, dir string, opts ...gitfetch.Option) (gitfetch.Checkout, error)
	prepareRootfsFunc func(context.Context, string, kernel.Arch, toolchain.RootfsOptions) (toolchain.Rootfs, error)
	runFunc           func(context.Context, sandbox.Spec) error
)

// deps are the functions a build calls out to.
type deps struct {
	fetchSource   fetchSourceFunc
	fetchArchive  fetchArchiveFunc
	fetchGit      fetchGitFunc
	prepareRootfs prepareRootfsFunc
	run           runFunc
}

// Option changes how Build does its work. There are none for callers yet;
// tests use the unexported ones to replace a dependency with a fake.
type Option func(*deps)

func makeDeps(opts []Option) deps {
	d := deps{
		fetchSource:   kernelsrc.Fetch,
		fetchArchive:  kernelsrc.FetchArchive,
		fetchGit:      gitfetch.Fetch,
		prepareRootfs: toolchain.PrepareRootfs,
		run:           sandbox.Run,
	}
	for _, o := range opts {
		o(&d)
	}
	return d
}

// withSources replaces kernelsrc.Fetch.
func withSources(f fetchSourceFunc) Option { return func(d *deps) { d.fetchSource = f } }

// withArchive replaces kernelsrc.FetchArchive.
func withArchive(f fetchArchiveFunc) Option { return func(d *deps) { d.fetchArchive = f } }

// withGit replaces gitfetch.Fetch.
func withGit(f fetchGitFunc) Option { return func(d *deps) { d.fetchGit = f } }

// withRootfs replaces toolchain.PrepareRootfs.
func withRootfs(f prepareRootfsFunc) Option { return func(d *deps) { d.prepareRootfs = f } }

// withRunner replaces sandbox.Run.
func withRunner(f runFunc) Option { return func(d *deps) { d.run = f } }
