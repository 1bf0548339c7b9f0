package builder

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/lkbuild/lkbuild/internal/cachedir"
	"github.com/lkbuild/lkbuild/internal/gitfetch"
	"github.com/lkbuild/lkbuild/internal/kernelsrc"
	"github.com/lkbuild/lkbuild/internal/objtree"
	"github.com/lkbuild/lkbuild/kernel"
	"github.com/lkbuild/lkbuild/oci"
	"github.com/lkbuild/lkbuild/toolchain"
)

// BuildResult is what a build made.
type BuildResult struct {
	// Skipped is true when the image already existed and Force was off
	// (in the output layout its names are then written again, in the
	// current form).
	Skipped bool
	// InRegistry is set when a skipped build found its image in the
	// registry (a build with Policy.Push), not the output layout.
	InRegistry bool
	// Incremental is true when the build started from the object tree of
	// the target's last build instead of an empty one.
	Incremental bool
	// Ref is the single-arch image's name (repository:V-H-A).
	Ref    string
	Digest v1.Hash
	// Release is the kernel release, "6.12.117-linuxkit".
	Release string
	// Log is the full log of the build's commands.
	Log string
	// Layout is the OCI layout the image was written to.
	Layout string
	// Pushed lists the tags pushed.
	Pushed []string
	// Provenance is what the image was built from and by; zero for a
	// skipped build.
	Provenance Provenance
}

// Build carries out the target's plan and writes its image:
// LINUXKIT-COMPAT.md §3 in the sandbox, §4 as an image in the output
// layout, and with Policy.Push the tags of §5. Everything the sandbox needs
// is fetched and verified first. On any failure or cancellation nothing is
// written under the image's names and the scratch space is removed; the
// log stays.
func Build(ctx context.Context, t *Target, env Environment, pol Policy, opts ...Option) (*BuildResult, error) {
	if t == nil || t.Plan == nil {
		return nil, errors.New("build: no target (Resolve makes one)")
	}
	if err := env.check(); err != nil {
		return nil, err
	}
	if err := pol.check(); err != nil {
		return nil, err
	}
	if env.Offline && pol.Push {
		return nil, errors.New("build: pushing needs the network: build offline into the layout, then lkbuild push on a connected host")
	}
	b := &build{t: t, plan: t.Plan, env: env, pol: pol, deps: makeDeps(opts)}
	b.res.Ref, b.res.Layout = t.Ref, env.Output.Dir()
	return b.run(ctx)
}

// build is one run of Build.
type build struct {
	t    *Target
	plan *kernel.Plan
	env  Environment
	pol  Policy
	deps deps

	res   BuildResult
	phase string
	began time.Time
	logF  *os.File
	logMu sync.Mutex
	// logPrefix starts the log's name: "" for a build, "kconfig-" for
	// lkbuild kconfig, so that neither overwrites the other's.
	logPrefix string
	// kconfig provisions the builder for lkbuild kconfig: with ncurses
	// for make menuconfig, where its repository holds it.
	kconfig bool
	scr     string // scratch dir

	rootfs toolchain.Rootfs
	// installed is what provision installed into the builder, nil when
	// it installed nothing.
	installed *Installed
	// fast is the fast path's cross toolchain, nil for a native or fully
	// emulated build.
	fast *FastPath
	src  kernelsrc.Tree
	// zfs is the verified OpenZFS source of a zfs-kmod build.
	zfs   kernelsrc.Tree
	ucode *gitfetch.Checkout
	// releases let go of the cache entries the build holds (fetchHeld).
	releases []func()
	// tree is the target's kept object tree, nil when another build holds
	// it; treeBegun once this build writes it; treeNote says why the build
	// is clean.
	tree      *objtree.Slot
	treeBegun bool
	treeNote  string
	// patches are the plan's patches with their SHA-256, read once: for
	// the provenance and the source archive's cache key.
	patches []patchSum
}

type patchSum struct{ rel, sha256 string }

func (b *build) run(ctx context.Context) (*BuildResult, error) {
	if !b.pol.Force {
		exists, err := b.exists(ctx)
		if err != nil {
			return nil, err
		}
		if exists {
			b.res.Skipped = true
			if b.pol.Push {
				b.res.InRegistry = true
				return &b.res, b.completePush(ctx)
			}
			return &b.res, nil
		}
	}
	defer b.close()
	d, err := b.prepare(ctx)
	if err != nil {
		return nil, err
	}
	b.res.Provenance = b.provenance()
	if err := b.openTree(&d); err != nil {
		b.closeTree(d, err)
		return nil, err
	}
	err = b.patch(ctx, d, nil)
	if err == nil {
		err = b.steps(ctx, d)
	}
	b.closeTree(d, err)
	if err != nil {
		return nil, err
	}
	img, atts, err := b.image(ctx, d)
	if err != nil {
		return nil, err
	}
	if b.pol.Push {
		b.startPhase(PhasePush)
		pushed, err := Push(ctx, PushOptions{
			Registry: b.env.Registry, Image: img, Platform: toolchain.Platform(b.t.Arch), Tags: b.t.Tags,
			BuilderImage: b.t.BuilderPull, BuilderSource: b.builderSource(), Attachments: atts,
			Notify: func(s string) { b.emit(Event{Kind: EventNote, Message: s}) },
		})
		b.res.Pushed = pushed
		if err != nil {
			return &b.res, &PushError{Ref: b.res.Ref, Layout: b.res.Layout, Err: err}
		}
	}
	b.endPhase()
	return &b.res, nil
}

// completePush pushes every tag of an image the registry already holds,
// merging it into the indexes again: a build whose push stopped part way
// (a CI job killed after the single-arch tag) left the image without some
// of its tags or index entries, and its retry, skipped, finishes the job.
// Each step is idempotent. The image is read from the registry, lazily:
// nothing is downloaded. Its provenance and SBOM are attached only by the
// build that made it.
func (b *build) completePush(ctx context.Context) error {
	img, err := b.env.Registry.Image(ctx, b.res.Ref)
	if err != nil {
		return err
	}
	if b.res.Digest, err = img.Digest(); err != nil {
		return fmt.Errorf("read %s: %w", b.res.Ref, err)
	}
	platform := toolchain.Platform(b.t.Arch)
	var missing []kernel.Tag
	for _, t := range b.t.Tags {
		var ok bool
		switch t.Kind {
		case kernel.TagArchImage, kernel.TagReleaseArchImage:
			var d v1.Descriptor
			if d, err = b.env.Registry.Head(ctx, t.String()); err == nil {
				ok = d.Digest == b.res.Digest
			}
		case kernel.TagIndex, kernel.TagReleaseIndex:
			ok, err = b.env.Registry.IndexHolds(ctx, t.String(), img, platform)
		case kernel.TagBuilder:
			ok, err = b.env.Registry.Exists(ctx, t.String())
		}
		if err != nil && !errors.Is(err, oci.ErrNotFound) {
			return fmt.Errorf("check %s: %w", t, err)
		}
		if !ok {
			missing = append(missing, t)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	b.emit(Event{Kind: EventNote, Message: fmt.Sprintf("%s exists, without %d of its tags or index entries (a push that stopped part way): pushing them", b.res.Ref, len(missing))})
	pushed, err := Push(ctx, PushOptions{
		Registry: b.env.Registry, Image: img, Platform: platform, Tags: missing,
		BuilderImage: b.t.BuilderPull, Notify: func(s string) { b.emit(Event{Kind: EventNote, Message: s}) },
	})
	b.res.Pushed = pushed
	if err != nil {
		return fmt.Errorf("complete the tags of %s: %w", b.res.Ref, err)
	}
	return nil
}

// prepare does what every use of the builder's sandbox does first: it
// reads the patches, opens the log, makes the scratch directories,
// fetches and verifies the source, the microcode and the builder, installs
// what the kernel directory's Dockerfile installs, and sets up emulation.
// The build and lkbuild kconfig share it. close undoes it.
func (b *build) prepare(ctx context.Context) (sandboxDirs, error) {
	if err := b.readPatches(); err != nil {
		return sandboxDirs{}, err
	}
	if err := b.openLog(); err != nil {
		return sandboxDirs{}, err
	}
	d, err := b.scratchDirs()
	if err != nil {
		return d, err
	}
	if err := b.fetch(ctx); err != nil {
		return d, err
	}
	if err := b.checkFetched(); err != nil {
		return d, err
	}
	if err := b.provision(ctx); err != nil {
		return d, err
	}
	if err := b.prepareToolchain(ctx, d); err != nil {
		return d, err
	}
	return d, nil
}

// close removes the scratch space, lets go of the cache entries and
// closes the log.
func (b *build) close() {
	b.removeScratch()
	b.releaseCache()
	if b.logF != nil {
		b.logF.Close()
	}
}

// patch applies the plan's patches to the source overlay's patch layer,
// each step as the build runs it, and stops at the first that fails. With
// each, every patch's outcome (what patch printed, its error) goes to
// each instead, which returns the error that stops it, or nil to go on.
func (b *build) patch(ctx context.Context, d sandboxDirs, each func(s kernel.Step, out []byte, err error) error) error {
	for _, s := range b.plan.Steps {
		if s.Patch == "" {
			continue
		}
		b.startPhase(string(s.Phase))
		b.emit(Event{Kind: EventStep, Step: s.Name, Message: s.String()})
		b.logf("step %s", s)
		out, err := b.command(ctx, b.spec(d, false, false), s)
		if each != nil {
			err = each(s, out, err)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// exists reports whether the image is already built: in the registry when
// pushing, else in the output layout.
func (b *build) exists(ctx context.Context) (bool, error) {
	if b.pol.Push {
		ok, err := b.env.Registry.Exists(ctx, b.res.Ref)
		if err != nil {
			return false, fmt.Errorf("check for %s: %w", b.res.Ref, err)
		}
		return ok, nil
	}
	img, d, err := b.env.Output.ImageByName(b.res.Ref)
	if err == nil {
		b.res.Digest = d.Digest
		// Its names are brought up to date: a layout an older lkbuild
		// wrote gets the full names, the aliases and the indexes.
		if err := b.env.Output.Publish(ctx, layoutEntries(b.t.Tags, img, toolchain.Platform(b.t.Arch), nil, v1.Platform{})...); err != nil {
			return false, fmt.Errorf("name %s in the output layout: %w", b.res.Ref, err)
		}
		return true, nil
	}
	if errors.Is(err, oci.ErrNotFound) || errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	// A layout that cannot be read would fail the build at its end.
	return false, fmt.Errorf("check the output layout for %s: %w", b.res.Ref, err)
}

// readPatches reads and hashes the plan's patches, so that a missing one
// fails the build before anything is fetched.
func (b *build) readPatches() error {
	for _, p := range b.plan.Patches {
		data, err := os.ReadFile(filepath.Join(b.t.KernelDir, filepath.FromSlash(p)))
		if err != nil {
			return fmt.Errorf("patch %s: %w", p, err)
		}
		sum := sha256.Sum256(data)
		b.patches = append(b.patches, patchSum{rel: p, sha256: hex.EncodeToString(sum[:])})
	}
	return nil
}

// keyring reads the keys that sign the sources: the request's file, else
// the kernel directory's.
func (b *build) keyring() (*kernel.Keyring, error) {
	if b.t.Request.KeysFile == "" {
		return b.t.Dir.Keyring()
	}
	return readKeyring(b.t.Request.KeysFile, "source signing keys")
}

// readKeyring reads the keys in file; what names them in errors.
func readKeyring(file, what string) (*kernel.Keyring, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	defer f.Close()
	return kernel.ReadKeyring(file, f)
}

// fetch gets the source, the microcode and the builder rootfs.
func (b *build) fetch(ctx context.Context) error {
	b.startPhase(PhaseFetch)
	keys, err := b.keyring()
	if err != nil {
		return err
	}
	// The blob store has no lock of its own per blob: a build holds it
	// whole, and cache prune leaves it alone while any build runs.
	release, err := b.env.Cache.Use(cachedir.KindBlobs, "store")
	if err != nil {
		return err
	}
	b.releases = append(b.releases, release)
	err = b.fetchHeld(cachedir.KindSource, func() (string, string, error) {
		b.src, err = b.deps.fetchSource(ctx, kernelsrc.Options{
			Mirror:  b.env.SourceMirror,
			Dir:     b.env.Cache.Sources(),
			Keyring: keys,
			Offline: b.env.Offline,
			Progress: func(p kernelsrc.Progress) {
				b.emit(Event{Kind: EventProgress, Message: p.Phase.String() + " " + p.File, Done: p.Done, Total: p.Total, Unit: "bytes"})
			},
		}, b.plan.Version)
		return b.src.SHA256, b.src.Dir, err
	})
	if err != nil {
		return b.missing(fmt.Sprintf("the kernel %s source (sha256sums.asc, the .tar.sign and the tarball, from %s)", b.plan.Version, b.sourceMirror()), err)
	}
	b.logf("source %s sha256 %s (cached %v) in %s", b.src.URL, b.src.SHA256, b.src.Cached, b.src.Dir)
	if err := b.fetchZFS(ctx); err != nil {
		return err
	}
	if u := b.plan.Ucode; u != nil {
		repo := u.Repo
		if b.env.UcodeRepo != "" {
			repo = b.env.UcodeRepo
		}
		var c gitfetch.Checkout
		err := b.fetchHeld(cachedir.KindGit, func() (string, string, error) {
			c, err = b.deps.fetchGit(ctx, repo, u.Ref, b.env.Cache.Git(), gitfetch.Offline(b.env.Offline))
			return gitEntry(b.env.Cache, c.Dir), c.Dir, err
		})
		if err != nil {
			if m := b.missing(fmt.Sprintf("the Intel microcode, tag %s of %s", u.Ref, repo), err); m != err {
				return m
			}
			return fmt.Errorf("intel microcode (or build with --no-ucode): %w", err)
		}
		b.ucode = &c
		b.logf("ucode %s %s commit %s", repo, u.Ref, c.Commit)
	}
	b.startPhase(PhaseRootfs)
	store, err := b.env.Cache.Blobs()
	if err != nil {
		return err
	}
	err = b.fetchHeld(cachedir.KindRootfs, func() (string, string, error) {
		b.rootfs, err = b.deps.prepareRootfs(ctx, b.t.BuilderPull, b.t.BuilderArch, toolchain.RootfsOptions{
			Registry: b.env.Registry, Store: store, Dir: b.env.Cache.Rootfs(),
			Progress: func(p oci.Progress) {
				b.emit(Event{Kind: EventProgress, Message: "pull " + p.Digest.String(), Done: p.Complete, Total: p.Total, Unit: "bytes"})
			},
		})
		return b.rootfs.Digest.String(), b.rootfs.Dir, err
	})
	if err != nil {
		return b.missing(fmt.Sprintf("the builder image %s for %s", b.t.BuilderPull, b.t.BuilderArch), err)
	}
	b.logf("builder %s from %s %s (cached %v)", b.plan.BuilderImage, b.t.BuilderPull, b.rootfs.Digest, b.rootfs.Cached)
	return nil
}

// fetchHeld runs fetch, which puts something in the cache and returns its
// entry name (cachedir.Entries) and path, and holds the entry for the rest
// of the build, so that lkbuild cache prune leaves it. A prune that
// removed it between the fetch and the hold costs one more fetch.
func (b *build) fetchHeld(kind string, fetch func() (name, path string, err error)) error {
	name, path, err := fetch()
	if err != nil {
		return err
	}
	release, err := b.env.Cache.Use(kind, name)
	if err != nil {
		return err
	}
	b.releases = append(b.releases, release)
	if _, err := os.Stat(path); err == nil {
		return nil
	}
	_, _, err = fetch()
	return err
}

// gitEntry is the cache entry name of a checkout's directory: its folder
// under the cache's git/.
func gitEntry(c cachedir.Dir, dir string) string {
	rel, err := filepath.Rel(c.Git(), dir)
	if err != nil {
		return filepath.Base(dir)
	}
	first, _, _ := strings.Cut(filepath.ToSlash(rel), "/")
	return first
}

// releaseCache lets go of the cache entries the build held.
func (b *build) releaseCache() {
	for _, r := range b.releases {
		r()
	}
	b.releases = nil
}

// image packs the outputs as one deterministic layer, attaches the
// provenance and SBOM to the image, and only then writes the image to the
// output layout under its names.
func (b *build) image(ctx context.Context, d sandboxDirs) (v1.Image, []oci.Attachment, error) {
	b.startPhase(PhasePackage)
	layer, err := b.env.Output.WriteLayer(func(w io.Writer) error {
		return oci.WriteTar(w, os.DirFS(d.out), oci.TarOptions{Epoch: b.plan.Epoch})
	})
	if err != nil {
		return nil, nil, fmt.Errorf("package: %w", err)
	}
	img, err := oci.NewImage(oci.ImageSpec{
		Platform:    toolchain.Platform(b.t.Arch),
		Created:     b.plan.Epoch,
		Labels:      b.labels(),
		Annotations: b.res.Provenance.Annotations(),
		// Nothing here names the image: the same build pushed under
		// another repository is the same image.
		Layers: []oci.ImageLayer{{Layer: layer, CreatedBy: "lkbuild build", Comment: b.layerComment()}},
	})
	if err != nil {
		return nil, nil, fmt.Errorf("package: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	if b.res.Digest, err = img.Digest(); err != nil {
		return nil, nil, fmt.Errorf("package: %w", err)
	}
	atts, err := b.attach(ctx, d, img)
	if err != nil {
		return nil, nil, err
	}
	builder, bp, err := b.builderForLayout(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("package: %w", err)
	}
	if err := b.env.Output.Publish(ctx, layoutEntries(b.t.Tags, img, toolchain.Platform(b.t.Arch), builder, bp)...); err != nil {
		return nil, nil, fmt.Errorf("package: %w", err)
	}
	return img, atts, nil
}

// layerComment describes the image's layer: the kernel release, or the
// tool and the version it was built from.
func (b *build) layerComment() string {
	if b.plan.Tool != "" {
		return b.plan.Tool + " " + b.plan.Version.String() + b.plan.Extra
	}
	return "kernel " + b.res.Release
}

// builderForLayout puts the builder image into the output layout, for its
// -builder tag (the FROM of LinuxKit's out-of-tree module recipe), and
// returns it with its platform; nil when the build has no image of it or
// no -builder tag (a tool image).
// Its blobs are hard-linked from the cache (or the builder's own layout)
// where the file system allows, else copied once per layout.
func (b *build) builderForLayout(ctx context.Context) (v1.Image, v1.Platform, error) {
	img := b.rootfs.Image
	if img == nil || !slices.ContainsFunc(b.t.Tags, func(t kernel.Tag) bool { return t.Kind == kernel.TagBuilder }) {
		return nil, v1.Platform{}, nil
	}
	var from []*oci.Store
	if s, err := b.env.Cache.Blobs(); err == nil {
		from = append(from, s)
	}
	if dir, _, ok := toolchain.ParseLayoutRef(b.t.BuilderPull); ok {
		if s, err := oci.OpenStore(dir); err == nil {
			from = append(from, s)
		}
	}
	if err := b.env.Output.LinkImage(ctx, img, from...); err != nil {
		return nil, v1.Platform{}, fmt.Errorf("builder image %s: %w", b.t.BuilderPull, err)
	}
	return img, imagePlatform(img, toolchain.Platform(b.t.BuilderArch)), nil
}

// attach writes the image's provenance and SBOM to the output layout, as
// artifacts whose subject is the image.
func (b *build) attach(ctx context.Context, d sandboxDirs, img v1.Image) ([]oci.Attachment, error) {
	atts, err := b.attachments(d, b.res.Digest)
	if err != nil {
		return nil, fmt.Errorf("package: %w", err)
	}
	subject, err := oci.DescriptorOf(img)
	if err != nil {
		return nil, fmt.Errorf("package: %w", err)
	}
	for _, a := range atts {
		if _, err := b.env.Output.Attach(ctx, subject, a); err != nil {
			return nil, fmt.Errorf("package: attach %s: %w", a.ArtifactType, err)
		}
	}
	return atts, nil
}

// builderSource is where the builder image can be copied from for the
// -builder tag: nil for a registry reference (copied registry-side), the
// local image when it came from an OCI layout.
func (b *build) builderSource() v1.Image {
	if _, _, ok := toolchain.ParseLayoutRef(b.t.BuilderPull); !ok {
		return nil
	}
	return b.rootfs.Image
}
