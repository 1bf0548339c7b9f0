package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/lkbuild/lkbuild/builder"
	"github.com/lkbuild/lkbuild/internal/cachedir"
	"github.com/lkbuild/lkbuild/internal/kernelgit"
	"github.com/lkbuild/lkbuild/kernel"
	"github.com/lkbuild/lkbuild/oci"
	"github.com/lkbuild/lkbuild/toolchain"
)

const buildDescription = `Builds the kernel of one series for one arch (--arch, default: this
host's, as LinuxKit's ARCH) the way LinuxKit's kernel/Makefile and
Dockerfile do, without Docker. With no --series or --version it builds every
series that is not deprecated (the versions lkbuild list prints), one after
the other, as 'make build' does; --with-debug builds each version's debug
kernel too ('make build' is lkbuild build --with-debug, 'make
build-6.6.71' is lkbuild build --version 6.6.71 --with-debug).

For each kernel: the source is fetched
and verified (sha256sums.asc and the .tar.sign, against common/keys.asc),
the builder image is pulled and unpacked, and every step (patches, config,
make, modules_install, headers_install) runs in a rootless sandbox with no
network. A foreign --arch (aarch64 or riscv64 on x86_64) runs its builder
under QEMU user-mode, 6-8x slower than native; with --cross-image the
compilers, make, the shell and the recipes' text tools (where the cross
image has the builder's package versions) run natively inside that build
and the output stays the same (see the README's "Foreign arches"). The result is the image LinuxKit expects (kernel, System.map,
kernel.tar, kernel-headers.tar, kernel-dev.tar, src/linux.tar.xz, ...),
bit for bit reproducible, written to an OCI layout (--output) and, with
--push, pushed under every tag (lkbuild tags lists them).

In the layout the image gets every name a push gives it, fully
qualified as LinuxKit looks names up (docker.io/linuxkit/kernel:6.6.71-amd64):
the multi-arch tags are indexes of the arches built into that layout, and
<version>-builder holds the builder image. A tag that names one image only
also names it alone (oci:DIR:6.6.71-amd64, for skopeo). --linuxkit-cache
writes into LinuxKit's cache, where linuxkit build finds the kernel.

The build is skipped when <version>-<hash>-<arch> already exists (in the
layout, or with --push in the registry); --force rebuilds.

After a change to a patch the build is incremental: the object tree of
the target's last build is kept in the cache (lkbuild cache lists it), and
when the patches changed only the contents of existing files, not a
Makefile, Kbuild or Kconfig file, kbuild rebuilds only what they reach.
The image is the one a clean build gives, bit for bit. A new config,
source release, builder or toolchain gets its own tree; --clean starts
from an empty one.

The builder image is the series' BUILD_IMAGE (build-args) unless
--builder-image names another; a registry reference or an image in an OCI
layout, oci:DIR:NAME. The sandbox has no network, so the builder either
holds the toolchain (gcc, make, bc, bison, flex, perl, patch, xz, libelf
and libssl headers, kmod, cpio, and for x86_64 iucode_tool; lkbuild
builder-image makes such an image) or carries its own package repository,
as LinuxKit's linuxkit/alpine images do (/mirror, the only repository the
package manager is set up with). Then lkbuild installs the packages that
the first stage of the kernel directory's common/Dockerfile installs
('RUN apk add ...' upstream; apt-get works too), with the builder's own
package manager, in the sandbox, with no network, once per builder digest
and package list (cached); the provenance records what it installed. A
package neither in the builder nor in its repository stops the build
before it starts, naming the package.

--tool perf builds the kernel's perf image instead (LinuxKit's
kernel-perf, make buildtool-<version>-perf): perf linked statically from
the series' patched source, stripped, as /usr/bin/perf in an image named
<org>/<image>-perf with the kernel's tags (no -builder). It needs no
kernel build. Its packages come from the build stage of
common/Dockerfile.perf, installed as above; perf leaves out what the
builder lacks the static libraries of (its build log lists them).
--with-tools adds each version's tool images to a build of kernels. bcc
needs LLVM and is not built.

--tool zfs-kmod builds the ZFS modules image (LinuxKit's make
push_zfs_<series>): <org>/zfs-kmod with the kernel's tags (no -builder,
no debug: CONFIG_DEBUG_LOCK_ALLOC and ZFS's licence do not mix), holding
/lib/modules: every module of the kernel plus OpenZFS's spl and zfs built
against it, with depmod run over them all, so that they can be modprobed.
It builds the kernel first, in the same builder and object tree as the
kernel's build (after one, only OpenZFS compiles), then OpenZFS's modules
(configure --with-config=kernel: the modules only, which need nothing but
the kernel's toolchain). The OpenZFS release is the VERSION the kernel
directory's common/Dockerfile.zfs sets (ENV VERSION=2.3.2, as upstream's)
or --zfs-version, fetched from --zfs-mirror (OpenZFS's GitHub releases,
or a directory holding zfs-<version>/zfs-<version>.tar.gz and its .asc)
and checked against its detached signature with the kernel's keys (or
--zfs-keys) before anything is extracted; the image records its SHA-256.
A release whose META does not cover the kernel stops the build before it
compiles, naming both; a module that needs a symbol the kernel lacks
stops it at depmod.

The full log of the build's commands goes to a file under the cache
directory; a failure prints its last lines and its path.

Exit status: 0 built (or already there), 3 a registry or network fault
(worth a retry: what CI engines and lkbuild matrix's Kubernetes Job
retry), 130 interrupted, 1 anything else. --matrix-target,
--matrix-index (or Kubernetes' JOB_COMPLETION_INDEX) and --matrix-targets
build one target of lkbuild matrix (see lkbuild matrix --help).

Examples:
   lkbuild --series 6.6.x --arch x86_64 --builder-image registry.example/kbuilder:1
   lkbuild build --series 6.6.x --arch arm64 --push --org registry.example/linuxkit
   lkbuild build --series 6.6.x --arch x86_64 --linuxkit-cache   # then: linuxkit build kernel.yml
   lkbuild --series 6.6.x --arch riscv64 --builder-image oci:fixtures:builder-riscv64 \
       --cross-image oci:fixtures:cross
   lkbuild build --series 6.6.x --debug --source-mirror /srv/kernel.org --no-ucode
   lkbuild build --series 6.6.x --json > events.jsonl
   lkbuild build --with-debug --with-tools   # every series, plain, debug and perf: make build
   lkbuild build --version 6.6.71 --with-debug --with-tools --push   # make push-6.6.71
   lkbuild build --series 6.6.x --tool perf     # make buildtool-6.6.71-perf
   lkbuild build --series 6.12.x --tool zfs-kmod --push   # make push_zfs_6.12.x`

// buildFlags are the flags of lkbuild build, also taken by lkbuild itself.
func buildFlags() []cli.Flag {
	return append(append(queryFlags(),
		archFlag("arch to build"),
		&cli.BoolFlag{Name: "with-debug", Usage: "build each version's debug kernel (-dbg) after its plain one, as make build-<version> does"},
		&cli.BoolFlag{Name: "with-tools", Usage: "build each version's tool images after its kernels, as make build-<version> does: perf (LinuxKit's bcc needs LLVM: not built)"},
		&cli.StringFlag{Name: "builder-image", Usage: "image the build runs in (registry reference or oci:DIR:NAME); default: the series' BUILD_IMAGE"},
		&cli.StringFlag{Name: "builder-name", Usage: "the builder's name recorded in the image (buildimage label, /kernel-builder); default: --builder-image, or NAME of oci:DIR:NAME"},
		&cli.StringFlag{Name: "source-mirror", Usage: "kernel.org-style mirror of the sources: URL or local directory", Value: kernel.DefaultSourceMirror, EnvVars: []string{"LKBUILD_SOURCE_MIRROR"}},
		&cli.StringFlag{Name: "keys", Usage: "PGP keys that sign the sources (default: <kernel-dir>/common/keys.asc)"},
		&cli.StringFlag{Name: "ucode-repo", Usage: "git URL or local mirror of the Intel microcode (x86_64)", Value: kernel.UcodeRepo, EnvVars: []string{"LKBUILD_UCODE_REPO"}},
		&cli.BoolFlag{Name: "no-ucode", Usage: "leave the Intel microcode out of an x86_64 image"},
		&cli.StringFlag{Name: "zfs-version", Usage: "with --tool zfs-kmod: the OpenZFS release (default: ENV VERSION in common/Dockerfile.zfs)"},
		zfsMirrorFlag(),
		&cli.StringFlag{Name: "zfs-keys", Usage: "with --tool zfs-kmod: PGP keys that sign the OpenZFS release (default: --keys's)"},
		&cli.StringFlag{Name: "output", Usage: "OCI layout the image is written to", Value: defaultOutput(), EnvVars: []string{"LKBUILD_OUTPUT"}},
		linuxKitCacheFlag("write the image into LinuxKit's cache"),
		&cli.BoolFlag{Name: "push", Usage: "push every tag to the registry (auth from the docker config) and merge the multi-arch indexes"},
		&cli.BoolFlag{Name: "force", Usage: "build even when the image already exists"},
		&cli.BoolFlag{Name: "clean", Usage: "build from an empty object tree instead of the one the target's last build left (the image is the same)"},
		&cli.IntFlag{Name: "jobs", Usage: "make -j (default: the CPUs this process may use)"},
		&cli.Int64Flag{Name: "epoch", Usage: "build date in Unix seconds (default: SOURCE_DATE_EPOCH, else the kernel dir's HEAD commit time)", Value: -1},
		&cli.IntFlag{Name: "xz-level", Usage: "xz preset of src/linux.tar.xz (upstream: 6)", Value: builder.DefaultXZLevel},
		&cli.BoolFlag{Name: "json", Usage: "print events as JSON lines on stdout instead of text"},
		&cli.StringFlag{Name: "bundle", Usage: "build from a bundle lkbuild fetch --bundle wrote, a directory or a tar (or .tar.gz) of it: every piece verified, then used without any network; lkbuild fetch: the directory to write one to"},
		qemuImageFlag(),
		&cli.StringFlag{Name: "cross-image", Usage: "for a foreign --arch: an image for this host's arch with the cross gcc and binutils of the builder's versions (registry reference or oci:DIR:NAME); the compilers, and make, sh, sed, ... where its packages are the builder's versions, then run natively; the output is the fully emulated build's", EnvVars: []string{"LKBUILD_CROSS_IMAGE"}},
		&cli.BoolFlag{Name: "no-fast-path", Usage: "build a foreign arch fully emulated even with --cross-image"},
		&cli.BoolFlag{Name: "cross", Usage: "build a foreign --arch with the cross compiler of a builder for this host's arch (CROSS_COMPILE), no emulation: fast, but the image differs from a native build's and is annotated as such"},
		&cli.StringFlag{Name: "matrix-target", Usage: "build the target of lkbuild matrix with this id (series/arch/variant, e.g. 6.6.x/aarch64/debug) instead of --series, --arch, --debug, --tool"},
		&cli.IntFlag{Name: "matrix-index", Usage: "build the Nth target (from 0) of --matrix-targets, or without it of the whole matrix lkbuild matrix --all prints; Kubernetes' JOB_COMPLETION_INDEX sets it", EnvVars: []string{"JOB_COMPLETION_INDEX"}},
		&cli.StringFlag{Name: "matrix-targets", Usage: "the ids of a matrix's targets, separated by spaces, for --matrix-index (what lkbuild matrix --format k8s puts in its Job)", EnvVars: []string{"LKBUILD_MATRIX_TARGETS"}},
	), registryFlags()...)
}

// linuxKitCacheFlag is --linuxkit-cache, which names LinuxKit's cache as
// the layout instead of --output.
func linuxKitCacheFlag(what string) cli.Flag {
	return &cli.BoolFlag{Name: "linuxkit-cache", Usage: what + " ($LINUXKIT_CACHE, else ~/.linuxkit/cache; an OCI layout) instead of --output: linuxkit build and FROM lines in linuxkit pkg build find it there"}
}

// outputDir is the OCI layout of a build or push: --output, or with
// --linuxkit-cache LinuxKit's cache, as linuxkit itself finds it.
func outputDir(c *cli.Context) (string, error) {
	if !c.Bool("linuxkit-cache") {
		return c.String("output"), nil
	}
	// LKBUILD_OUTPUT in the environment is a default: the flag wins.
	if c.IsSet("output") && c.String("output") != os.Getenv("LKBUILD_OUTPUT") {
		return "", errors.New("--output and --linuxkit-cache both name the layout: give one")
	}
	return linuxKitCacheDir(os.Getenv, os.UserHomeDir)
}

// linuxKitCacheDir is where linuxkit keeps its cache: $LINUXKIT_CACHE,
// else ~/.linuxkit/cache (LinuxKit's cache.go and pkg_build.go).
func linuxKitCacheDir(getenv func(string) string, home func() (string, error)) (string, error) {
	if d := getenv("LINUXKIT_CACHE"); d != "" {
		return d, nil
	}
	h, err := home()
	if err != nil {
		return "", fmt.Errorf("linuxkit cache: %w", err)
	}
	return filepath.Join(h, ".linuxkit", "cache"), nil
}

// defaultOutput is $XDG_DATA_HOME/lkbuild/oci (~/.local/share/lkbuild/oci).
func defaultOutput() string {
	if d := os.Getenv("XDG_DATA_HOME"); d != "" {
		return filepath.Join(d, "lkbuild", "oci")
	}
	if h, err := os.UserHomeDir(); err == nil {
		return filepath.Join(h, ".local", "share", "lkbuild", "oci")
	}
	return "lkbuild-oci"
}

func buildCommand() *cli.Command {
	return &cli.Command{
		Name:        "build",
		Usage:       "build a kernel image (the default command)",
		Description: buildDescription,
		Flags:       buildFlags(),
		Before: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return fmt.Errorf("unexpected argument %q: name the kernel with --series or --version, or give neither to build every series", c.Args().First())
			}
			return nil
		},
		Action: buildAction,
	}
}

func zfsMirrorFlag() cli.Flag {
	return &cli.StringFlag{Name: "zfs-mirror", Usage: "with --tool zfs-kmod: where OpenZFS releases are, zfs-<version>/zfs-<version>.tar.gz and .asc under a URL or directory", Value: kernel.DefaultZFSMirror, EnvVars: []string{"LKBUILD_ZFS_MIRROR"}}
}

// buildRequest is the build the flags name.
func buildRequest(c *cli.Context) builder.Request {
	r := builder.Request{
		KernelDir: c.String("kernel-dir"), HashCommit: c.String("hash-commit"),
		Query: queryOptions(c), Arch: c.String("arch"),
		BuilderImage: c.String("builder-image"), BuilderName: c.String("builder-name"),
		Jobs: c.Int("jobs"), NoUcode: c.Bool("no-ucode"), KeysFile: c.String("keys"),
		Cross: c.Bool("cross"), ZFSVersion: c.String("zfs-version"), ZFSKeysFile: c.String("zfs-keys"),
	}
	if c.IsSet("epoch") {
		e := time.Unix(c.Int64("epoch"), 0)
		r.Epoch = &e
	}
	return r
}

// cacheDir is --cache-dir's layout.
func cacheDir(c *cli.Context) (cachedir.Dir, error) {
	return cachedir.Open(c.String("cache-dir"))
}

// buildQueries are the kernels a build command names: its --series or
// --version, else every version lkbuild list prints; each also as the
// debug kernel with --with-debug.
func buildQueries(c *cli.Context) ([]kernel.Query, error) {
	q := queryOptions(c)
	var qs []kernel.Query
	if q.Series != "" || q.Version != "" {
		qs = []kernel.Query{q}
	} else {
		a, err := kernel.ParseArch(c.String("arch"))
		if err != nil {
			return nil, err
		}
		versions, dir, err := listedVersions(c, a, false)
		if err != nil {
			return nil, err
		}
		for _, v := range versions {
			vq := q
			vq.Version = v
			qs = append(qs, vq)
		}
		if len(qs) == 0 {
			return nil, fmt.Errorf("%s has no series to build (every one is deprecated or has no build-args): name one with --series", dir)
		}
	}
	if (c.Bool("with-debug") || c.Bool("with-tools")) && q.Tool != "" {
		return nil, errors.New("--tool builds one tool image, --with-debug and --with-tools add to kernels: give one")
	}
	if c.Bool("with-debug") && q.Debug {
		return nil, errors.New("--debug builds only the debug kernel, --with-debug the plain one and the debug one: give one")
	}
	var out []kernel.Query
	for _, q := range qs {
		out = append(out, q)
		if c.Bool("with-debug") {
			d := q
			d.Debug = true
			out = append(out, d)
		}
		if c.Bool("with-tools") {
			for _, tool := range kernel.KernelTools() {
				t := q
				t.Debug, t.Tool = false, tool
				out = append(out, t)
			}
		}
	}
	return out, nil
}

// listedVersions are the kernel versions lkbuild list prints for arch
// (every series that is not deprecated), each once, in its order; with
// base, a variant's version without its suffix (6.6.71-rt is 6.6.71). dir
// names the kernel directory for messages.
func listedVersions(c *cli.Context, arch kernel.Arch, base bool) (versions []string, dir string, err error) {
	co, err := kernelgit.Open(openOptions(c))
	if err != nil {
		return nil, "", err
	}
	l, err := co.List(arch)
	if err != nil {
		return nil, "", err
	}
	for _, v := range l.Kernels {
		if base {
			v, _, _ = strings.Cut(v, "-")
		}
		if !slices.Contains(versions, v) {
			versions = append(versions, v)
		}
	}
	return versions, co.Dir.Path, nil
}

// buildAction builds each kernel the flags name, in turn, and stops at the
// first that fails.
func buildAction(c *cli.Context) error {
	if c.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q (see lkbuild --help)", c.Args().First())
	}
	if t, m, which, ok, err := pickMatrixTarget(c); err != nil || ok {
		if err != nil {
			return err
		}
		if !c.Bool("json") {
			if which != "" {
				which = " " + which
			}
			fmt.Fprintf(c.App.ErrWriter, "lkbuild: matrix target%s: %s\n", which, t.ID)
		}
		req := buildRequest(c)
		req.Query, req.Arch = t.Query(m), t.Arch
		return buildOne(c, req)
	}
	qs, err := buildQueries(c)
	if err != nil {
		return err
	}
	for i, q := range qs {
		if len(qs) > 1 && !c.Bool("json") {
			name := q.Series
			if name == "" {
				name = q.Version
			}
			if q.Debug {
				name += " (debug)"
			}
			if q.Tool != "" {
				name += " (" + q.Tool + ")"
			}
			fmt.Fprintf(c.App.ErrWriter, "lkbuild: kernel %d of %d: %s\n", i+1, len(qs), name)
		}
		req := buildRequest(c)
		req.Query = q
		if err := buildOne(c, req); err != nil {
			if len(qs) > 1 {
				return fmt.Errorf("kernel %d of %d: %w", i+1, len(qs), err)
			}
			return err
		}
	}
	return nil
}

// buildOne builds the kernel req names.
func buildOne(c *cli.Context, req builder.Request) error {
	t, err := builder.Resolve(c.Context, req)
	if err != nil {
		return err
	}
	cache, err := cacheDir(c)
	if err != nil {
		return err
	}
	bundle, remove, err := importBundle(c, cache, t.Arch, t.BuilderPull)
	if err != nil {
		return err
	}
	defer remove()
	output, err := outputDir(c)
	if err != nil {
		return err
	}
	// A failed build leaves no empty layout behind where there was none.
	_, statErr := os.Stat(output)
	out, err := oci.OpenStore(output)
	if err != nil {
		return err
	}
	keep := !errors.Is(statErr, fs.ErrNotExist)
	defer func() {
		if !keep {
			os.RemoveAll(out.Dir())
		}
	}()
	reg, err := newRegistry(c)
	if err != nil {
		return err
	}
	if c.Bool("cross") && c.String("cross-image") != "" {
		return errors.New("--cross and --cross-image are two ways to build a foreign arch: give one")
	}
	emu, err := emulationFor(c, t.BuilderArch)
	if err != nil {
		return err
	}
	r := newRenderer(c)
	defer r.close()
	env := buildEnv(c, reg, cache, out, emu, bundle)
	if cross := c.String("cross-image"); cross != "" && !c.Bool("no-fast-path") {
		if emu == nil {
			return fmt.Errorf("--cross-image is for a foreign --arch: %s builds natively here", t.Arch)
		}
		env.CrossImage = cross
	}
	pol := builder.Policy{
		Push: c.Bool("push"), Force: c.Bool("force"), Clean: c.Bool("clean"), XZLevel: c.Int("xz-level"),
		Version: c.App.Version, Invocation: os.Args, Events: r.event,
	}
	if !c.Bool("json") {
		r.printf("building %s for %s in %s (make -j%d)\n", t.Tags[0], t.Arch, t.BuilderPull, t.Plan.Jobs)
	}
	res, err := builder.Build(c.Context, t, env, pol)
	r.close()
	// The image is in the layout when the build made it, even if its
	// push failed.
	keep = keep || err == nil || errors.As(err, new(*builder.PushError))
	if err != nil {
		return buildFailure(c, r, t, res, err)
	}
	return r.result(res)
}

// buildEnv is where a build (or a verify's rebuild) runs, as the flags
// say: the mirrors are the bundle's when there is one.
func buildEnv(c *cli.Context, reg *oci.Registry, cache cachedir.Dir, out *oci.Store, emu *toolchain.Emulation, bundle *builder.Bundle) builder.Environment {
	env := builder.Environment{
		Registry: reg, Cache: cache, Output: out,
		SourceMirror: c.String("source-mirror"), UcodeRepo: c.String("ucode-repo"), Emulation: emu,
		ZFSMirror: c.String("zfs-mirror"), Offline: offline(c),
	}
	if bundle != nil {
		env.SourceMirror, env.UcodeRepo = bundle.SourceMirror(), bundle.UcodeRepo()
	}
	return env
}

// importBundle opens --bundle (a directory, or a tar of one), verifies it
// and imports what a run for arch pulling builder (and --cross-image,
// --qemu-image) needs into cache. Without --bundle it returns nil. remove
// deletes what an unpacked tar left; call it when done.
func importBundle(c *cli.Context, cache cachedir.Dir, arch kernel.Arch, builderRef string) (*builder.Bundle, func(), error) {
	path := c.String("bundle")
	if path == "" {
		return nil, func() {}, nil
	}
	var b *builder.Bundle
	remove := func() {}
	var err error
	if fi, serr := os.Stat(path); serr == nil && fi.Mode().IsRegular() {
		b, remove, err = builder.OpenBundleArchive(c.Context, path, cache.Work())
	} else {
		b, err = builder.OpenBundle(path)
	}
	if err != nil {
		return nil, func() {}, err
	}
	if err := b.Import(c.Context, cache, arch, builderRef, c.String("cross-image"), c.String("qemu-image")); err != nil {
		remove()
		return nil, func() {}, err
	}
	return b, remove, nil
}

// buildFailure prints what a user needs to fix a failed build and returns
// the error to exit with.
func buildFailure(c *cli.Context, r *renderer, t *builder.Target, res *builder.BuildResult, err error) error {
	w := c.App.ErrWriter
	var se *builder.StepError
	var cm *kernel.ConfigMismatchError
	var pe *builder.PushError
	var me *builder.MissingError
	switch {
	case errors.As(err, &me):
		fmt.Fprintf(w, "on a host with network, put it into a cache and bring that cache here:\n  %s\n", fetchHint(c, t))
	case errors.As(err, &cm):
		fmt.Fprintln(w, cm.Diff)
	case errors.As(err, &se):
		for _, h := range se.Rejected {
			fmt.Fprintf(w, "rejected hunk of %s:\n%s\n", se.Patch, h)
		}
		if len(se.Tail) > 0 {
			fmt.Fprintf(w, "last %d lines of the log:\n", len(se.Tail))
			for _, l := range se.Tail {
				fmt.Fprintln(w, "  "+l)
			}
		}
		if se.Log != "" {
			fmt.Fprintln(w, "full log:", se.Log)
		}
	case errors.As(err, &pe):
		args := []string{"lkbuild"}
		if c.IsSet("cache-dir") {
			args = append(args, "--cache-dir", c.String("cache-dir"))
		}
		args = append(append(args, "push"), t.Request.Args()...)
		args = append(args, "--output", pe.Layout)
		if c.Bool("insecure-registry") {
			args = append(args, "--insecure-registry")
		}
		fmt.Fprintf(w, "the image is built and kept in %s; to retry the push:\n  %s\n", pe.Layout, strings.Join(args, " "))
	}
	if res != nil && res.Log != "" && se == nil {
		fmt.Fprintln(w, "full log:", res.Log)
	}
	if r.json {
		// The details above are for people; the event is for programs.
		r.emit(map[string]any{"kind": "error", "error": err.Error()})
		fmt.Fprintln(w, "lkbuild:", err)
		return cli.Exit("", 1)
	}
	return err
}

func pushCommand() *cli.Command {
	return &cli.Command{
		Name:  "push",
		Usage: "push a kernel image built earlier to the registry, with all its tags",
		Description: `Pushes the image lkbuild build wrote to the OCI layout (--output) under
every tag of the build (see lkbuild tags): the single-arch tags, the
multi-arch indexes merged with the arches the registry already has, and the
builder image under <version>-builder, with the provenance and SBOM the
build attached to the image. Use it to retry a push that failed, or to
push a local build to a registry: an image built with another --org (the
same tag: version, series hash and arch) is found in the layout too.

Example:
   lkbuild push --series 6.6.x --arch x86_64 --org registry.example/linuxkit`,
		Flags: append(append(queryFlags(),
			archFlag("arch of the image"),
			&cli.StringFlag{Name: "output", Usage: "OCI layout the image was written to", Value: defaultOutput(), EnvVars: []string{"LKBUILD_OUTPUT"}},
			linuxKitCacheFlag("read the image from LinuxKit's cache"),
			&cli.StringFlag{Name: "builder-image", Usage: "the builder image pushed to the -builder tag, when the build took it from an OCI layout (oci:DIR:NAME); default: the image's buildimage label"},
		), registryFlags()...),
		Before: needSeriesOrVersion,
		Action: func(c *cli.Context) error {
			t, err := builder.Resolve(c.Context, buildRequest(c))
			if err != nil {
				return err
			}
			output, err := outputDir(c)
			if err != nil {
				return err
			}
			out, err := oci.OpenStore(output)
			if err != nil {
				return err
			}
			img, desc, err := builder.BuiltImage(out, t)
			if err != nil {
				return fmt.Errorf("%w (build it first: lkbuild build)", err)
			}
			atts, err := builder.LayoutAttachments(out, desc.Digest)
			if err != nil {
				return err
			}
			cfg, err := img.ConfigFile()
			if err != nil {
				return err
			}
			reg, err := newRegistry(c)
			if err != nil {
				return err
			}
			// The builder for the -builder tag: an oci: layout given again,
			// else the registry reference the image records.
			builderRef := cfg.Config.Labels[builder.LabelBuildImage]
			if b := c.String("builder-image"); b != "" {
				builderRef = b
			}
			pushed, err := builder.Push(c.Context, builder.PushOptions{
				Registry: reg, Image: img, Platform: toolchain.Platform(t.Arch), Tags: t.Tags,
				BuilderImage: builderRef, Attachments: atts,
				Notify: func(s string) { fmt.Fprintln(c.App.ErrWriter, s) },
			})
			for _, p := range pushed {
				fmt.Fprintln(c.App.Writer, p)
			}
			return err
		},
	}
}

// jsonLine writes v as one line of JSON.
func jsonLine(w io.Writer, v any) {
	b, err := json.Marshal(v)
	if err == nil {
		w.Write(append(b, '\n'))
	}
}
