package builder

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/lkbuild/lkbuild/internal/kernelgit"
	"github.com/lkbuild/lkbuild/kernel"
	"github.com/lkbuild/lkbuild/toolchain"
)

// Request names a build the way a user does: a kernel directory, a
// series (or version) and an arch, and the choices that change what is
// built. Resolve turns it into a Target. The zero value of each field is
// its default.
type Request struct {
	// KernelDir is the LinuxKit kernel directory; "" finds it from the
	// current directory (kernelgit.KernelDir).
	KernelDir string
	// HashCommit is the commit whose tree gives the series hash
	// (LinuxKit's HASH_COMMIT); "" is HEAD.
	HashCommit string
	// Query names the kernel: series or version, variant, debug, org and
	// image name.
	Query kernel.Query
	// Arch is the target arch, either name (x86_64 or amd64, ...).
	Arch string
	// BuilderImage is where the builder image is pulled from: a registry
	// reference or oci:DIR:NAME. "" is the series' BUILD_IMAGE.
	BuilderImage string
	// BuilderName is the builder's name recorded in the image (the
	// buildimage label, /kernel-builder): the series' BUILD_IMAGE when
	// BuilderImage is empty, else BuilderImage for a registry reference
	// and NAME for oci:DIR:NAME, so that the same bytes read from another
	// directory give the same image.
	BuilderName string
	// Jobs is make -j; 0 is the CPUs this process may use.
	Jobs int
	// Epoch is the build date; nil is $SOURCE_DATE_EPOCH (Getenv), else
	// the commit time of the kernel directory's HEAD.
	Epoch *time.Time
	// NoUcode leaves the Intel microcode out of an x86_64 image.
	NoUcode bool
	// KeysFile holds the PGP keys that sign the sources; "" is the kernel
	// directory's (kernel.Dir.KeysFile).
	KeysFile string
	// Getenv reads SOURCE_DATE_EPOCH; nil is os.Getenv.
	Getenv func(string) string
	// Cross builds a foreign arch with a cross compiler in a builder for
	// the host's arch (CROSS_COMPILE), no emulation: fast, but the output
	// differs from a native build's (see kernel.PlanOptions.CrossCompile).
	Cross bool
	// ZFSVersion is the OpenZFS release of a zfs-kmod build; "" is the one
	// the kernel directory's Dockerfile.zfs names. ZFSKeysFile holds the
	// keys that sign it; "" is KeysFile's (or the kernel directory's).
	ZFSVersion, ZFSKeysFile string
	// Bump plans Query.Version where the series' build-args name another
	// release of the series: the kernel directory as it will be once
	// build-args say KERNEL_VERSION=<Query.Version>, what lkbuild bump
	// and lkbuild patches check try before anything is written. Query
	// must name the series itself (not a variant of it).
	Bump bool
}

// Target is a resolved build: everything Build, Push and the commands to
// come (fetch, verify, kconfig) need to know about what is built, and
// nothing about where it runs.
type Target struct {
	// Request is what was asked, with its defaults filled in.
	Request Request
	// Plan is the build, step by step.
	Plan *kernel.Plan
	// Dir is the kernel directory's model; KernelDir its absolute path.
	Dir       *kernel.Dir
	KernelDir string
	// Arch is the target arch.
	Arch kernel.Arch
	// Hash is the series hash; Tags every tag of the build; Ref the
	// single-arch image's name (repository:V-H-A).
	Hash string
	Tags []kernel.Tag
	Ref  string
	// Revision and SourceRepo are the kernel directory's commit and
	// remote, for the OCI labels; SourceRepo is "" when unknown.
	Revision, SourceRepo string
	// BuilderPull is where the builder image comes from (the request's
	// BuilderImage, else the plan's); Plan.BuilderImage is its recorded
	// name. BuilderArch is the arch it is pulled for: Arch, or the host's
	// for a Cross build.
	BuilderPull string
	BuilderArch kernel.Arch

	// expect, for a rebuild (VerifyTarget), holds the inputs the image
	// records: a fetched source, builder or microcode that is not the
	// recorded one fails the build with an *InputError before it runs.
	expect *Provenance
}

// ErrNoGit is returned by Resolve for a kernel directory outside a git
// work tree: the tags need the series hash.
var ErrNoGit = kernel.ErrNoGit

// Resolve works out a Target: it opens the kernel directory and its git
// history, resolves the series, its hash and tags, the epoch, the builder
// and the plan. It reads files and git objects, nothing else.
func Resolve(ctx context.Context, r Request) (*Target, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if r.Jobs < 0 {
		return nil, fmt.Errorf("jobs %d: want a count of at least 1, or 0 for the CPUs this process may use", r.Jobs)
	}
	a, err := kernel.ParseArch(r.Arch)
	if err != nil {
		return nil, err
	}
	opts := kernelgit.Options{KernelDir: r.KernelDir, Commit: r.HashCommit}
	co, err := kernelgit.Open(opts)
	if err != nil {
		return nil, err
	}
	repo, _ := co.Rev.(*kernelgit.Repo)
	if repo == nil {
		return nil, fmt.Errorf("kernel dir %s is not in a git work tree: the image's tags need the series hash: %w", kernelgit.KernelDir(opts), ErrNoGit)
	}
	t := &Target{Dir: co.Dir, Arch: a, SourceRepo: repo.RemoteURL()}
	// The kernel directory as an absolute path: the sandbox binds it.
	if t.KernelDir, err = filepath.Abs(kernelgit.KernelDir(opts)); err != nil {
		return nil, fmt.Errorf("kernel dir: %w", err)
	}
	r.KernelDir = t.KernelDir
	if r.Bump {
		if err := bumpVersion(co.Dir, r.Query); err != nil {
			return nil, err
		}
	}
	s, _, err := co.Resolve(r.Query)
	if err != nil {
		return nil, err
	}
	if t.Hash, err = co.Hash(s); err != nil {
		return nil, err
	}
	if t.Tags, err = co.Tags(r.Query, a); err != nil {
		return nil, err
	}
	for _, tag := range t.Tags {
		if tag.Kind == kernel.TagArchImage {
			t.Ref = tag.String()
		}
	}
	if t.Ref == "" {
		return nil, errors.New("the kernel has no single-arch tag")
	}
	var when time.Time
	if t.Revision, when, err = repo.Commit(); err != nil {
		return nil, err
	}
	epoch, err := r.epoch(when)
	if err != nil {
		return nil, err
	}
	r.Epoch = &epoch
	if r.Jobs == 0 {
		r.Jobs = toolchain.UsableCPUs().Jobs()
	}
	name, err := builderName(r.BuilderImage, r.BuilderName)
	if err != nil {
		return nil, err
	}
	popts := kernel.PlanOptions{Jobs: r.Jobs, Epoch: epoch, BuilderImage: name, NoUcode: r.NoUcode, ZFSVersion: r.ZFSVersion}
	t.BuilderArch = a
	if r.Cross {
		host, err := toolchain.HostArch()
		if err != nil {
			return nil, err
		}
		if host.Uname == a.Uname {
			return nil, fmt.Errorf("cross: %s is this host's arch; build it natively", a)
		}
		popts.CrossCompile = toolchain.Triplet(a) + "-"
		t.BuilderArch = host
	}
	if r.Query.Tool == kernel.ToolZFS && r.ZFSVersion != "" {
		// The tags stand for the kernel directory: another release under
		// them would be a different image with the same name.
		if v, err := co.Dir.ZFSVersion(); err == nil && v != r.ZFSVersion {
			return nil, fmt.Errorf("--zfs-version %s: %s names OpenZFS %s, and the image's tags stand for the kernel directory: change its VERSION (and commit) to build another release",
				r.ZFSVersion, co.Dir.ZFSDockerfile(), v)
		}
	}
	t.Plan, err = kernel.NewPlan(co.Dir, r.Query, a, popts)
	if err != nil {
		return nil, err
	}
	t.BuilderPull = r.BuilderImage
	if t.BuilderPull == "" {
		t.BuilderPull = t.Plan.BuilderImage
	}
	t.Request = r
	return t, nil
}

// bumpVersion sets the version q names as its series' in d.
func bumpVersion(d *kernel.Dir, q kernel.Query) error {
	v, err := kernel.ParseVersion(q.Version)
	if err != nil {
		return fmt.Errorf("bump: %w", err)
	}
	_, err = d.SetVersion(v.Series(), v)
	return err
}

// epoch is r.Epoch, else SOURCE_DATE_EPOCH, else head (HEAD's commit
// time).
func (r Request) epoch(head time.Time) (time.Time, error) {
	if r.Epoch != nil {
		if r.Epoch.Unix() < 0 {
			return time.Time{}, fmt.Errorf("epoch %d is before 1970", r.Epoch.Unix())
		}
		return r.Epoch.UTC(), nil
	}
	getenv := r.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	if s := getenv("SOURCE_DATE_EPOCH"); s != "" {
		e, err := strconv.ParseInt(s, 10, 64)
		if err != nil || e < 0 {
			return time.Time{}, fmt.Errorf("SOURCE_DATE_EPOCH=%q is not a count of seconds", s)
		}
		return time.Unix(e, 0).UTC(), nil
	}
	return head.UTC(), nil
}

// builderName is the name recorded for the builder pulled from pull.
func builderName(pull, name string) (string, error) {
	switch {
	case name != "":
		return name, nil
	case pull == "":
		return "", nil // the plan takes the series' BUILD_IMAGE
	}
	if _, n, ok := toolchain.ParseLayoutRef(pull); ok {
		if n == "" {
			return "", fmt.Errorf("builder image %s: name it (oci:DIR:NAME), or give the name to record (--builder-name)", pull)
		}
		return n, nil
	}
	return pull, nil
}

// Args are the lkbuild flags that name this target, for a command that
// works on the same build (the retry hint after a failed push).
func (r Request) Args() []string {
	var args []string
	add := func(flag, v string) {
		if v != "" {
			args = append(args, "--"+flag, v)
		}
	}
	q := r.Query
	add("kernel-dir", r.KernelDir)
	add("series", q.Series)
	add("version", q.Version)
	add("extra", q.Extra)
	if q.Debug {
		args = append(args, "--debug")
	}
	add("tool", q.Tool)
	add("org", q.Org)
	add("image", q.Image)
	if r.HashCommit != "HEAD" {
		add("hash-commit", r.HashCommit)
	}
	add("arch", r.Arch)
	if _, _, ok := toolchain.ParseLayoutRef(r.BuilderImage); ok {
		// Push takes the -builder image from the layout again.
		add("builder-image", r.BuilderImage)
	}
	return args
}
