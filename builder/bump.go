package builder

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/lkbuild/lkbuild/internal/kernelgit"
	"github.com/lkbuild/lkbuild/kernel"
	"github.com/lkbuild/lkbuild/toolchain"
)

// PatchKernel is a kernel whose patches TryPatches tries.
type PatchKernel struct {
	// Name is its series or variant folder, for reports.
	Name string
	// Query names it; Bump is set when Query.Version is not yet the
	// series' KERNEL_VERSION (Request.Bump).
	Query kernel.Query
	Bump  bool
}

// KernelPatches is what TryPatches found for one kernel.
type KernelPatches struct {
	Name   string
	Report *PatchReport
}

// PatchTrial says how TryPatches and Bump reach the kernels' builders.
type PatchTrial struct {
	// Base is the request every kernel is resolved with (kernel
	// directory, hash commit, builder image, keys); Query, Arch, Bump and
	// NoUcode are set per kernel.
	Base Request
	// Env is the environment of arch's builder: an emulated one for a
	// foreign arch.
	Env func(arch kernel.Arch) (Environment, error)
	// Events receives progress, with what it is about ("patches
	// 6.6.72"); nil discards it.
	Events func(what string, e Event)
}

func (p PatchTrial) events(what string) func(Event) {
	if p.Events == nil {
		return nil
	}
	return func(e Event) { p.Events(what, e) }
}

// TryPatches tries each kernel's patches with CheckPatches, in the builder
// of the series' own arch when it has a config for this host's (no
// emulation), else of its first. It returns the reports and the number of
// patch files that do not apply to some kernel (a base patch that a
// variant applies too counts once).
func TryPatches(ctx context.Context, p PatchTrial, kernels []PatchKernel, opts ...Option) ([]KernelPatches, int, error) {
	co, err := kernelgit.Open(kernelgit.Options{KernelDir: p.Base.KernelDir, Commit: p.Base.HashCommit})
	if err != nil {
		return nil, 0, err
	}
	failed := map[string]bool{}
	var out []KernelPatches
	for _, k := range kernels {
		s, err := co.Dir.Lookup(k.Name)
		if err != nil {
			return out, len(failed), err
		}
		arch, err := patchArch(s)
		if err != nil {
			return out, len(failed), err
		}
		env, err := p.Env(arch)
		if err != nil {
			return out, len(failed), fmt.Errorf("%s's patches are tried in its %s builder: %w", k.Name, arch, err)
		}
		r := p.Base
		r.Query, r.Arch, r.Bump, r.NoUcode = k.Query, arch.Uname, k.Bump, true
		t, err := Resolve(ctx, r)
		if err != nil {
			return out, len(failed), err
		}
		rep, err := CheckPatches(ctx, t, env, p.events("patches "+t.Plan.Version.String()+t.Plan.Extra), opts...)
		if err != nil {
			return out, len(failed), err
		}
		for _, f := range rep.Failed() {
			failed[f.File] = true
		}
		out = append(out, KernelPatches{Name: k.Name, Report: rep})
	}
	return out, len(failed), nil
}

// patchArch is the arch whose builder applies s's patches.
func patchArch(s *kernel.Series) (kernel.Arch, error) {
	arches := s.Arches()
	if len(arches) == 0 {
		return kernel.Arch{}, fmt.Errorf("series %s has no config: no arch to try its patches for", s.Name)
	}
	if host, err := toolchain.HostArch(); err == nil {
		for _, a := range arches {
			if a.Uname == host.Uname {
				return a, nil
			}
		}
	}
	return arches[0], nil
}

// BumpRequest is a series moved to a new release (lkbuild bump).
type BumpRequest struct {
	PatchTrial
	// Series is the series folder; "" is Version's series.
	Series  string
	Version kernel.Version
	// Arches are the arches whose configs are refreshed; nil is every
	// arch the series has a config for.
	Arches []kernel.Arch
	// Force goes on when a patch does not apply (build-args alone: the
	// configs need the patched tree) and allows an older release.
	Force bool
}

// FileChange is a file Bump would write.
type FileChange struct {
	// File is the file as the user knows it; Path its path on this host.
	File, Path string
	Old, New   []byte
}

// BumpResult is what Bump found and what BumpResult.Write writes.
type BumpResult struct {
	Series *kernel.Series
	// Old is the series' release before the bump.
	Old kernel.Version
	// Patches are the reports of the series and its variants; Failed
	// counts the patch files that do not apply.
	Patches []KernelPatches
	Failed  int
	// Changes are the files to write, the configs first and build-args
	// last; Final the stored configs that need no change.
	Changes []FileChange
	Final   []string
	// Left are the arches whose configs were not refreshed (not in
	// Arches); ConfigsSkipped is set when none was, because a patch does
	// not apply (Force).
	Left           []kernel.Arch
	ConfigsSkipped bool
}

// BumpKernels are the kernels of series whose patches a bump to v tries:
// the series and each variant that is built and takes its version from
// it. series "" is v's.
func BumpKernels(d *kernel.Dir, series string, v kernel.Version) (*kernel.Series, []PatchKernel, error) {
	if series == "" {
		series = v.Series()
	}
	s, err := d.Lookup(series)
	if err != nil {
		return nil, nil, err
	}
	if s.Extra != "" {
		return nil, nil, fmt.Errorf("%s is a variant: name its series, %s (its variants follow)", s.Name, s.Base)
	}
	if v.Series() != s.Base {
		return nil, nil, fmt.Errorf("version %s is not in series %s", v, s.Name)
	}
	ks := []PatchKernel{{Name: s.Name, Query: kernel.Query{Series: s.Name, Version: v.String()}, Bump: true}}
	for _, o := range d.Series {
		if o.BaseSeries() == s && o.BuildArgs == nil && !o.Deprecated {
			ks = append(ks, PatchKernel{Name: o.Name, Query: kernel.Query{Series: s.Name, Version: v.String(), Extra: o.Extra}, Bump: true})
		}
	}
	return s, ks, nil
}

// Bump works out a bump of r.Series to r.Version without writing
// anything: it refuses what cannot be bumped (a variant, a deprecated
// series, the same or an older release without Force, an arch without a
// config), checks every arch's environment first, tries the patches
// (TryPatches), and unless one fails refreshes each arch's config with
// RefreshConfig (the build's own config steps, make olddefconfig), then
// sets KERNEL_VERSION in build-args. A patch that does not apply ends it
// with Failed set and no Changes, unless Force (then build-args alone).
func Bump(ctx context.Context, r BumpRequest, opts ...Option) (*BumpResult, error) {
	co, err := kernelgit.Open(kernelgit.Options{KernelDir: r.Base.KernelDir, Commit: r.Base.HashCommit})
	if err != nil {
		return nil, err
	}
	s, ks, err := BumpKernels(co.Dir, r.Series, r.Version)
	if err != nil {
		return nil, err
	}
	switch {
	case s.Deprecated:
		return nil, fmt.Errorf("bump: series %s is deprecated", s.Name)
	case s.BuildArgs == nil:
		return nil, fmt.Errorf("bump: series %s has no build-args to write", s.Name)
	}
	res := &BumpResult{Series: s, Old: s.Version}
	switch c := r.Version.Compare(s.Version); {
	case c == 0:
		return nil, fmt.Errorf("bump: %s is already at %s", s.Name, r.Version)
	case c < 0 && !r.Force:
		return nil, fmt.Errorf("bump: %s is older than %s's %s (--force to go back)", r.Version, s.Name, s.Version)
	}
	arches := r.Arches
	if arches == nil {
		arches = s.Arches()
	}
	envs := map[string]Environment{}
	for _, a := range arches {
		if !slices.ContainsFunc(s.Arches(), func(b kernel.Arch) bool { return b.Uname == a.Uname }) {
			return nil, fmt.Errorf("bump: series %s has no config-%s", s.Name, a.Uname)
		}
		// Every arch's builder (its emulator) must be there before any work.
		if envs[a.Uname], err = r.Env(a); err != nil {
			return nil, fmt.Errorf("bump: %w", err)
		}
	}
	for _, a := range s.Arches() {
		if !slices.ContainsFunc(arches, func(b kernel.Arch) bool { return b.Uname == a.Uname }) {
			res.Left = append(res.Left, a)
		}
	}
	if res.Patches, res.Failed, err = TryPatches(ctx, r.PatchTrial, ks, opts...); err != nil {
		return res, err
	}
	if res.Failed > 0 && !r.Force {
		return res, nil
	}
	res.ConfigsSkipped = res.Failed > 0
	for _, a := range arches {
		if res.ConfigsSkipped {
			break
		}
		q := r.Base
		q.Query, q.Arch, q.Bump, q.NoUcode = ks[0].Query, a.Uname, true, true
		t, err := Resolve(ctx, q)
		if err != nil {
			return res, err
		}
		rr, err := RefreshConfig(ctx, t, envs[a.Uname], RefreshOptions{Events: r.events(fmt.Sprintf("kconfig %s %s", r.Version, a.Uname))}, opts...)
		if err != nil {
			return res, err
		}
		if bytes.Equal(rr.Stored, rr.Final) {
			res.Final = append(res.Final, rr.File)
			continue
		}
		res.Changes = append(res.Changes, FileChange{File: rr.File, Path: rr.Path, Old: rr.Stored, New: rr.Final})
	}
	args, err := buildArgsChange(kernelgit.KernelDir(kernelgit.Options{KernelDir: r.Base.KernelDir}), s, r.Version)
	if err != nil {
		return res, err
	}
	res.Changes = append(res.Changes, args)
	return res, nil
}

// Write writes the changes, each file replaced whole, build-args last:
// a bump cut short leaves the series at its old release, and runs again.
func (r *BumpResult) Write() error {
	for _, c := range r.Changes {
		if err := ReplaceFile(c.Path, c.New); err != nil {
			return fmt.Errorf("bump: %w", err)
		}
	}
	return nil
}

// buildArgsChange is s's build-args, in the kernel directory kdir, with
// KERNEL_VERSION set to v.
func buildArgsChange(kdir string, s *kernel.Series, v kernel.Version) (FileChange, error) {
	path := filepath.Join(kdir, s.Name, "build-args")
	old, err := os.ReadFile(path)
	if err != nil {
		return FileChange{}, fmt.Errorf("bump: %w", err)
	}
	data, err := kernel.ReplaceBuildArg(old, kernel.KeyKernelVersion, v.String())
	if err != nil {
		return FileChange{}, fmt.Errorf("bump: %s: %w", s.BuildArgs.File, err)
	}
	return FileChange{File: s.BuildArgs.File, Path: path, Old: old, New: data}, nil
}
