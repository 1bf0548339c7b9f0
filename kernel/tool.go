package kernel

import (
	"errors"
	"fmt"
	"path"
	"slices"
	"strconv"
	"strings"
)

// The tool images LinuxKit publishes with each kernel (its Makefile's
// TOOLS), as Query.Tool names them.
const (
	// ToolPerf is the perf image (<org>/kernel-perf): a static perf built
	// from the kernel's patched source, as /usr/bin/perf.
	ToolPerf = "perf"
	// ToolBcc is the bcc image, which lkbuild does not build.
	ToolBcc = "bcc"
)

// ErrToolUnsupported is returned for a tool LinuxKit lists that lkbuild
// does not build.
var ErrToolUnsupported = errors.New("tool not supported")

// SupportedTools are the tools lkbuild builds.
func SupportedTools() []string { return []string{ToolPerf, ToolZFS} }

// KernelTools are the tools of LinuxKit's TOOLS that lkbuild builds,
// which make build-<version> builds with the kernels: perf. The ZFS
// modules image is built on its own (make push_zfs_<series>).
func KernelTools() []string { return []string{ToolPerf} }

// BuildsKernel reports whether tool's plan builds the kernel (the kernel
// itself, "", and ToolZFS, whose modules need it): its builder is
// provisioned as the kernel's, from the kernel's Dockerfile, and it
// starts from the kernel's kept object tree.
func BuildsKernel(tool string) bool { return tool == "" || tool == ToolZFS }

// CheckTool checks a Query.Tool: "" (the kernel) or a supported tool.
func CheckTool(tool string) error {
	switch {
	case tool == "" || slices.Contains(SupportedTools(), tool):
		return nil
	case tool == ToolBcc:
		return fmt.Errorf("%s: %w: bcc needs LLVM and clang in the builder, which lkbuild does not provide; it builds %s",
			tool, ErrToolUnsupported, strings.Join(SupportedTools(), ", "))
	}
	return fmt.Errorf("%q is not a tool lkbuild builds (%s)", tool, strings.Join(SupportedTools(), ", "))
}

// ToolImage is the image name of tool's images: "<image>-<tool>",
// kernel-perf for the default image name; ZFSImage for ToolZFS.
func ToolImage(image, tool string) string {
	if tool == ToolZFS {
		return ZFSImage
	}
	if image == "" {
		image = DefaultImage
	}
	return image + "-" + tool
}

// ToolDockerfile is the Dockerfile LinuxKit builds tool's image with:
// common/Dockerfile.<tool>, or Dockerfile.<tool> in the flat layout. Its
// build stage lists the packages the tool needs in the builder
// (Dir.BuildPackages).
func (d *Dir) ToolDockerfile(tool string) string {
	if d.Layout == LayoutFlat {
		return "Dockerfile." + tool
	}
	return "common/Dockerfile." + tool
}

// ToolBinary is where the perf image holds perf, relative to its root.
const ToolBinary = "usr/bin/perf"

// planPerf sets Steps and Outputs for the perf image, as upstream's
// Dockerfile.perf builds it: the patched source, then a static perf from
// tools/perf, stripped, as /usr/bin/perf. No kernel is configured or
// built: perf needs only the source.
func (p *Plan) planPerf(d *Dir) {
	b := &planner{p: p}
	src := p.Paths.Source
	b.phase = PhasePatch
	b.patches(d)

	b.phase = PhaseCompile
	// Upstream's flags: newer gcc warns about perf's allocations, and
	// tools/perf builds with -Werror. The target is perf alone, not all:
	// the dlfilters are shared objects, which a static link (glibc's
	// crtbeginT.o) cannot make.
	compile := b.run("make perf", src, "make", "-C", "tools/perf", "-j"+strconv.Itoa(p.Jobs),
		"EXTRA_CFLAGS=-Wno-alloc-size -Wno-calloc-transposed-args", "LDFLAGS=-static", "perf")
	compile.CountsObjects = true
	b.add(compile, b.run("strip perf", src, "strip", "tools/perf/perf"))

	b.phase = PhasePackage
	b.produce(ToolBinary, OutputFile, Step{Name: "perf", Action: &FileCopy{
		From: []string{path.Join(src, "tools/perf/perf")}, To: b.out(ToolBinary), Exec: true,
	}})
	p.Steps, p.Outputs = b.steps, b.outputs
}
