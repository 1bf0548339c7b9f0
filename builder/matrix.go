package builder

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/lkbuild/lkbuild/internal/kernelgit"
	"github.com/lkbuild/lkbuild/kernel"
	"github.com/lkbuild/lkbuild/oci"
)

// The variants of a kernel a matrix holds: the plain kernel, the debug
// kernel and the tool images (kernel.ToolPerf).
const (
	VariantPlain = "plain"
	VariantDebug = "debug"
)

// DefaultVariants are a matrix's variants when none are named: what
// LinuxKit pushes for every kernel but its tools.
func DefaultVariants() []string { return []string{VariantPlain, VariantDebug} }

// MatrixRequest picks the targets of a matrix: every kernel lkbuild list
// prints (series that are not deprecated), for every arch it has a config
// for, in every variant; each non-empty filter narrows that down.
type MatrixRequest struct {
	KernelDir, HashCommit string
	// Series keeps the series folders named ("6.6.x", "5.11.x-rt").
	Series []string
	// Arches keeps the arches named (either name: x86_64 or amd64).
	Arches []string
	// Variants are VariantPlain, VariantDebug and tool names; nil is
	// DefaultVariants.
	Variants []string
	// Extra keeps the series of that variant suffix ("-rt"); "" keeps all.
	Extra string
	// Org and Image name the images, as lkbuild build's flags.
	Org, Image string
}

// MatrixTarget is one build of a matrix.
type MatrixTarget struct {
	// Index is the target's place in the whole matrix (Matrix's order).
	Index int `json:"index"`
	// ID names it, "<series>/<arch>/<variant>" ("6.12.x/x86_64/debug"):
	// lkbuild build --matrix-target takes it.
	ID      string `json:"id"`
	Series  string `json:"series"`
	Version string `json:"version"`
	Arch    string `json:"arch"`
	Variant string `json:"variant"`
	// Ref is the single-arch image the build makes (repository:V-H-A),
	// what the skip check looks for.
	Ref string `json:"ref"`
}

// Query is the kernel.Query of the target, with org and image from m.
func (t MatrixTarget) Query(m MatrixRequest) kernel.Query {
	q := kernel.Query{Series: t.Series, Org: m.Org, Image: m.Image}
	switch t.Variant {
	case VariantPlain:
	case VariantDebug:
		q.Debug = true
	default:
		q.Tool = t.Variant
	}
	return q
}

// Args are the lkbuild build flags every target of m shares: the kernel
// directory, the hash commit, org and image.
func (m MatrixRequest) Args() []string {
	var args []string
	add := func(flag, v string) {
		if v != "" {
			args = append(args, "--"+flag, v)
		}
	}
	add("kernel-dir", m.KernelDir)
	if m.HashCommit != "HEAD" {
		add("hash-commit", m.HashCommit)
	}
	add("org", m.Org)
	add("image", m.Image)
	return args
}

// BuildArgs are the lkbuild build flags that build t alone: m's (Args),
// then t's series, arch and variant.
func (t MatrixTarget) BuildArgs(m MatrixRequest) []string {
	args := append(m.Args(), "--series", t.Series, "--arch", t.Arch)
	switch t.Variant {
	case VariantPlain:
	case VariantDebug:
		args = append(args, "--debug")
	default:
		args = append(args, "--tool", t.Variant)
	}
	return args
}

// Matrix lists the targets m picks, in an order fixed by the kernel
// directory's commit: series as lkbuild list prints them, arches in
// kernel.Arches' order, variants in m's order. It reads files and git
// objects, nothing else.
func Matrix(m MatrixRequest) ([]MatrixTarget, error) {
	variants := m.Variants
	if len(variants) == 0 {
		variants = DefaultVariants()
	}
	for _, v := range variants {
		if v != VariantPlain && v != VariantDebug {
			if err := kernel.CheckTool(v); err != nil {
				return nil, fmt.Errorf("variant %s: want %s, %s or a tool: %w", v, VariantPlain, VariantDebug, err)
			}
		}
	}
	var arches []kernel.Arch
	for _, a := range kernel.Arches() {
		keep := len(m.Arches) == 0
		for _, name := range m.Arches {
			b, err := kernel.ParseArch(name)
			if err != nil {
				return nil, err
			}
			keep = keep || b.Uname == a.Uname
		}
		if keep {
			arches = append(arches, a)
		}
	}
	co, err := kernelgit.Open(kernelgit.Options{KernelDir: m.KernelDir, Commit: m.HashCommit})
	if err != nil {
		return nil, err
	}
	if co.Dir.Layout == kernel.LayoutFlat {
		return nil, errors.New("matrix: the kernel directory has the flat layout of LinuxKit before 2024, whose series lkbuild cannot name one by one: build each version with lkbuild build --version")
	}
	var out []MatrixTarget
	seen := map[string]bool{}
	for _, s := range co.Dir.Series {
		if s.Deprecated || s.BuildArgs == nil {
			continue
		}
		seen[s.Name] = true
		if len(m.Series) > 0 && !slices.Contains(m.Series, s.Name) || m.Extra != "" && s.Extra != m.Extra {
			continue
		}
		for _, a := range arches {
			for _, v := range variants {
				t := MatrixTarget{Series: s.Name, Version: s.Version.String() + s.Extra, Arch: a.Uname, Variant: v}
				tags, err := co.Tags(t.Query(m), a)
				if errors.Is(err, kernel.ErrNoConfig) {
					break // no config for this arch: no variant of it
				}
				if err != nil {
					return nil, fmt.Errorf("matrix: %s: %w", t.Series, err)
				}
				for _, tag := range tags {
					if tag.Kind == kernel.TagArchImage {
						t.Ref = tag.String()
					}
				}
				t.Index, t.ID = len(out), s.Name+"/"+a.Uname+"/"+v
				out = append(out, t)
			}
		}
	}
	for _, name := range m.Series {
		if !seen[name] {
			return nil, fmt.Errorf("matrix: no series %s that is built by default (lkbuild list names them)", name)
		}
	}
	return out, nil
}

// PendingTargets are those of ts whose image the registry lacks: the skip
// check of lkbuild build --push, per target.
func PendingTargets(ctx context.Context, reg *oci.Registry, ts []MatrixTarget) ([]MatrixTarget, error) {
	var out []MatrixTarget
	for _, t := range ts {
		ok, err := reg.Exists(ctx, t.Ref)
		if err != nil {
			return nil, fmt.Errorf("check for %s: %w", t.Ref, err)
		}
		if !ok {
			out = append(out, t)
		}
	}
	return out, nil
}

// MatrixTargetByID finds the target id names among ts.
func MatrixTargetByID(ts []MatrixTarget, id string) (MatrixTarget, error) {
	for _, t := range ts {
		if t.ID == id {
			return t, nil
		}
	}
	var ids []string
	for _, t := range ts {
		ids = append(ids, t.ID)
	}
	return MatrixTarget{}, fmt.Errorf("no matrix target %q in this kernel directory (it has %s)", id, strings.Join(ids, ", "))
}
