package builder

import (
	"context"
	"errors"
	"fmt"

	"github.com/lkbuild/lkbuild/internal/gitfetch"
	"github.com/lkbuild/lkbuild/internal/kernelsrc"
	"github.com/lkbuild/lkbuild/kernel"
	"github.com/lkbuild/lkbuild/oci"
	"github.com/lkbuild/lkbuild/toolchain"
)

// MissingError is what an offline build (Environment.Offline) returns for
// a piece that is neither in the cache nor in a local mirror.
type MissingError struct {
	// Piece names it: "the builder image REF for aarch64".
	Piece string
	Err   error
}

func (e *MissingError) Error() string {
	return fmt.Sprintf("offline: %s is not in the cache: %v", e.Piece, e.Err)
}

func (e *MissingError) Unwrap() error { return e.Err }

// offline reports whether err is the refusal of a network access.
func offline(err error) bool {
	return errors.Is(err, oci.ErrOffline) || errors.Is(err, kernelsrc.ErrOffline) || errors.Is(err, gitfetch.ErrOffline)
}

// missing returns err as a *MissingError for piece when it is the refusal
// of a network access, else err itself.
func (b *build) missing(piece string, err error) error {
	if offline(err) {
		return &MissingError{Piece: piece, Err: err}
	}
	return err
}

func (b *build) sourceMirror() string {
	if b.env.SourceMirror == "" {
		return kernel.DefaultSourceMirror
	}
	return b.env.SourceMirror
}

// FetchResult is what Fetch put in the cache, or found there.
type FetchResult struct {
	// Source is the verified source tree's tarball SHA-256 and URL.
	SourceSHA256, SourceURL string
	// Ucode is the microcode's commit, "" without microcode.
	Ucode string
	// Builder is the builder image's digest; Cross the fast path's cross
	// image's, "" without one.
	Builder, Cross string
}

// Fetch puts into the cache everything the build of t takes from the
// network, verified as a build verifies it: the kernel source, the Intel
// microcode (x86_64), the builder image for t's arch, unpacked, and with
// Environment.CrossImage the fast path's cross image. It runs nothing in a
// sandbox. A build of t with Environment.Offline then needs no network,
// and a second Fetch with everything present makes no request.
func Fetch(ctx context.Context, t *Target, env Environment, events func(Event), opts ...Option) (*FetchResult, error) {
	if t == nil || t.Plan == nil {
		return nil, errors.New("fetch: no target (Resolve makes one)")
	}
	if err := env.checkFetch(); err != nil {
		return nil, err
	}
	b := &build{t: t, plan: t.Plan, env: env, pol: Policy{Events: events}, deps: makeDeps(opts)}
	b.deps.prepareRootfs = cacheFirst(b.deps.prepareRootfs)
	defer b.releaseCache()
	if err := b.fetch(ctx); err != nil {
		return nil, err
	}
	res := &FetchResult{SourceSHA256: b.src.SHA256, SourceURL: b.src.URL, Builder: b.rootfs.Digest.String()}
	if b.ucode != nil {
		res.Ucode = b.ucode.Commit
	}
	if env.CrossImage != "" {
		host, err := toolchain.HostArch()
		if err != nil {
			return nil, err
		}
		b.startPhase(PhaseRootfs)
		rfs, err := b.crossImage(ctx, host)
		if err != nil {
			return nil, err
		}
		res.Cross = rfs.Digest.String()
	}
	b.endPhase()
	return res, nil
}

// cacheFirst makes pull ask the registry only for an image the cache has
// no record of: an image already pulled costs no request, its tag taken
// as the cache recorded it (a tag that moved since needs lkbuild cache
// prune or a digest reference).
func cacheFirst(pull prepareRootfsFunc) prepareRootfsFunc {
	return func(ctx context.Context, ref string, arch kernel.Arch, o toolchain.RootfsOptions) (toolchain.Rootfs, error) {
		online := o.Registry
		o.Registry = online.WithoutNetwork()
		r, err := pull(ctx, ref, arch, o)
		if !errors.Is(err, oci.ErrOffline) || online.Offline() {
			return r, err
		}
		o.Registry = online
		return pull(ctx, ref, arch, o)
	}
}

// PrepareImage is toolchain.PrepareRootfs as Fetch does it: from the
// cache when an earlier pull recorded the image, else from the registry.
func PrepareImage(ctx context.Context, ref string, arch kernel.Arch, o toolchain.RootfsOptions) (toolchain.Rootfs, error) {
	return cacheFirst(toolchain.PrepareRootfs)(ctx, ref, arch, o)
}
