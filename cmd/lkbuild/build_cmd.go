package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/lkbuild/lkbuild/builder"
	"github.com/lkbuild/lkbuild/internal/kernelgit"
	"github.com/lkbuild/lkbuild/kernel"
	"github.com/lkbuild/lkbuild/oci"
	"github.com/lkbuild/lkbuild/toolchain"
)

const buildDescription = `Builds the kernel of one series for one arch the way LinuxKit's
kernel/Makefile and Dockerfile do, without Docker: the source is fetched
and verified (sha256sums.asc and the .tar.sign, against common/keys.asc),
the builder image is pulled and unpacked, and every step (patches, config,
make, modules_install, headers_install) runs in a rootless sandbox with no
network. The result is the image LinuxKit expects (kernel, System.map,
kernel.tar, kernel-headers.tar, kernel-dev.tar, src/linux.tar.xz, ...),
bit for bit reproducible, written to an OCI layout (--output) and, with
--push, pushed under every tag (lkbuild tags lists them).

The build is skipped when <version>-<hash>-<arch> already exists (in the
layout, or with --push in the registry); --force rebuilds.

The builder image must already hold the toolchain (gcc, make, bc, bison,
flex, perl, patch, xz, libelf and libssl headers, kmod, cpio, and for
x86_64 iucode_tool): the sandbox has no network, so nothing is installed
during the build. lkbuild builder-image makes one. It may be a registry
reference or an image in an OCI layout, oci:DIR:NAME.

The full log of the build's commands goes to a file under the cache
directory; a failure prints its last lines and its path.

Examples:
   lkbuild --series 6.6.x --arch x86_64 --builder-image registry.example/kbuilder:1
   lkbuild build --series 6.6.x --arch arm64 --push --org registry.example/linuxkit
   lkbuild build --series 6.6.x --debug --source-mirror /srv/kernel.org --no-ucode
   lkbuild build --series 6.6.x --json > events.jsonl`

// buildFlags are the flags of lkbuild build, also taken by lkbuild itself.
func buildFlags() []cli.Flag {
	return append(append(queryFlags(),
		archFlag("arch to build"),
		&cli.StringFlag{Name: "builder-image", Usage: "image the build runs in (registry reference or oci:DIR:NAME); default: the series' BUILD_IMAGE"},
		&cli.StringFlag{Name: "source-mirror", Usage: "kernel.org-style mirror of the sources: URL or local directory", Value: kernel.DefaultSourceMirror, EnvVars: []string{"LKBUILD_SOURCE_MIRROR"}},
		&cli.StringFlag{Name: "keys", Usage: "PGP keys that sign the sources (default: <kernel-dir>/common/keys.asc)"},
		&cli.StringFlag{Name: "ucode-repo", Usage: "git URL or local mirror of the Intel microcode (x86_64)", Value: kernel.UcodeRepo, EnvVars: []string{"LKBUILD_UCODE_REPO"}},
		&cli.BoolFlag{Name: "no-ucode", Usage: "leave the Intel microcode out of an x86_64 image"},
		&cli.StringFlag{Name: "output", Usage: "OCI layout the image is written to", Value: defaultOutput(), EnvVars: []string{"LKBUILD_OUTPUT"}},
		&cli.BoolFlag{Name: "push", Usage: "push every tag to the registry (auth from the docker config) and merge the multi-arch indexes"},
		&cli.BoolFlag{Name: "force", Usage: "build even when the image already exists"},
		&cli.IntFlag{Name: "jobs", Usage: "make -j (default: the CPUs this process may use)"},
		&cli.Int64Flag{Name: "epoch", Usage: "build date in Unix seconds (default: SOURCE_DATE_EPOCH, else the kernel dir's HEAD commit time)", Value: -1},
		&cli.IntFlag{Name: "xz-level", Usage: "xz preset of src/linux.tar.xz (upstream: 6)", Value: builder.DefaultXZLevel},
		&cli.BoolFlag{Name: "json", Usage: "print events as JSON lines on stdout instead of text"},
		qemuImageFlag(),
	), registryFlags()...)
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
		Before:      needSeriesOrVersion,
		Action:      buildAction,
	}
}

// buildTarget is what both build and push work out from the flags.
type buildTarget struct {
	checkout  *kernel.Checkout
	kernelDir string
	repo      *kernelgit.Repo
	query     kernel.Query
	arch      kernel.Arch
	// platform is arch's toolchain form (OCI platform, emulation).
	platform toolchain.Arch
	hash     string
	tags     []kernel.Tag
}

func resolveTarget(c *cli.Context) (*buildTarget, error) {
	a, err := kernel.ParseArch(c.String("arch"))
	if err != nil {
		return nil, err
	}
	opts := openOptions(c)
	co, err := kernelgit.Open(opts)
	if err != nil {
		return nil, err
	}
	t := &buildTarget{checkout: co, kernelDir: kernelgit.KernelDir(opts), query: queryOptions(c), arch: a}
	if t.platform, err = toolchain.ParseArch(a.Uname); err != nil {
		return nil, err
	}
	if t.kernelDir, err = filepath.Abs(t.kernelDir); err != nil {
		return nil, err
	}
	t.repo, _ = co.Rev.(*kernelgit.Repo)
	if t.repo == nil {
		return nil, fmt.Errorf("kernel dir %s is not in a git work tree: the image's tags need the series hash", t.kernelDir)
	}
	s, _, err := co.Resolve(t.query)
	if err != nil {
		return nil, err
	}
	if t.hash, err = co.Hash(s); err != nil {
		return nil, err
	}
	if t.tags, err = co.Tags(t.query, a); err != nil {
		return nil, err
	}
	return t, nil
}

func buildAction(c *cli.Context) error {
	if c.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q (see lkbuild --help)", c.Args().First())
	}
	t, err := resolveTarget(c)
	if err != nil {
		return err
	}
	epoch, err := buildEpoch(c, t.repo)
	if err != nil {
		return err
	}
	jobs := c.Int("jobs")
	if jobs <= 0 {
		jobs = toolchain.UsableCPUs().Jobs()
	}
	plan, err := kernel.NewPlan(t.checkout.Dir, t.query, t.arch, kernel.PlanOptions{
		Jobs: jobs, Epoch: epoch, BuilderImage: c.String("builder-image"), NoUcode: c.Bool("no-ucode"),
	})
	if err != nil {
		return err
	}
	keys, err := readKeys(c, t.kernelDir)
	if err != nil {
		return err
	}
	cacheDir := c.String("cache-dir")
	cache, err := oci.OpenStore(filepath.Join(cacheDir, "blobs"))
	if err != nil {
		return err
	}
	out, err := oci.OpenStore(c.String("output"))
	if err != nil {
		return err
	}
	reg, err := newRegistry(c)
	if err != nil {
		return err
	}
	emu, err := emulationFor(c, t.platform)
	if err != nil {
		return err
	}
	rev, _, err := t.repo.Commit()
	if err != nil {
		return err
	}
	r := newRenderer(c)
	defer r.close()
	opts := builder.BuildOptions{
		Plan: plan, KernelDir: t.kernelDir, Hash: t.hash, Tags: t.tags,
		Revision: rev, SourceRepo: t.repo.RemoteURL(), Version: c.App.Version,
		Registry: reg, Cache: cache, CacheDir: cacheDir, Output: out,
		SourceMirror: c.String("source-mirror"), Keyring: keys, UcodeRepo: c.String("ucode-repo"),
		Emulation: emu, XZLevel: c.Int("xz-level"),
		Push: c.Bool("push"), Force: c.Bool("force"),
		Events: r.event,
	}
	if !c.Bool("json") {
		r.printf("building %s for %s in %s (make -j%d)\n", t.tags[0], t.arch, plan.BuilderImage, plan.Jobs)
	}
	res, err := builder.Build(c.Context, opts)
	r.close()
	if err != nil {
		return buildFailure(c, r, res, err)
	}
	return r.result(res)
}

// buildEpoch is --epoch, else SOURCE_DATE_EPOCH, else HEAD's commit time.
func buildEpoch(c *cli.Context, repo *kernelgit.Repo) (time.Time, error) {
	if e := c.Int64("epoch"); e >= 0 {
		return time.Unix(e, 0).UTC(), nil
	}
	if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
		e, err := strconv.ParseInt(s, 10, 64)
		if err != nil || e < 0 {
			return time.Time{}, fmt.Errorf("SOURCE_DATE_EPOCH=%q is not a count of seconds", s)
		}
		return time.Unix(e, 0).UTC(), nil
	}
	_, when, err := repo.Commit()
	return when, err
}

// readKeys reads --keys, else the kernel dir's common/keys.asc (or, in the
// flat layout, keys.asc).
func readKeys(c *cli.Context, kernelDir string) (*kernel.Keyring, error) {
	file := c.String("keys")
	if file == "" {
		file = filepath.Join(kernelDir, "common", "keys.asc")
		if _, err := os.Stat(file); err != nil {
			if _, err2 := os.Stat(filepath.Join(kernelDir, "keys.asc")); err2 == nil {
				file = filepath.Join(kernelDir, "keys.asc")
			}
		}
	}
	f, err := os.Open(file)
	if err != nil {
		return nil, fmt.Errorf("source signing keys (--keys): %w", err)
	}
	defer f.Close()
	return kernel.ReadKeyring(file, f)
}

// buildFailure prints what a user needs to fix a failed build and returns
// the error to exit with.
func buildFailure(c *cli.Context, r *renderer, res *builder.BuildResult, err error) error {
	w := c.App.ErrWriter
	var se *builder.StepError
	var cm *kernel.ConfigMismatchError
	var pe *builder.PushError
	switch {
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
		args := []string{"lkbuild", "push"}
		for _, f := range []string{"kernel-dir", "series", "version", "extra", "org", "image", "arch", "output"} {
			if c.IsSet(f) {
				args = append(args, "--"+f, c.String(f))
			}
		}
		for _, f := range []string{"debug", "insecure-registry"} {
			if c.Bool(f) {
				args = append(args, "--"+f)
			}
		}
		if c.IsSet("cache-dir") {
			args = append([]string{args[0], "--cache-dir", c.String("cache-dir")}, args[1:]...)
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
builder image under <version>-builder. Use it to retry a push that failed.

Example:
   lkbuild push --series 6.6.x --arch x86_64 --org registry.example/linuxkit`,
		Flags: append(append(queryFlags(),
			archFlag("arch of the image"),
			&cli.StringFlag{Name: "output", Usage: "OCI layout the image was written to", Value: defaultOutput(), EnvVars: []string{"LKBUILD_OUTPUT"}},
		), registryFlags()...),
		Before: needSeriesOrVersion,
		Action: func(c *cli.Context) error {
			t, err := resolveTarget(c)
			if err != nil {
				return err
			}
			out, err := oci.OpenStore(c.String("output"))
			if err != nil {
				return err
			}
			var ref string
			for _, tag := range t.tags {
				if tag.Kind == kernel.TagArchImage {
					ref = tag.String()
				}
			}
			img, _, err := out.ImageByName(ref)
			if err != nil {
				return fmt.Errorf("%w (build it first: lkbuild build)", err)
			}
			cfg, err := img.ConfigFile()
			if err != nil {
				return err
			}
			reg, err := newRegistry(c)
			if err != nil {
				return err
			}
			pushed, err := builder.Push(c.Context, builder.PushOptions{
				Registry: reg, Image: img, Platform: t.platform.Platform(), Tags: t.tags,
				BuilderImage: cfg.Config.Labels[builder.LabelBuildImage],
				Notify:       func(s string) { fmt.Fprintln(c.App.ErrWriter, s) },
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
