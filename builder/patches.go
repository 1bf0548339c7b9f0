package builder

import (
	"context"
	"errors"
	"strings"

	"github.com/lkbuild/lkbuild/kernel"
	"github.com/lkbuild/lkbuild/sandbox"
)

// PatchResult is what one patch did to a kernel's source.
type PatchResult struct {
	// File is the patch as the user knows it,
	// "kernel/6.6.x/patches/0001-x.patch".
	File string
	// Applied is true when every hunk applied (with offsets, never fuzz,
	// as a build applies it). Otherwise Rejected holds the hunks patch
	// rejected, as they are in the patch, and Reversed is true when patch
	// found the change already made: the new release has it, and the
	// patch can go.
	Applied  bool
	Rejected []string
	Reversed bool
	// Output is what patch printed.
	Output string
}

// PatchReport is what CheckPatches found.
type PatchReport struct {
	// Version is the release the patches were tried on.
	Version string
	// Patches are the plan's patches, in the order they apply.
	Patches []PatchResult
	// Log is the full log.
	Log string
}

// Failed are the patches that do not apply.
func (r *PatchReport) Failed() []PatchResult {
	var out []PatchResult
	for _, p := range r.Patches {
		if !p.Applied {
			out = append(out, p)
		}
	}
	return out
}

// CheckPatches tries t's patches on t's source as its build would: it
// fetches and verifies the source, provisions the builder and applies
// each patch in order with the build's own step. Unlike a build it goes on
// after a patch that does not apply, so that every one that does not is
// reported; the patches after it meet the tree as patch left it (the
// hunks that applied, applied). The error is for what kept the patches
// from being tried (the fetch, the builder, a builder without patch), not
// for a patch that does not apply. Nothing outside the build's scratch
// space, which it removes, is written.
func CheckPatches(ctx context.Context, t *Target, env Environment, events func(Event), opts ...Option) (*PatchReport, error) {
	if t == nil || t.Plan == nil {
		return nil, errors.New("patches: no target (Resolve makes one)")
	}
	if err := env.checkFetch(); err != nil {
		return nil, err
	}
	p := *t.Plan
	p.Ucode = nil
	b := &build{t: t, plan: &p, env: env, pol: Policy{Events: events}, deps: makeDeps(opts), logPrefix: "patches-"}
	b.res.Ref = t.Ref
	defer b.close()
	rep := &PatchReport{Version: p.Version.String()}
	d, err := b.prepare(ctx)
	rep.Log = b.res.Log
	if err != nil {
		return rep, err
	}
	err = b.patch(ctx, d, func(s kernel.Step, out []byte, err error) error {
		res := PatchResult{File: s.Patch, Applied: err == nil, Output: string(out)}
		if err != nil {
			var se *StepError
			var exit *sandbox.ExitError
			if !errors.As(err, &se) || se.Patch == "" || !errors.As(err, &exit) {
				return err
			}
			res.Rejected, res.Output = se.Rejected, se.Output
			// Already applied as a whole only: a patch with a rejected hunk
			// elsewhere still needs work.
			res.Reversed = len(se.Rejected) == 0 && strings.Contains(se.Output, "Reversed (or previously applied) patch detected")
		}
		rep.Patches = append(rep.Patches, res)
		return nil
	})
	if err != nil {
		return rep, err
	}
	b.endPhase()
	return rep, nil
}
