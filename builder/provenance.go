package builder

import (
	"crypto/sha256"
	"encoding/hex"
	"path"
	"strconv"
	"strings"

	"github.com/lkbuild/lkbuild/kernel"
)

// Labels and annotations of a kernel image.
const (
	LabelBuildImage = "org.mobyproject.linuxkit.kernel.buildimage"
	LabelSource     = "org.opencontainers.image.source"
	LabelRevision   = "org.opencontainers.image.revision"

	// The inputs of the build, as manifest annotations (Provenance).
	AnnotationPrefix        = "dev.lkbuild."
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
	// AnnotationTool names the tool of a tool image (perf), absent on a
	// kernel image.
	AnnotationTool = AnnotationPrefix + "tool"
	// AnnotationZFSURL and AnnotationZFSSHA256 record the OpenZFS release
	// of a zfs-kmod image.
	AnnotationZFSURL    = AnnotationPrefix + "zfs.url"
	AnnotationZFSSHA256 = AnnotationPrefix + "zfs.sha256"
	// AnnotationToolchain is "cross" on a --cross build's image, and
	// absent otherwise: a native, emulated and fast-path build give one
	// image.
	AnnotationToolchain = AnnotationPrefix + "toolchain"
)

// Provenance is what an image was built from and by. Its inputs are also
// in the image, as annotations (Annotations), so that lkbuild verify can
// rebuild it from the image alone. What does not change the build (the
// lkbuild version that ran it, where the builder was read from) is kept
// out of the image's digest: it is here only, for a referrer to carry.
type Provenance struct {
	// The build's inputs, each recorded in the image.
	SourceURL     string        `json:"sourceURL"`
	SourceSHA256  string        `json:"sourceSHA256"`
	BuilderImage  string        `json:"builderImage"` // the recorded name
	BuilderDigest string        `json:"builderDigest"`
	ConfigSHA256  string        `json:"configSHA256"`
	Patches       []PatchDigest `json:"patches,omitempty"`
	Epoch         int64         `json:"epoch"`
	Arch          string        `json:"arch"`
	Variant       string        `json:"variant,omitempty"`
	SeriesHash    string        `json:"seriesHash"`
	UcodeCommit   string        `json:"ucodeCommit,omitempty"`
	SourceXZ      string        `json:"sourceXZ"`
	// Tool is the tool a tool image holds (kernel.ToolPerf), "" for a
	// kernel.
	Tool string `json:"tool,omitempty"`
	// ZFSURL and ZFSSHA256 are the OpenZFS release of a zfs-kmod image.
	ZFSURL    string `json:"zfsURL,omitempty"`
	ZFSSHA256 string `json:"zfsSHA256,omitempty"`

	// Facts about the run that do not change the image.
	LkbuildVersion string `json:"lkbuildVersion,omitempty"`
	BuilderPulled  string `json:"builderPulledFrom,omitempty"`
	// Toolchain is how the compiler ran: ToolchainNative, ToolchainEmulated
	// or ToolchainFastPath (then CrossImage and CrossDigest name the cross
	// toolchain). The fast path gives the emulated build's bytes, so the
	// image does not record which one made it.
	Toolchain   string `json:"toolchain"`
	CrossImage  string `json:"crossImage,omitempty"`
	CrossDigest string `json:"crossDigest,omitempty"`
	// NativeTools are the builder's programs the fast path ran natively
	// from the cross image (make, sh, sed, ...).
	NativeTools []string `json:"nativeTools,omitempty"`
}

// How a build's compiler ran (Provenance.Toolchain).
const (
	ToolchainNative   = "native"
	ToolchainEmulated = "emulated"
	ToolchainFastPath = "fast path"
	// ToolchainCross is a --cross build: a cross compiler in a host-arch
	// builder. Its output differs from the others', and the image says so
	// (AnnotationToolchain).
	ToolchainCross = "cross"
)

// PatchDigest is one applied patch.
type PatchDigest struct {
	// File is the patch relative to the kernel directory.
	File   string `json:"file"`
	SHA256 string `json:"sha256"`
}

// Annotations are the build's inputs as manifest annotations.
func (p Provenance) Annotations() map[string]string {
	a := map[string]string{
		AnnotationSourceURL:     p.SourceURL,
		AnnotationSourceSHA256:  p.SourceSHA256,
		AnnotationBuilderImage:  p.BuilderImage,
		AnnotationBuilderDigest: p.BuilderDigest,
		AnnotationConfigSHA256:  p.ConfigSHA256,
		AnnotationEpoch:         strconv.FormatInt(p.Epoch, 10),
		AnnotationArch:          p.Arch,
		AnnotationVariant:       p.Variant,
		AnnotationSeriesHash:    p.SeriesHash,
		AnnotationSourceXZ:      p.SourceXZ,
	}
	if p.Toolchain == ToolchainCross {
		a[AnnotationToolchain] = ToolchainCross
	}
	var patches []string
	for _, pd := range p.Patches {
		patches = append(patches, pd.SHA256+"  "+path.Base(pd.File))
	}
	a[AnnotationPatches] = strings.Join(patches, "\n")
	if p.UcodeCommit != "" {
		a[AnnotationUcodeCommit] = p.UcodeCommit
	}
	if p.Tool != "" {
		a[AnnotationTool] = p.Tool
	}
	if p.ZFSSHA256 != "" {
		a[AnnotationZFSURL], a[AnnotationZFSSHA256] = p.ZFSURL, p.ZFSSHA256
	}
	return a
}

// provenance is this build's, once its inputs are fetched.
func (b *build) provenance() Provenance {
	config := sha256.Sum256(b.plan.Config)
	variant := b.plan.Extra
	if b.plan.Debug {
		variant += kernel.DebugSuffix
	}
	p := Provenance{
		SourceURL:      b.plan.SourceURL(),
		SourceSHA256:   b.src.SHA256,
		BuilderImage:   b.plan.BuilderImage,
		BuilderDigest:  b.rootfs.Digest.String(),
		ConfigSHA256:   hex.EncodeToString(config[:]),
		Epoch:          b.plan.Epoch.Unix(),
		Arch:           b.plan.Arch.Uname,
		Variant:        variant,
		SeriesHash:     b.t.Hash,
		SourceXZ:       "-" + strconv.Itoa(b.pol.XZLevel),
		Tool:           b.plan.Tool,
		ZFSURL:         b.zfsURL(),
		ZFSSHA256:      b.zfs.SHA256,
		LkbuildVersion: b.pol.Version,
		BuilderPulled:  b.t.BuilderPull,
		Toolchain:      ToolchainNative,
	}
	switch {
	case b.plan.CrossCompile != "":
		p.Toolchain = ToolchainCross
	case b.fast != nil:
		p.Toolchain, p.CrossImage, p.CrossDigest = ToolchainFastPath, b.fast.image, b.fast.digest
		p.NativeTools = b.fast.native
	case b.env.Emulation != nil:
		p.Toolchain = ToolchainEmulated
	}
	for _, ps := range b.patches {
		p.Patches = append(p.Patches, PatchDigest{File: ps.rel, SHA256: ps.sha256})
	}
	if b.ucode != nil {
		p.UcodeCommit = b.ucode.Commit
	}
	return p
}

// labels are the image config's labels.
func (b *build) labels() map[string]string {
	l := map[string]string{LabelBuildImage: b.plan.BuilderImage}
	if b.t.Revision != "" {
		l[LabelRevision] = b.t.Revision
	}
	if b.t.SourceRepo != "" {
		l[LabelSource] = b.t.SourceRepo
	}
	return l
}
