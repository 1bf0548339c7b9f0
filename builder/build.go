package builder

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/lkbuild/lkbuild/internal/gitfetch"
	"github.com/lkbuild/lkbuild/internal/kernelsrc"
	"github.com/lkbuild/lkbuild/internal/rmtree"
	"github.com/lkbuild/lkbuild/kernel"
	"github.com/lkbuild/lkbuild/oci"
	"github.com/lkbuild/lkbuild/sandbox"
	"github.com/lkbuild/lkbuild/toolchain"
)

// The phases of a build, in order, as events name them.
const (
	PhaseFetch   = "fetch"
	PhaseRootfs  = "rootfs"
	PhasePatch   = "patch"
	PhaseConfig  = "config"
	PhaseCompile = "compile"
	PhaseModules = "modules"
	PhasePackage = "package"
	PhasePush    = "push"
)

// Labels and annotations of a kernel image.
const (
	LabelBuildImage = "org.mobyproject.linuxkit.kernel.buildimage"
	LabelSource     = "org.opencontainers.image.source"
	LabelRevision   = "org.opencontainers.image.revision"

	// Provenance: the inputs of the build, as manifest annotations.
	AnnotationPrefix        = "dev.lkbuild."
	AnnotationVersion       = AnnotationPrefix + "version"
	AnnotationSourceURL     = AnnotationPrefix + "source.url"
	AnnotationSourceSHA256  = AnnotationPrefix + "source.sha256"
	AnnotationBuilderImage  = AnnotationPrefix + "builder.image"
	AnnotationBuilderDigest = AnnotationPrefix + "builder.digest"
	AnnotationConfigSHA256  = AnnotationPrefix + "config.sha256"
	AnnotationPatches       = AnnotationPrefix + "patches"
	AnnotationEpoch         = AnnotationPrefix + "epoch"
	AnnotationArch          = AnnotationPrefix + "arch"
	AnnotationVariant       = AnnotationPrefix + "variant"
	AnnotationSeriesHash    = AnnotationPrefix + "series.hash"
	AnnotationUcodeCommit   = AnnotationPrefix + "ucode.commit"
	AnnotationSourceXZ      = AnnotationPrefix + "source.xz"
)

// DefaultXZLevel is the xz preset of src/linux.tar.xz. Upstream's tar cJf
// uses 6, which costs about five times the CPU of 1 for a 30 % smaller
// file; lkbuild picks 1 so the source archive does not dominate the build.
const DefaultXZLevel = 1

// EventKind says what an Event reports.
type EventKind string

const (
	EventPhaseStart EventKind = "phase-start"
	EventPhaseEnd   EventKind = "phase-end"
	EventStep       EventKind = "step"
	EventProgress   EventKind = "progress"
	EventNote       EventKind = "note"
)

// Event is one thing a build reports as it goes. The library prints
// nothing; the caller renders events (text, progress bars, JSON).
type Event struct {
	Time  time.Time `json:"time"`
	Kind  EventKind `json:"kind"`
	Phase string    `json:"phase,omitempty"`
	// Step names the plan step (EventStep).
	Step    string `json:"step,omitempty"`
	Message string `json:"message,omitempty"`
	// Elapsed is the phase's duration (EventPhaseEnd).
	Elapsed time.Duration `json:"elapsed,omitempty"`
	// Done and Total count Unit ("objects", "bytes"); Total is 0 when
	// unknown and an estimate for objects (the previous build's count).
	Done  int64  `json:"done,omitempty"`
	Total int64  `json:"total,omitempty"`
	Unit  string `json:"unit,omitempty"`
}

// BuildOptions is everything Build needs.
type BuildOptions struct {
	Plan *kernel.Plan
	// KernelDir is the host path of the kernel directory the plan was
	// made from.
	KernelDir string
	// Hash is the series hash; Tags the tags of this build (kernel.Name.Tags).
	Hash string
	Tags []kernel.Tag
	// Revision and SourceRepo are the kernel directory's git commit and
	// remote, for the OCI labels; empty when unknown.
	Revision, SourceRepo string
	// Version is lkbuild's version, recorded as an annotation.
	Version string

	// Registry pulls the builder image and, with Push, receives the result.
	Registry *oci.Registry
	// Cache holds pulled blobs; CacheDir is lkbuild's cache directory
	// (rootfs trees, sources, ucode, logs, scratch space).
	Cache    *oci.Store
	CacheDir string
	// Output is the OCI layout the image is written to.
	Output *oci.Store

	// SourceMirror is where kernel sources come from (kernelsrc.Options).
	SourceMirror string
	// Keyring verifies the sources: the kernel directory's common/keys.asc.
	Keyring *kernel.Keyring
	// UcodeRepo overrides the microcode repository (a URL or a local
	// mirror); the tag is the plan's.
	UcodeRepo string
	// Emulation runs a foreign arch's builder; nil for the host's arch.
	Emulation *toolchain.Emulation
	// XZLevel is the xz preset of src/linux.tar.xz (0-9; see
	// DefaultXZLevel).
	XZLevel int

	// Push pushes every tag after writing the layout. Force builds even
	// when the image exists (locally, or with Push in the registry).
	Push, Force bool
	// Events receives progress; nil discards it.
	Events func(Event)
}

// BuildResult is what a build made.
type BuildResult struct {
	// Skipped is true when the image already existed and Force was off.
	Skipped bool
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
}

// StepError is a step of the plan that failed.
type StepError struct {
	Step string
	// Patch is the patch file, for a patch that did not apply; Rejected
	// holds the hunks patch rejected, as they are in the patch.
	Patch    string
	Rejected []string
	// Code is the command's exit status (0 for a step lkbuild did itself).
	Code int
	// Log is the path of the full log; Tail its last lines.
	Log  string
	Tail []string
	Err  error
}

func (e *StepError) Error() string {
	if e.Patch != "" {
		msg := "patch " + e.Patch + " does not apply"
		if len(e.Rejected) > 0 {
			msg += fmt.Sprintf(" (%d hunk(s) rejected)", len(e.Rejected))
		}
		return msg
	}
	return fmt.Sprintf("step %s: %v", e.Step, e.Err)
}

func (e *StepError) Unwrap() error { return e.Err }

// PushError is a push that failed after the image was written locally.
type PushError struct {
	Ref    string
	Layout string
	Err    error
}

func (e *PushError) Error() string {
	return fmt.Sprintf("push %s: %v (the image is kept in the layout %s; retry with lkbuild push)", e.Ref, e.Err, e.Layout)
}

func (e *PushError) Unwrap() error { return e.Err }

// tailLines is how much of the log a failure shows.
const tailLines = 40

// Build runs the plan and writes its image: LINUXKIT-COMPAT.md §3 in the
// sandbox, §4 as an image in the Output layout, and with Push the tags of
// §5. Everything the sandbox needs is fetched and verified first. On any
// failure or cancellation nothing is written under the image's names and
// the scratch space is removed; the log stays.
func Build(ctx context.Context, o BuildOptions) (*BuildResult, error) {
	b, err := newBuild(o)
	if err != nil {
		return nil, err
	}
	return b.run(ctx)
}

type build struct {
	BuildOptions
	plan   *kernel.Plan
	res    BuildResult
	arch   toolchain.Arch
	phase  string
	began  time.Time
	logF   *os.File
	logMu  sync.Mutex
	scr    string // scratch dir
	rootfs toolchain.Rootfs
	src    kernelsrc.Tree
	ucode  *gitfetch.Checkout
	// patches are the plan's patches with their SHA-256, read once: for
	// the provenance and the source archive's cache key.
	patches []patchSum
}

type patchSum struct{ rel, sha256 string }

func newBuild(o BuildOptions) (*build, error) {
	if o.Plan == nil || o.Output == nil || o.Cache == nil || o.Registry == nil || o.CacheDir == "" || o.Keyring == nil {
		return nil, errors.New("build: missing options")
	}
	a, err := toolchain.ParseArch(o.Plan.Arch.Uname)
	if err != nil {
		return nil, fmt.Errorf("build: %w", err)
	}
	if o.XZLevel < 0 || o.XZLevel > 9 {
		return nil, fmt.Errorf("build: xz level %d is not 0-9", o.XZLevel)
	}
	b := &build{BuildOptions: o, plan: o.Plan, arch: a}
	b.res.Layout = o.Output.Dir()
	for _, t := range o.Tags {
		if t.Kind == kernel.TagArchImage {
			b.res.Ref = t.String()
		}
	}
	if b.res.Ref == "" {
		return nil, errors.New("build: no single-arch tag")
	}
	return b, nil
}

func (b *build) emit(e Event) {
	if b.Events == nil {
		return
	}
	e.Time = time.Now()
	if e.Phase == "" {
		e.Phase = b.phase
	}
	b.Events(e)
}

func (b *build) startPhase(p string) {
	if b.phase == p {
		return
	}
	b.endPhase()
	b.phase, b.began = p, time.Now()
	b.emit(Event{Kind: EventPhaseStart})
}

func (b *build) endPhase() {
	if b.phase == "" {
		return
	}
	b.emit(Event{Kind: EventPhaseEnd, Elapsed: time.Since(b.began)})
	b.phase = ""
}

func (b *build) run(ctx context.Context) (*BuildResult, error) {
	if !b.Force {
		exists, err := b.exists(ctx)
		if err != nil {
			return nil, err
		}
		if exists {
			b.res.Skipped = true
			return &b.res, nil
		}
	}
	if err := b.openLog(); err != nil {
		return nil, err
	}
	defer b.logF.Close()
	scratch := filepath.Join(b.CacheDir, "work")
	if err := os.MkdirAll(scratch, 0o755); err != nil {
		return nil, fmt.Errorf("build: %w", err)
	}
	var err error
	if b.scr, err = os.MkdirTemp(scratch, "build-"); err != nil {
		return nil, fmt.Errorf("build: %w", err)
	}
	defer b.removeScratch()

	if err := b.fetch(ctx); err != nil {
		return nil, err
	}
	if err := b.steps(ctx); err != nil {
		return nil, err
	}
	img, err := b.image(ctx)
	if err != nil {
		return nil, err
	}
	if b.Push {
		b.startPhase(PhasePush)
		pushed, err := Push(ctx, PushOptions{
			Registry: b.Registry, Image: img, Platform: b.arch.Platform(), Tags: b.Tags,
			BuilderImage: b.plan.BuilderImage, BuilderSource: b.builderSource(),
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

// exists reports whether the image is already built: in the registry when
// pushing, else in the output layout.
func (b *build) exists(ctx context.Context) (bool, error) {
	if b.Push {
		ok, err := b.Registry.Exists(ctx, b.res.Ref)
		if err != nil {
			return false, fmt.Errorf("check for %s: %w", b.res.Ref, err)
		}
		return ok, nil
	}
	_, d, err := b.Output.ImageByName(b.res.Ref)
	if err == nil {
		b.res.Digest = d.Digest
		return true, nil
	}
	if errors.Is(err, oci.ErrNotFound) || errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	// A layout that cannot be read would fail the build at its end.
	return false, fmt.Errorf("check the output layout for %s: %w", b.res.Ref, err)
}

func (b *build) openLog() error {
	dir := filepath.Join(b.CacheDir, "logs")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("build log: %w", err)
	}
	tag := b.res.Ref[strings.LastIndex(b.res.Ref, ":")+1:]
	b.res.Log = filepath.Join(dir, tag+".log")
	f, err := os.Create(b.res.Log)
	if err != nil {
		return fmt.Errorf("build log: %w", err)
	}
	b.logF = f
	return nil
}

// logf writes a line of lkbuild's own to the log.
func (b *build) logf(format string, args ...any) {
	b.logMu.Lock()
	defer b.logMu.Unlock()
	fmt.Fprintf(b.logF, "### "+format+"\n", args...)
}

// logWriter is the log as an io.Writer for a command's output.
type logWriter struct{ b *build }

func (w logWriter) Write(p []byte) (int, error) {
	w.b.logMu.Lock()
	defer w.b.logMu.Unlock()
	return w.b.logF.Write(p)
}

func (b *build) removeScratch() {
	if b.scr == "" {
		return
	}
	if rmtree.RemoveAll(b.scr) != nil {
		sandbox.RemoveTree(b.scr)
	}
}

// fetch reads the patches and gets the source, the microcode and the
// builder rootfs.
func (b *build) fetch(ctx context.Context) error {
	b.startPhase(PhaseFetch)
	for _, p := range b.plan.Patches {
		data, err := os.ReadFile(filepath.Join(b.KernelDir, filepath.FromSlash(p)))
		if err != nil {
			return fmt.Errorf("patch %s: %w", p, err)
		}
		sum := sha256.Sum256(data)
		b.patches = append(b.patches, patchSum{rel: p, sha256: hex.EncodeToString(sum[:])})
	}
	var err error
	b.src, err = kernelsrc.Fetch(ctx, kernelsrc.Options{
		Mirror:   b.SourceMirror,
		CacheDir: b.CacheDir,
		Keyring:  b.Keyring,
		Progress: func(p kernelsrc.Progress) {
			b.emit(Event{Kind: EventProgress, Message: p.Phase.String() + " " + p.File, Done: p.Done, Total: p.Total, Unit: "bytes"})
		},
	}, b.plan.Version)
	if err != nil {
		return err
	}
	b.logf("source %s sha256 %s (cached %v) in %s", b.src.URL, b.src.SHA256, b.src.Cached, b.src.Dir)
	if u := b.plan.Ucode; u != nil {
		repo := u.Repo
		if b.UcodeRepo != "" {
			repo = b.UcodeRepo
		}
		c, err := gitfetch.Fetch(ctx, repo, u.Ref, filepath.Join(b.CacheDir, "git"))
		if err != nil {
			return fmt.Errorf("intel microcode (or build with --no-ucode): %w", err)
		}
		b.ucode = &c
		b.logf("ucode %s %s commit %s", repo, u.Ref, c.Commit)
	}
	b.startPhase(PhaseRootfs)
	b.rootfs, err = toolchain.PrepareRootfs(ctx, b.plan.BuilderImage, b.arch, toolchain.RootfsOptions{
		Registry: b.Registry, Store: b.Cache, Dir: filepath.Join(b.CacheDir, "rootfs"),
		Progress: func(p oci.Progress) {
			b.emit(Event{Kind: EventProgress, Message: "pull " + p.Digest.String(), Done: p.Complete, Total: p.Total, Unit: "bytes"})
		},
	})
	if err != nil {
		return err
	}
	b.logf("builder %s %s (cached %v)", b.plan.BuilderImage, b.rootfs.Digest, b.rootfs.Cached)
	return nil
}

// stepPhase says which phase a plan step belongs to.
func stepPhase(s kernel.Step) string {
	switch {
	case s.Patch != "" || strings.HasPrefix(s.Name, "intel-ucode"):
		return PhasePatch
	case s.Name == "src/linux.tar.xz":
		return PhasePatch
	case s.Name == "install config" || s.Name == "defconfig" || s.Name == "oldconfig" || s.Name == "check config":
		return PhaseConfig
	case s.Name == "make" || s.Name == "kernelrelease" || s.Name == "kernel" || s.Name == "System.map" || s.Name == "vmlinux":
		return PhaseCompile
	case s.Name == "kernel-dev.tar" || s.Name == "kernel-builder" || s.Name == "kernel-source-info":
		return PhasePackage
	}
	return PhaseModules
}

// sandboxDirs are the host directories of one build.
type sandboxDirs struct {
	rootUpper           string
	patchUpper, patchWk string
	buildUpper, buildWk string
	out, work, state    string
}

func (b *build) dirs() (sandboxDirs, error) {
	j := func(n string) string { return filepath.Join(b.scr, n) }
	d := sandboxDirs{
		rootUpper: j("root"), patchUpper: j("linux-patched"), patchWk: j("linux-patched.work"),
		buildUpper: j("linux-build"), buildWk: j("linux-build.work"),
		out: j("out"), work: j("work"), state: j("state"),
	}
	for _, p := range []string{d.rootUpper, d.patchUpper, d.patchWk, d.buildUpper, d.buildWk, d.out, d.work, d.state} {
		if err := os.MkdirAll(p, 0o755); err != nil {
			return d, fmt.Errorf("build: %w", err)
		}
	}
	return d, nil
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
			{Source: b.KernelDir, Target: p.Kernel, ReadOnly: true},
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
	if b.Emulation != nil {
		Emulate(&s, *b.Emulation)
	}
	return s
}

// steps runs the plan's steps.
func (b *build) steps(ctx context.Context) error {
	d, err := b.dirs()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var bg sync.WaitGroup
	defer bg.Wait()
	var bgMu sync.Mutex
	var bgErr error
	bgFailed := func() error {
		bgMu.Lock()
		defer bgMu.Unlock()
		return bgErr
	}

	release := ""
	after := false
	for _, s := range b.plan.Steps {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := bgFailed(); err != nil {
			return err
		}
		s, err := s.Expand(release)
		if err != nil {
			return err
		}
		b.startPhase(stepPhase(s))
		b.emit(Event{Kind: EventStep, Step: s.Name, Message: s.String()})
		b.logf("step %s", s)
		if t, ok := s.Action.(*kernel.TarArchive); ok && t.XZ {
			// The patched tree, archived while the build goes on: a
			// read-only view of the patches' upper dir, which no later
			// step writes.
			after = true
			spec := b.spec(d, true, true)
			bg.Add(1)
			go func() {
				defer bg.Done()
				if err := b.sourceArchive(ctx, spec, s, filepath.Join(d.out, filepath.FromSlash(strings.TrimPrefix(t.To, b.plan.Paths.Out+"/")))); err != nil {
					bgMu.Lock()
					bgErr = err
					bgMu.Unlock()
					cancel()
				}
			}()
			continue
		}
		spec := b.spec(d, after, false)
		if s.Action != nil {
			err = b.action(ctx, spec, s)
		} else {
			var out []byte
			out, err = b.command(ctx, spec, s)
			if err == nil && s.PrintsRelease {
				if release, err = kernel.ParseRelease(out, b.plan.Version); err == nil {
					b.res.Release = release
					b.emit(Event{Kind: EventNote, Message: "kernel release " + release})
				}
			}
		}
		if err != nil {
			if bgErr := bgFailed(); ctx.Err() != nil && bgErr != nil {
				return bgErr
			}
			return err
		}
	}
	bg.Wait()
	if err := bgFailed(); err != nil {
		return err
	}
	return b.checkOutputs(d.out)
}

// sourceArchive makes src/linux.tar.xz, or takes it from the cache: it is a
// function of the verified source, the patches, the epoch and the
// builder's xz, and costs more CPU than anything but the compile.
func (b *build) sourceArchive(ctx context.Context, spec sandbox.Spec, s kernel.Step, out string) error {
	h := sha256.New()
	fmt.Fprintf(h, "source %s\nepoch %d\nbuilder %s\nxz -%d 16MiB\nstep %s\n", b.src.SHA256, b.plan.Epoch.Unix(), b.rootfs.Digest, b.XZLevel, s)
	for _, p := range b.patches {
		fmt.Fprintf(h, "patch %s %s\n", p.rel, p.sha256)
	}
	cached := filepath.Join(b.CacheDir, "archives", hex.EncodeToString(h.Sum(nil))+".tar.xz")
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
	return []string{"xz", "-" + strconv.Itoa(b.XZLevel), "-T" + strconv.Itoa(max(b.plan.Jobs, 2)), "--block-size=16MiB", "-c"}
}

// objectLine matches kbuild's short output for an object it compiles.
var objectLine = regexp.MustCompile(`^\s+(CC|AS)(\s+\[M\])?\s+\S+\.o$`)

// command runs a command step. It returns what the command printed on
// standard output when the step prints the release.
func (b *build) command(ctx context.Context, spec sandbox.Spec, s kernel.Step) ([]byte, error) {
	spec.Args, spec.Env, spec.Dir = s.Args, s.Env, s.Dir
	if b.Emulation != nil && !b.Emulation.Register {
		spec.Env = sandbox.EnvDefaults(spec.Env, b.Emulation.Env)
	}
	var stdout bytes.Buffer
	log := logWriter{b}
	var out io.Writer = log
	var lines *lineWriter
	switch {
	case s.PrintsRelease:
		out = io.MultiWriter(log, &stdout)
	case s.Patch != "":
		out = io.MultiWriter(log, &stdout)
	case s.Name == "make":
		total := b.objectEstimate()
		var n int64
		lines = &lineWriter{line: func(l string) {
			if objectLine.MatchString(l) {
				n++
				b.emit(Event{Kind: EventProgress, Step: s.Name, Done: n, Total: total, Unit: "objects"})
			}
		}}
		out = io.MultiWriter(log, lines)
		defer func() {
			if n > 0 {
				b.saveObjectCount(n)
			}
		}()
	}
	spec.Stdout, spec.Stderr = out, log
	spec.Notify = func(msg string) { b.emit(Event{Kind: EventNote, Message: msg}) }
	err := sandbox.Run(ctx, spec)
	if lines != nil {
		lines.flush()
	}
	if err == nil {
		return stdout.Bytes(), nil
	}
	if ctx.Err() != nil {
		return nil, err
	}
	se := &StepError{Step: s.Name, Err: err, Log: b.res.Log}
	var ee *sandbox.ExitError
	if errors.As(err, &ee) {
		se.Code = ee.Code
	}
	if s.Patch != "" {
		se.Patch = s.Patch
		se.Rejected = rejectedHunks(stdout.String(), b.patchFile(s))
	}
	se.Tail = b.tail()
	return nil, se
}

// patchFile is the host path of the patch a patch step applies.
func (b *build) patchFile(s kernel.Step) string {
	for i, a := range s.Args {
		if a == "-i" && i+1 < len(s.Args) {
			rel := strings.TrimPrefix(s.Args[i+1], b.plan.Paths.Kernel+"/")
			return filepath.Join(b.KernelDir, filepath.FromSlash(rel))
		}
	}
	return ""
}

// action runs a step lkbuild does itself, inside the sandbox, where the
// source overlay is.
func (b *build) action(ctx context.Context, spec sandbox.Spec, s kernel.Step) error {
	req, err := newStepRequest(s.Action, b.plan.Epoch, b.xzCommand())
	if err != nil {
		return err
	}
	in, err := json.Marshal(req)
	if err != nil {
		return err
	}
	var out bytes.Buffer
	spec.Args = []string{"/proc/self/exe", StepArg}
	spec.Env = []string{"PATH=" + kernel.DefaultPath}
	if b.Emulation != nil {
		// The action is lkbuild itself, a host binary; xz is the
		// builder's and may need the emulator's environment.
		spec.Env = sandbox.EnvDefaults(spec.Env, b.Emulation.Env)
	}
	spec.Stdin, spec.Stdout, spec.Stderr = bytes.NewReader(in), &out, logWriter{b}
	if err := sandbox.Run(ctx, spec); err != nil {
		if ctx.Err() != nil {
			return err
		}
		return &StepError{Step: s.Name, Err: err, Log: b.res.Log, Tail: b.tail()}
	}
	var res stepResult
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		return &StepError{Step: s.Name, Err: fmt.Errorf("read the step's result: %w", err), Log: b.res.Log}
	}
	if res.Mismatch != nil {
		return res.Mismatch
	}
	if res.Error != "" {
		return &StepError{Step: s.Name, Err: errors.New(res.Error), Log: b.res.Log}
	}
	return nil
}

// checkOutputs makes sure out holds exactly the plan's outputs.
func (b *build) checkOutputs(out string) error {
	want := map[string]bool{}
	for _, o := range b.plan.Outputs {
		want[o.Path] = true
	}
	var extra []string
	err := filepath.WalkDir(out, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(out, p)
		rel = filepath.ToSlash(rel)
		if want[rel] {
			delete(want, rel)
		} else {
			extra = append(extra, rel)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("build outputs: %w", err)
	}
	if len(want) > 0 || len(extra) > 0 {
		var missing []string
		for k := range want {
			missing = append(missing, k)
		}
		slices.Sort(missing)
		return fmt.Errorf("build outputs: missing %v, unexpected %v", missing, extra)
	}
	return nil
}

// image packs the outputs as one deterministic layer and writes the image
// to the output layout under its names.
func (b *build) image(ctx context.Context) (v1.Image, error) {
	b.startPhase(PhasePackage)
	out := filepath.Join(b.scr, "out")
	layer, err := b.Output.WriteLayer(func(w io.Writer) error {
		return oci.WriteTar(w, os.DirFS(out), oci.TarOptions{Epoch: b.plan.Epoch})
	})
	if err != nil {
		return nil, fmt.Errorf("package: %w", err)
	}
	labels := map[string]string{LabelBuildImage: b.plan.BuilderImage}
	if b.Revision != "" {
		labels[LabelRevision] = b.Revision
	}
	if b.SourceRepo != "" {
		labels[LabelSource] = b.SourceRepo
	}
	img, err := oci.NewImage(oci.ImageSpec{
		Platform:    b.arch.Platform(),
		Created:     b.plan.Epoch,
		Labels:      labels,
		Annotations: b.annotations(),
		// Nothing here names the image: the same build pushed under
		// another repository is the same image.
		Layers: []oci.ImageLayer{{Layer: layer, CreatedBy: "lkbuild build", Comment: "kernel " + b.res.Release}},
	})
	if err != nil {
		return nil, fmt.Errorf("package: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var names []string
	for _, t := range b.Tags {
		if t.Kind == kernel.TagArchImage || t.Kind == kernel.TagReleaseArchImage {
			names = append(names, t.String())
		}
	}
	if err := b.Output.WriteLayout(ctx, img, b.arch.Platform(), names...); err != nil {
		return nil, fmt.Errorf("package: %w", err)
	}
	if b.res.Digest, err = img.Digest(); err != nil {
		return nil, fmt.Errorf("package: %w", err)
	}
	return img, nil
}

// annotations record the build's inputs, for lkbuild verify.
func (b *build) annotations() map[string]string {
	sum := func(data []byte) string {
		s := sha256.Sum256(data)
		return hex.EncodeToString(s[:])
	}
	a := map[string]string{
		AnnotationVersion:       b.Version,
		AnnotationSourceURL:     b.plan.SourceURL(),
		AnnotationSourceSHA256:  b.src.SHA256,
		AnnotationBuilderImage:  b.plan.BuilderImage,
		AnnotationBuilderDigest: b.rootfs.Digest.String(),
		AnnotationConfigSHA256:  sum(b.plan.Config),
		AnnotationEpoch:         strconv.FormatInt(b.plan.Epoch.Unix(), 10),
		AnnotationArch:          b.plan.Arch.Uname,
		AnnotationVariant:       b.plan.Extra + map[bool]string{true: kernel.DebugSuffix}[b.plan.Debug],
		AnnotationSeriesHash:    b.Hash,
		AnnotationSourceXZ:      "-" + strconv.Itoa(b.XZLevel),
	}
	var patches []string
	for _, p := range b.patches {
		patches = append(patches, p.sha256+"  "+path.Base(p.rel))
	}
	a[AnnotationPatches] = strings.Join(patches, "\n")
	if b.ucode != nil {
		a[AnnotationUcodeCommit] = b.ucode.Commit
	}
	return a
}

// builderSource is where the builder image can be copied from for the
// -builder tag: the registry reference, or the local image when it came
// from an OCI layout.
func (b *build) builderSource() v1.Image {
	if !strings.HasPrefix(b.plan.BuilderImage, toolchain.LayoutPrefix) {
		return nil
	}
	return b.rootfs.Image
}

// tail returns the last lines of the log.
func (b *build) tail() []string {
	b.logMu.Lock()
	defer b.logMu.Unlock()
	return tailFile(b.res.Log, tailLines)
}

func tailFile(name string, n int) []string {
	f, err := os.Open(name)
	if err != nil {
		return nil
	}
	defer f.Close()
	const window = 64 << 10
	if fi, err := f.Stat(); err == nil && fi.Size() > window {
		f.Seek(fi.Size()-window, io.SeekStart)
	}
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, window), window)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return lines
}

// objectEstimate is the object count of the last build of this config, or 0.
func (b *build) objectEstimate() int64 {
	data, err := os.ReadFile(b.statsFile())
	if err != nil {
		return 0
	}
	n, _ := strconv.ParseInt(strings.TrimSpace(string(data)), 10, 64)
	return n
}

func (b *build) saveObjectCount(n int64) {
	p := b.statsFile()
	if os.MkdirAll(filepath.Dir(p), 0o755) == nil {
		os.WriteFile(p, []byte(strconv.FormatInt(n, 10)+"\n"), 0o644)
	}
}

func (b *build) statsFile() string {
	s := sha256.Sum256(append(append([]byte(b.plan.Version.String()+"\n"+b.plan.Arch.Uname+"\n"), b.plan.Config...), strings.Join(b.plan.Patches, "\n")...))
	return filepath.Join(b.CacheDir, "stats", hex.EncodeToString(s[:8])+".objects")
}

// lineWriter calls line for each complete line written to it.
type lineWriter struct {
	buf  []byte
	line func(string)
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		w.line(string(w.buf[:i]))
		w.buf = w.buf[i+1:]
	}
	return len(p), nil
}

func (w *lineWriter) flush() {
	if len(w.buf) > 0 {
		w.line(string(w.buf))
		w.buf = nil
	}
}

// rejectedHunks finds the hunks GNU patch reports as failed in its output
// ("patching file F" ... "Hunk #N FAILED at L.") and returns them as they
// are in the patch file, each headed by its file's name.
func rejectedHunks(patchOutput, patchFile string) []string {
	data, err := os.ReadFile(patchFile)
	if err != nil {
		return nil
	}
	var out []string
	file := ""
	for _, l := range strings.Split(patchOutput, "\n") {
		if f, ok := strings.CutPrefix(l, "patching file "); ok {
			file = strings.Trim(f, "'")
			continue
		}
		rest, ok := strings.CutPrefix(l, "Hunk #")
		if !ok || !strings.Contains(rest, " FAILED") {
			continue
		}
		num, _, _ := strings.Cut(rest, " ")
		n, err := strconv.Atoi(num)
		if err != nil {
			continue
		}
		if h := kernel.PatchHunk(data, file, n); h != "" {
			out = append(out, "--- "+file+"\n"+h)
		}
	}
	return out
}
