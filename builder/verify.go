package builder

import (
	"context"
	"errors"
	"fmt"
	"path"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/lkbuild/lkbuild/internal/imagediff"
	"github.com/lkbuild/lkbuild/kernel"
	"github.com/lkbuild/lkbuild/toolchain"
)

// VerifyRequest says where the inputs of a rebuild come from. What is
// built comes from the image (Recorded); the zero value of each field is
// its default.
type VerifyRequest struct {
	// KernelDir is the LinuxKit kernel directory, checked out at the
	// recorded commit; "" finds it from the current directory.
	KernelDir string
	// BuilderImage is where the builder is pulled from (a registry
	// reference or oci:DIR:NAME); "" is the recorded name, pinned to the
	// recorded digest. The builder recorded is always the image's.
	BuilderImage string
	// Jobs is make -j; 0 is the CPUs this process may use. It does not
	// change the image.
	Jobs int
	// KeysFile holds the PGP keys that sign the sources; "" is the kernel
	// directory's. ZFSKeysFile, for a zfs-kmod image, those that sign the
	// OpenZFS release; "" is KeysFile's.
	KeysFile, ZFSKeysFile string
}

// InputError is a rebuild that cannot start from what the image records:
// the kernel directory is at another commit, has uncommitted changes, or
// the image was built from uncommitted changes itself.
type InputError struct {
	// Input names the input ("kernel dir", "series hash").
	Input string
	// Recorded is what the image says, Have what is here.
	Recorded, Have string
	// Fix says what to do about it.
	Fix string
}

func (e *InputError) Error() string {
	return fmt.Sprintf("%s: the image records %s, here it is %s: %s", e.Input, e.Recorded, e.Have, e.Fix)
}

// VerifyTarget resolves the build that made an image recording rec: the
// same kernel (version, variant, debug) or tool image, arch, epoch, builder (by digest)
// and microcode choice, from the kernel directory at the recorded commit.
func VerifyTarget(ctx context.Context, rec *Recorded, r VerifyRequest) (*Target, error) {
	p := rec.Provenance
	if strings.HasSuffix(p.SeriesHash, kernel.DirtySuffix) {
		return nil, &InputError{Input: "series hash", Recorded: p.SeriesHash, Have: "a committed tree",
			Fix: "the image was built from uncommitted changes to the kernel directory, which it does not hold: it cannot be rebuilt"}
	}
	epoch := time.Unix(p.Epoch, 0).UTC()
	req := Request{
		KernelDir: r.KernelDir,
		Query:     kernel.Query{Version: rec.Version, Extra: rec.Extra, Debug: rec.Debug, Tool: p.Tool},
		Arch:      p.Arch,
		// The builder recorded, whatever it is pulled from.
		BuilderImage: r.BuilderImage,
		BuilderName:  p.BuilderImage,
		Jobs:         r.Jobs,
		Epoch:        &epoch,
		KeysFile:     r.KeysFile,
		ZFSKeysFile:  r.ZFSKeysFile,
		Cross:        p.Toolchain == ToolchainCross,
	}
	if p.ZFSURL != "" {
		// The release the image records, whatever Dockerfile.zfs says.
		v, gz := strings.CutSuffix(path.Base(p.ZFSURL), ".tar.gz")
		v, zfs := strings.CutPrefix(v, "zfs-")
		if !gz || !zfs || kernel.CheckZFSVersion(v) != nil {
			return nil, fmt.Errorf("the image's annotation %s=%q names no OpenZFS release", AnnotationZFSURL, p.ZFSURL)
		}
		req.ZFSVersion = v
	}
	if req.BuilderImage == "" {
		pinned, err := pinnedBuilder(p.BuilderImage, p.BuilderDigest)
		if err != nil {
			return nil, err
		}
		req.BuilderImage = pinned
	}
	a, err := kernel.ParseArch(p.Arch)
	if err != nil {
		return nil, fmt.Errorf("the image's arch: %w", err)
	}
	// An x86_64 image without a recorded microcode commit was built
	// without it.
	req.NoUcode = a.Uname == "x86_64" && p.UcodeCommit == ""
	t, err := Resolve(ctx, req)
	if err != nil {
		return nil, err
	}
	if t.Revision != rec.Revision {
		return nil, &InputError{Input: "kernel dir " + t.KernelDir, Recorded: "commit " + rec.Revision, Have: "commit " + t.Revision,
			Fix: fmt.Sprintf("check the image's commit out (git -C %s checkout %s, or git worktree add DIR %s) and name it with --kernel-dir", t.KernelDir, rec.Revision, rec.Revision)}
	}
	if t.Hash != p.SeriesHash {
		fix := "the series hash of the commit is not the image's"
		if strings.HasSuffix(t.Hash, kernel.DirtySuffix) {
			fix = "the kernel directory has uncommitted changes: commit or stash them, or check the commit out elsewhere"
		}
		return nil, &InputError{Input: "series hash", Recorded: p.SeriesHash, Have: t.Hash, Fix: fix}
	}
	// The labels name the recorded remote, whatever this clone's is.
	t.SourceRepo = rec.SourceRepo
	t.expect = &rec.Provenance
	return t, nil
}

// checkFetched compares what a rebuild fetched with what the image
// records (Target.expect).
func (b *build) checkFetched() error {
	want := b.t.expect
	if want == nil {
		return nil
	}
	if b.src.SHA256 != want.SourceSHA256 {
		return &InputError{Input: "source " + b.src.URL, Recorded: "sha256 " + want.SourceSHA256, Have: "sha256 " + b.src.SHA256,
			Fix: "the mirror (--source-mirror, --bundle) holds another tarball of this release: give one that holds the recorded one"}
	}
	if b.zfs.SHA256 != want.ZFSSHA256 {
		return &InputError{Input: "OpenZFS " + b.zfs.URL, Recorded: "sha256 " + want.ZFSSHA256, Have: "sha256 " + b.zfs.SHA256,
			Fix: "the mirror (--zfs-mirror) holds another tarball of this release: give one that holds the recorded one"}
	}
	if b.ucode != nil && b.ucode.Commit != want.UcodeCommit {
		return &InputError{Input: "Intel microcode " + b.plan.Ucode.Ref, Recorded: "commit " + want.UcodeCommit, Have: "commit " + b.ucode.Commit,
			Fix: "the tag moved: give --ucode-repo (or --bundle) a repository whose tag is the recorded commit"}
	}
	if got := b.rootfs.Digest.String(); got != want.BuilderDigest {
		return &InputError{Input: "builder " + b.t.BuilderPull, Recorded: want.BuilderDigest, Have: got,
			Fix: "--builder-image names another image: give one with the recorded digest, or leave it out to pull the recorded builder by digest"}
	}
	return nil
}

// pinnedBuilder is the builder's recorded name pinned to its digest:
// name@digest, so that a moved tag cannot change what is rebuilt.
func pinnedBuilder(recorded, digest string) (string, error) {
	h, err := v1.NewHash(digest)
	if err != nil {
		return "", fmt.Errorf("the recorded builder digest: %w", err)
	}
	ref, err := digestRef(recorded, h)
	if err != nil {
		return "", fmt.Errorf("the recorded builder %q is not a registry reference: give the builder with --builder-image (oci:DIR:NAME or a reference): %w", recorded, err)
	}
	return ref, nil
}

// VerifyResult is the outcome of a Verify.
type VerifyResult struct {
	// Subject is the digest of the image verified, Rebuilt the rebuild's.
	Subject, Rebuilt v1.Hash
	// Identical is true when the two are one image.
	Identical bool
	// Diff says how the rebuild differs; nil when Identical.
	Diff *imagediff.Report
	// Build is the rebuild (Skipped when the output layout already held
	// it).
	Build *BuildResult
	// Elapsed is the time of the rebuild and the comparison.
	Elapsed time.Duration
}

// Verify builds t (from VerifyTarget) clean into env.Output, unless the
// image is there already, and compares the result with subject, member by
// member where they differ. A different image is not an error: the result
// says so.
func Verify(ctx context.Context, subject v1.Image, t *Target, env Environment, pol Policy, opts ...Option) (*VerifyResult, error) {
	began := time.Now()
	if pol.Push {
		return nil, errors.New("verify: a rebuild is not pushed")
	}
	want, err := subject.Digest()
	if err != nil {
		return nil, fmt.Errorf("verify: %w", err)
	}
	pol.Clean, pol.Force = true, false
	res, err := Build(ctx, t, env, pol, opts...)
	if err != nil {
		return nil, fmt.Errorf("verify: rebuild: %w", err)
	}
	rebuilt, _, err := env.Output.ImageByName(t.Ref)
	if err != nil {
		return nil, fmt.Errorf("verify: %w", err)
	}
	v := &VerifyResult{Subject: want, Rebuilt: res.Digest, Identical: res.Digest == want, Build: res}
	if !v.Identical {
		if v.Diff, err = imagediff.Compare(ctx, subject, rebuilt, imagediff.Options{}); err != nil {
			return nil, fmt.Errorf("verify: compare: %w", err)
		}
	}
	v.Elapsed = time.Since(began)
	return v, nil
}

// SubjectPlatform is the platform to read an image of arch at ("" for
// whatever the reference names).
func SubjectPlatform(arch string) (v1.Platform, error) {
	if arch == "" {
		return v1.Platform{OS: "linux"}, nil
	}
	a, err := kernel.ParseArch(arch)
	if err != nil {
		return v1.Platform{}, err
	}
	return toolchain.Platform(a), nil
}
