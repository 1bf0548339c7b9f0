package builder

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path"
	"slices"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/lkbuild/lkbuild/internal/sbom"
	"github.com/lkbuild/lkbuild/oci"
)

// The attachments of a kernel image: OCI artifacts whose subject is the
// image manifest, so that the image's own digest does not change.
const (
	// ArtifactProvenance is an in-toto statement with a SLSA provenance
	// v1 predicate.
	ArtifactProvenance = "application/vnd.in-toto+json"
	// ArtifactSBOM is an SPDX 2.3 JSON document.
	ArtifactSBOM = "application/spdx+json"

	statementType      = "https://in-toto.io/Statement/v1"
	slsaPredicateType  = "https://slsa.dev/provenance/v1"
	lkbuildBuildType   = "https://github.com/lkbuild/lkbuild/buildtypes/kernel/v1"
	lkbuildBuilderID   = "https://github.com/lkbuild/lkbuild"
	maxModuleListBytes = 16 << 20
)

// Statement is an in-toto statement (v1) whose predicate is SLSA
// provenance v1: what lkbuild attaches to an image it built.
type Statement struct {
	Type          string         `json:"_type"`
	Subject       []ResourceDesc `json:"subject"`
	PredicateType string         `json:"predicateType"`
	Predicate     SLSAProvenance `json:"predicate"`
}

// SLSAProvenance is the SLSA provenance v1 predicate.
type SLSAProvenance struct {
	BuildDefinition BuildDefinition `json:"buildDefinition"`
	RunDetails      RunDetails      `json:"runDetails"`
}

// BuildDefinition is what was built, from what.
type BuildDefinition struct {
	BuildType            string         `json:"buildType"`
	ExternalParameters   map[string]any `json:"externalParameters"`
	InternalParameters   map[string]any `json:"internalParameters,omitempty"`
	ResolvedDependencies []ResourceDesc `json:"resolvedDependencies"`
}

// RunDetails is who built it.
type RunDetails struct {
	Builder struct {
		ID      string            `json:"id"`
		Version map[string]string `json:"version,omitempty"`
	} `json:"builder"`
}

// ResourceDesc is an in-toto resource descriptor.
type ResourceDesc struct {
	Name        string            `json:"name,omitempty"`
	URI         string            `json:"uri,omitempty"`
	Digest      map[string]string `json:"digest,omitempty"`
	Annotations map[string]any    `json:"annotations,omitempty"`
}

// Dependency returns the resolved dependency called name, or nil.
func (s *Statement) Dependency(name string) *ResourceDesc {
	for i, d := range s.Predicate.BuildDefinition.ResolvedDependencies {
		if d.Name == name {
			return &s.Predicate.BuildDefinition.ResolvedDependencies[i]
		}
	}
	return nil
}

// The names of the resolved dependencies of a Statement (a patch's is
// depPatch and its file name).
const (
	depSource    = "source"
	depKernelDir = "kernel-dir"
	depConfig    = "config"
	depBuilder   = "builder"
	depCross     = "cross-toolchain"
	depUcode     = "intel-ucode"
	depZFS       = "openzfs"
	depPatch     = "patch:"
)

// ReadStatement parses a provenance attachment and checks that it is a
// SLSA v1 statement about the image digest subject.
func ReadStatement(data []byte, subject v1.Hash) (*Statement, error) {
	var s Statement
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, fmt.Errorf("provenance: %w", err)
	}
	if s.Type != statementType || s.PredicateType != slsaPredicateType {
		return nil, fmt.Errorf("provenance: type %q with predicate %q, want %q with %q", s.Type, s.PredicateType, statementType, slsaPredicateType)
	}
	for _, sub := range s.Subject {
		if sub.Digest["sha256"] == subject.Hex {
			return &s, nil
		}
	}
	return nil, fmt.Errorf("provenance: it is not about %s", subject)
}

// Check compares the statement's dependencies with what the image
// records: an attachment that says otherwise than the image is refused.
func (s *Statement) Check(rec *Recorded) error {
	p := rec.Provenance
	for _, c := range []struct{ dep, algo, want string }{
		{depSource, "sha256", p.SourceSHA256},
		{depBuilder, "sha256", strings.TrimPrefix(p.BuilderDigest, "sha256:")},
		{depConfig, "sha256", p.ConfigSHA256},
		{depKernelDir, "gitCommit", rec.Revision},
		{depUcode, "gitCommit", p.UcodeCommit},
		{depZFS, "sha256", p.ZFSSHA256},
	} {
		d := s.Dependency(c.dep)
		got := ""
		if d != nil {
			got = d.Digest[c.algo]
		}
		if got != c.want {
			return fmt.Errorf("provenance: %s %s is %q, the image records %q", c.dep, c.algo, got, c.want)
		}
	}
	for _, pd := range p.Patches {
		d := s.Dependency(depPatch + pd.File)
		if d == nil || d.Digest["sha256"] != pd.SHA256 {
			return fmt.Errorf("provenance: patch %s is not the one the image records (%s)", pd.File, pd.SHA256)
		}
	}
	return nil
}

// statement is this build's provenance, about the image digest.
func (b *build) statement(digest v1.Hash) Statement {
	p := b.res.Provenance
	q := b.t.Request.Query
	ext := map[string]any{
		"kernelDir":    b.t.KernelDir,
		"arch":         b.t.Arch.Uname,
		"version":      b.plan.Version.String(),
		"epoch":        p.Epoch,
		"builderImage": b.t.BuilderPull,
		"noUcode":      b.t.Request.NoUcode,
	}
	for k, v := range map[string]string{"series": q.Series, "extra": q.Extra, "org": q.Org, "image": q.Image, "tool": q.Tool,
		"sourceMirror": b.env.SourceMirror, "ucodeRepo": b.env.UcodeRepo, "crossImage": b.env.CrossImage} {
		if v != "" {
			ext[k] = withoutUserinfo(v)
		}
	}
	if q.Debug {
		ext["debug"] = true
	}
	if len(b.pol.Invocation) > 0 {
		var args []string
		for _, a := range b.pol.Invocation {
			// --flag=URL too.
			if f, v, ok := strings.Cut(a, "="); ok && strings.HasPrefix(f, "-") {
				a = f + "=" + withoutUserinfo(v)
			}
			args = append(args, withoutUserinfo(a))
		}
		ext["invocation"] = args
	}
	internal := map[string]any{"jobs": b.plan.Jobs, "xzLevel": b.pol.XZLevel, "toolchain": p.Toolchain}
	if len(p.NativeTools) > 0 {
		internal["nativeTools"] = p.NativeTools
	}
	if b.installed != nil {
		// What the build installed into the builder from its own
		// repository (the builder's SBOM package list holds the result).
		internal["builderInstall"] = b.installed
	}
	deps := []ResourceDesc{
		{Name: depSource, URI: p.SourceURL, Digest: map[string]string{"sha256": p.SourceSHA256}},
		{Name: depKernelDir, URI: withoutUserinfo(b.t.SourceRepo), Digest: map[string]string{"gitCommit": b.t.Revision},
			Annotations: map[string]any{"seriesHash": p.SeriesHash}},
		{Name: depConfig, Digest: map[string]string{"sha256": p.ConfigSHA256}},
		{Name: depBuilder, URI: p.BuilderImage, Digest: map[string]string{"sha256": strings.TrimPrefix(p.BuilderDigest, "sha256:")},
			Annotations: map[string]any{"pulledFrom": b.t.BuilderPull}},
	}
	for _, pd := range p.Patches {
		// Named as the image's annotation names it (the file's base name).
		deps = append(deps, ResourceDesc{Name: depPatch + path.Base(pd.File), URI: pd.File, Digest: map[string]string{"sha256": pd.SHA256}})
	}
	if p.CrossDigest != "" {
		deps = append(deps, ResourceDesc{Name: depCross, URI: p.CrossImage, Digest: map[string]string{"sha256": strings.TrimPrefix(p.CrossDigest, "sha256:")}})
	}
	if p.ZFSSHA256 != "" {
		deps = append(deps, ResourceDesc{Name: depZFS, URI: p.ZFSURL, Digest: map[string]string{"sha256": p.ZFSSHA256}})
	}
	if b.ucode != nil && b.plan.Ucode != nil {
		deps = append(deps, ResourceDesc{Name: depUcode, URI: withoutUserinfo(b.plan.Ucode.Repo), Digest: map[string]string{"gitCommit": b.ucode.Commit},
			Annotations: map[string]any{"tag": b.plan.Ucode.Ref}})
	}
	s := Statement{
		Type:          statementType,
		Subject:       []ResourceDesc{{Name: b.t.Ref, Digest: map[string]string{"sha256": digest.Hex}}},
		PredicateType: slsaPredicateType,
		Predicate: SLSAProvenance{BuildDefinition: BuildDefinition{
			BuildType: lkbuildBuildType, ExternalParameters: ext, InternalParameters: internal, ResolvedDependencies: deps,
		}},
	}
	s.Predicate.RunDetails.Builder.ID = lkbuildBuilderID
	if b.pol.Version != "" {
		s.Predicate.RunDetails.Builder.Version = map[string]string{"lkbuild": b.pol.Version}
	}
	return s
}

// attachments are the provenance and the SBOM of the image digest, made
// from the build's outputs (modules lists) and its builder's rootfs
// (package database).
func (b *build) attachments(d sandboxDirs, digest v1.Hash) ([]oci.Attachment, error) {
	st, err := json.MarshalIndent(b.statement(digest), "", "  ")
	if err != nil {
		return nil, fmt.Errorf("provenance: %w", err)
	}
	info, err := b.sbomInfo(d, digest)
	if err != nil {
		return nil, fmt.Errorf("sbom: %w", err)
	}
	doc, err := sbom.Kernel(info)
	if err != nil {
		return nil, fmt.Errorf("sbom: %w", err)
	}
	created := b.plan.Epoch.UTC().Format("2006-01-02T15:04:05Z")
	ann := map[string]string{"org.opencontainers.image.created": created}
	return []oci.Attachment{
		{ArtifactType: ArtifactProvenance, MediaType: ArtifactProvenance, Data: append(st, '\n'), Annotations: ann},
		{ArtifactType: ArtifactSBOM, MediaType: ArtifactSBOM, Data: doc, Annotations: ann},
	}, nil
}

// sbomInfo gathers what the SBOM says about the kernel.
func (b *build) sbomInfo(d sandboxDirs, digest v1.Hash) (sbom.KernelInfo, error) {
	p := b.res.Provenance
	info := sbom.KernelInfo{
		Name:         b.t.Ref,
		ImageDigest:  digest.String(),
		Version:      b.plan.Version.String(),
		Release:      b.res.Release,
		Arch:         b.t.Arch.Uname,
		ConfigSHA256: p.ConfigSHA256,
		Source:       sbom.Source{URL: p.SourceURL, SHA256: p.SourceSHA256},
		Builder:      sbom.Image{Name: p.BuilderImage, Digest: p.BuilderDigest},
		Created:      b.plan.Epoch,
		Tool:         "lkbuild-" + b.pol.Version,
		Program:      b.plan.Tool,
	}
	if b.plan.Tool != "" {
		// A tool is built from the source alone, not the kernel's config.
		info.ConfigSHA256 = ""
	}
	for _, pd := range p.Patches {
		info.Source.Patches = append(info.Source.Patches, sbom.File{Name: path.Base(pd.File), SHA256: pd.SHA256})
	}
	if z := b.plan.ZFS; z != nil {
		// OpenZFS's own declaration (its META's License); the kernel's
		// modules in the image stay GPL-2.0-only.
		info.ZFS = &sbom.Release{Version: z.Version, URL: p.ZFSURL, SHA256: p.ZFSSHA256, License: "CDDL-1.0"}
	}
	if b.ucode != nil && b.plan.Ucode != nil {
		info.Ucode = &sbom.Git{URL: b.plan.Ucode.Repo, Ref: b.plan.Ucode.Ref, Commit: b.ucode.Commit}
	}
	var err error
	if info.Builder.Packages, err = sbom.Packages(b.rootfs.Dir); err != nil {
		return info, fmt.Errorf("the builder's packages: %w", err)
	}
	// The modules lists modules_install wrote: read under the work
	// directory only (the sandbox wrote it, and may have left symlinks).
	if info.Builtin, err = readList(d.work, b.plan.ModulesFile(b.res.Release, "modules.builtin")); err != nil {
		return info, err
	}
	if info.Modules, err = readList(d.work, b.plan.ModulesFile(b.res.Release, "modules.order")); err != nil {
		return info, err
	}
	return info, nil
}

// readList reads the lines of root/rel, a regular file inside root (a
// kernel without modules has none: nil), at most maxModuleListBytes.
func readList(root, rel string) ([]string, error) {
	r, err := os.OpenRoot(root)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	fi, err := r.Lstat(rel)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file (%s)", rel, fi.Mode().Type())
	}
	f, err := r.Open(rel)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxModuleListBytes+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", rel, err)
	}
	if len(data) > maxModuleListBytes {
		return nil, fmt.Errorf("%s is larger than %d bytes", rel, maxModuleListBytes)
	}
	var lines []string
	for _, l := range strings.Split(string(data), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	slices.Sort(lines)
	return slices.Compact(lines), nil
}

// withoutUserinfo is s without the user and password of a URL (a token in
// a CI remote or mirror URL must not go into a published provenance);
// anything else is returned as it is.
func withoutUserinfo(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.User == nil || u.Host == "" {
		return s
	}
	u.User = nil
	return u.String()
}
