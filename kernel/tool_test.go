package kernel

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
)

func TestNewPlanPerf(t *testing.T) {
	for _, tc := range []struct {
		name, arch string
		q          Query
		patches    []string
	}{
		{name: "x86_64", arch: "x86_64", q: Query{Series: "6.6.x", Tool: ToolPerf},
			patches: []string{"patch 0001-first.patch", "patch 0002-second.patch"}},
		{name: "aarch64", arch: "arm64", q: Query{Version: "6.6.71", Tool: ToolPerf, Image: "mykernel"},
			patches: []string{"patch 0001-first.patch", "patch 0002-second.patch"}},
		{name: "variant", arch: "x86_64", q: Query{Series: "5.11.x-rt", Tool: ToolPerf},
			patches: []string{"patch 0001-rt.patch", "patch 0002-rt2.patch", "patch 0001-base.patch"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := mustPlan(t, planFS(), tc.q, tc.arch, PlanOptions{Jobs: 3})
			if p.Tool != ToolPerf || p.Ucode != nil {
				t.Errorf("tool %q, ucode %+v: want perf and no microcode", p.Tool, p.Ucode)
			}
			want := append(slices.Clone(tc.patches), "make perf", "strip perf", "perf")
			if got := stepNames(p); !slices.Equal(got, want) {
				t.Errorf("steps = %q\nwant %q", got, want)
			}
			mk := step(t, p, "make perf")
			wantArgs := []string{"make", "-C", "tools/perf", "-j3", "EXTRA_CFLAGS=-Wno-alloc-size -Wno-calloc-transposed-args", "LDFLAGS=-static", "perf"}
			if !slices.Equal(mk.Args, wantArgs) || mk.Dir != "/linux" || !mk.CountsObjects || mk.Phase != PhaseCompile {
				t.Errorf("make perf = %+v", mk)
			}
			if !slices.Contains(mk.Env, "ARCH="+p.Arch.Make) {
				t.Errorf("make perf's env has no ARCH=%s: %q", p.Arch.Make, mk.Env)
			}
			if len(p.Outputs) != 1 || p.Outputs[0] != (Output{Path: "usr/bin/perf", Kind: OutputFile, Step: "perf"}) {
				t.Errorf("outputs = %+v", p.Outputs)
			}
			for _, s := range p.Steps {
				if s.Phase == PhaseConfig || s.PrintsRelease {
					t.Errorf("step %s configures or builds the kernel", s.Name)
				}
			}
		})
	}
}

func TestToolQuery(t *testing.T) {
	d, err := Load(planFS(), "kernel")
	if err != nil {
		t.Fatal(err)
	}
	co := &Checkout{Dir: d}
	for _, tc := range []struct {
		name  string
		q     Query
		image string
		err   string
		is    error
	}{
		{name: "perf", q: Query{Series: "6.6.x", Tool: "perf"}, image: "linuxkit/kernel-perf"},
		{name: "perf of another image", q: Query{Series: "6.6.x", Tool: "perf", Org: "example", Image: "k"}, image: "example/k-perf"},
		{name: "kernel", q: Query{Series: "6.6.x"}, image: "linuxkit/kernel"},
		{name: "bcc", q: Query{Series: "6.6.x", Tool: "bcc"}, is: ErrToolUnsupported, err: "bcc needs LLVM"},
		{name: "unknown", q: Query{Series: "6.6.x", Tool: "gdb"}, err: `"gdb" is not a tool lkbuild builds (perf, zfs-kmod)`},
		{name: "debug", q: Query{Series: "6.6.x", Tool: "perf", Debug: true}, err: "perf has no debug build"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, n, err := co.Resolve(tc.q)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) || (tc.is != nil && !errors.Is(err, tc.is)) {
					t.Fatalf("Resolve = %v, want an error with %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if n.Repository() != tc.image {
				t.Errorf("repository %s, want %s", n.Repository(), tc.image)
			}
		})
	}
}

func TestNewPlanPerfCross(t *testing.T) {
	d, err := Load(planFS(), "kernel")
	if err != nil {
		t.Fatal(err)
	}
	a, _ := ParseArch("arm64")
	_, err = NewPlan(d, Query{Series: "6.6.x", Tool: ToolPerf}, a, PlanOptions{CrossCompile: "aarch64-linux-gnu-"})
	if err == nil || !strings.Contains(err.Error(), "not with a cross compiler") {
		t.Errorf("NewPlan(perf, cross) = %v", err)
	}
}

func TestToolTagsHaveNoBuilder(t *testing.T) {
	co, _ := upstreamCheckout(t, false)
	a, _ := ParseArch("amd64")
	tags, err := co.Tags(Query{Series: "6.6.x", Tool: ToolPerf}, a)
	if err != nil {
		t.Fatal(err)
	}
	const h = "77b4563829536629b7d5768d4407453c26602d65"
	want := []string{
		"linuxkit/kernel-perf:6.6.71-" + h + "-amd64",
		"linuxkit/kernel-perf:6.6.71-" + h,
		"linuxkit/kernel-perf:6.6.71-amd64",
		"linuxkit/kernel-perf:6.6.71",
	}
	var got []string
	for _, tag := range tags {
		got = append(got, tag.String())
	}
	if !slices.Equal(got, want) {
		t.Errorf("tags = %q\nwant %q", got, want)
	}
}

func TestToolBuildPackages(t *testing.T) {
	perf := `# This Dockerfile extracts the source code and headers from a kernel package,
# builds the perf utility, and places it into a scratch image
ARG BUILD_IMAGE
ARG KERNEL_VERSION
ARG PKG_HASH

FROM linuxkit/kernel:${KERNEL_VERSION}-${PKG_HASH} as ksrc

FROM ${BUILD_IMAGE} AS build
RUN apk add \
    bison \
    elfutils-dev \
    flex
COPY --from=ksrc /linux.tar.xz /kernel-headers.tar /
RUN make -C tools/perf LDFLAGS=-static V=1

FROM scratch
COPY --from=build /out/perf /usr/bin/perf
`
	for _, tc := range []struct {
		name string
		fsys fstest.MapFS
		tool string
		want *BuildPackages
	}{
		{name: "series layout", tool: ToolPerf, fsys: fstest.MapFS{
			"6.6.x/build-args":       {Data: []byte("KERNEL_VERSION=6.6.71\n")},
			"common/Dockerfile":      {Data: []byte("FROM ${BUILD_IMAGE} AS kernel-build\nRUN apk add gcc\n")},
			"common/Dockerfile.perf": {Data: []byte(perf)},
		}, want: &BuildPackages{File: "kernel/common/Dockerfile.perf", Manager: ManagerApk, Packages: []string{"bison", "elfutils-dev", "flex"}}},
		{name: "the kernel's", fsys: fstest.MapFS{
			"6.6.x/build-args":       {Data: []byte("KERNEL_VERSION=6.6.71\n")},
			"common/Dockerfile":      {Data: []byte("FROM ${BUILD_IMAGE} AS kernel-build\nRUN apk add gcc\n")},
			"common/Dockerfile.perf": {Data: []byte(perf)},
		}, want: &BuildPackages{File: "kernel/common/Dockerfile", Manager: ManagerApk, Packages: []string{"gcc"}}},
		{name: "flat layout", tool: ToolPerf, fsys: fstest.MapFS{
			"Makefile":            {Data: []byte("KERNEL_VERSIONS=6.6.71\n")},
			"config-6.6.x-x86_64": {Data: []byte("CONFIG_X=y\n")},
			"Dockerfile.perf":     {Data: []byte("FROM $BUILD_IMAGE\nRUN apk add flex\n")},
		}, want: &BuildPackages{File: "kernel/Dockerfile.perf", Manager: ManagerApk, Packages: []string{"flex"}}},
		{name: "no Dockerfile.perf", tool: ToolPerf, fsys: fstest.MapFS{
			"6.6.x/build-args":  {Data: []byte("KERNEL_VERSION=6.6.71\n")},
			"common/Dockerfile": {Data: []byte("FROM ${BUILD_IMAGE} AS kernel-build\nRUN apk add gcc\n")},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, err := Load(tc.fsys, "kernel")
			if err != nil {
				t.Fatal(err)
			}
			got, err := d.BuildPackages(tc.tool)
			if err != nil {
				t.Fatal(err)
			}
			if (got == nil) != (tc.want == nil) || (got != nil && (got.File != tc.want.File || got.Manager != tc.want.Manager || !slices.Equal(got.Packages, tc.want.Packages))) {
				t.Errorf("BuildPackages(%q) = %+v, want %+v", tc.tool, got, tc.want)
			}
		})
	}
}
