package builder

import (
	"errors"
	"fmt"
	"path"
	"strconv"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/lkbuild/lkbuild/kernel"
)

// ErrNoProvenance is returned for an image that does not record the
// inputs it was built from (no dev.lkbuild.* annotations): an image lkbuild
// did not make, or one whose manifest lost its annotations on the way.
var ErrNoProvenance = errors.New("the image records no lkbuild inputs (no " + AnnotationPrefix + "* annotations on its manifest)")

// Recorded is what a kernel image says about how it was made: the inputs
// its manifest annotations record and the kernel directory commit of its
// labels. It is enough to build the image again (VerifyTarget).
type Recorded struct {
	// Provenance holds the recorded inputs; its facts about the run
	// (lkbuild version, toolchain other than cross) are not in an image.
	Provenance Provenance
	// Version is the kernel release the source is ("6.12.117"), from the
	// source URL.
	Version string
	// Extra is the variant without the debug suffix; Debug whether the
	// image is a debug kernel.
	Extra string
	Debug bool
	// Revision is the kernel directory's commit (the revision label);
	// SourceRepo its remote, "" when the build did not know it.
	Revision, SourceRepo string
}

// ReadRecorded reads what img records. An image without lkbuild's
// annotations is ErrNoProvenance; one with some of them missing or
// malformed is an error naming the annotation.
func ReadRecorded(img v1.Image) (*Recorded, error) {
	m, err := img.Manifest()
	if err != nil {
		return nil, fmt.Errorf("read the image manifest: %w", err)
	}
	a := m.Annotations
	if a[AnnotationSourceSHA256] == "" && a[AnnotationBuilderDigest] == "" {
		return nil, ErrNoProvenance
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("read the image config: %w", err)
	}
	labels := cfg.Config.Labels
	r := &Recorded{
		Revision:   labels[LabelRevision],
		SourceRepo: labels[LabelSource],
	}
	p := &r.Provenance
	need := func(key string) (string, error) {
		v, ok := a[key]
		if !ok || (v == "" && key != AnnotationVariant && key != AnnotationPatches) {
			return "", fmt.Errorf("the image's annotation %s is missing", key)
		}
		return v, nil
	}
	for _, f := range []struct {
		key string
		to  *string
	}{
		{AnnotationSourceURL, &p.SourceURL},
		{AnnotationSourceSHA256, &p.SourceSHA256},
		{AnnotationBuilderImage, &p.BuilderImage},
		{AnnotationBuilderDigest, &p.BuilderDigest},
		{AnnotationConfigSHA256, &p.ConfigSHA256},
		{AnnotationArch, &p.Arch},
		{AnnotationVariant, &p.Variant},
		{AnnotationSeriesHash, &p.SeriesHash},
		{AnnotationSourceXZ, &p.SourceXZ},
	} {
		if *f.to, err = need(f.key); err != nil {
			return nil, err
		}
	}
	epoch, err := need(AnnotationEpoch)
	if err != nil {
		return nil, err
	}
	if p.Epoch, err = strconv.ParseInt(epoch, 10, 64); err != nil || p.Epoch < 0 {
		return nil, fmt.Errorf("the image's annotation %s=%q is not a count of seconds", AnnotationEpoch, epoch)
	}
	if _, err := v1.NewHash(p.BuilderDigest); err != nil {
		return nil, fmt.Errorf("the image's annotation %s: %w", AnnotationBuilderDigest, err)
	}
	if _, err := r.XZLevel(); err != nil {
		return nil, err
	}
	p.UcodeCommit = a[AnnotationUcodeCommit]
	if p.Tool = a[AnnotationTool]; p.Tool != "" {
		if err := kernel.CheckTool(p.Tool); err != nil {
			return nil, fmt.Errorf("the image's annotation %s: %w", AnnotationTool, err)
		}
	}
	p.ZFSURL, p.ZFSSHA256 = a[AnnotationZFSURL], a[AnnotationZFSSHA256]
	if (p.Tool == kernel.ToolZFS) != (p.ZFSSHA256 != "") {
		return nil, fmt.Errorf("the image's annotations %s=%q and %s=%q do not go together", AnnotationTool, p.Tool, AnnotationZFSSHA256, p.ZFSSHA256)
	}
	p.Toolchain = ToolchainNative
	if a[AnnotationToolchain] == ToolchainCross {
		p.Toolchain = ToolchainCross
	}
	if patches := a[AnnotationPatches]; patches != "" {
		for _, l := range strings.Split(patches, "\n") {
			sum, file, ok := strings.Cut(l, "  ")
			if !ok || len(sum) != 64 || file == "" {
				return nil, fmt.Errorf("the image's annotation %s: line %q is not \"SHA256  FILE\"", AnnotationPatches, l)
			}
			p.Patches = append(p.Patches, PatchDigest{File: file, SHA256: sum})
		}
	}
	base := path.Base(p.SourceURL)
	v, ok := strings.CutPrefix(base, "linux-")
	if v, ok2 := strings.CutSuffix(v, ".tar.xz"); ok && ok2 {
		r.Version = v
	}
	if _, err := kernel.ParseVersion(r.Version); err != nil {
		return nil, fmt.Errorf("the image's source %s names no kernel release: %w", p.SourceURL, err)
	}
	r.Extra, r.Debug = strings.CutSuffix(p.Variant, kernel.DebugSuffix)
	if !isCommit(r.Revision) {
		return nil, fmt.Errorf("the image's %s label %q is not a git commit id: the kernel directory's commit is unknown", LabelRevision, r.Revision)
	}
	if p.UcodeCommit != "" && !isCommit(p.UcodeCommit) {
		return nil, fmt.Errorf("the image's annotation %s=%q is not a git commit id", AnnotationUcodeCommit, p.UcodeCommit)
	}
	return r, nil
}

// XZLevel is the xz preset the source archive was made with.
func (r *Recorded) XZLevel() (int, error) {
	s := r.Provenance.SourceXZ
	n, err := strconv.Atoi(strings.TrimPrefix(s, "-"))
	if err != nil || !strings.HasPrefix(s, "-") || n < 0 || n > 9 {
		return 0, fmt.Errorf("the image's annotation %s=%q is not an xz preset -0 to -9", AnnotationSourceXZ, s)
	}
	return n, nil
}

// isCommit reports whether s is a full git commit id (SHA-1 or SHA-256,
// lowercase hex): what a label may hold before it is printed in a hint.
func isCommit(s string) bool {
	if len(s) != 40 && len(s) != 64 {
		return false
	}
	for _, c := range s {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
