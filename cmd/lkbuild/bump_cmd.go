package main

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/lkbuild/lkbuild/builder"
	"github.com/lkbuild/lkbuild/internal/cachedir"
	"github.com/lkbuild/lkbuild/internal/kernelgit"
	"github.com/lkbuild/lkbuild/kernel"
)

const bumpDescription = `The documented "adding a new kernel version" in one command: for the
series of --version (or --series),

  1. fetch and verify the new release's source (signed sha256sums and
     signature, as a build does; from the cache or --source-mirror);
  2. try the series' patches on it, and those of every variant that takes
     its version from the series, each applied as the build applies it
     (patch -p1 -F0: offsets, no fuzz); each patch that does not apply is
     printed with its rejected hunks, and one that the new release already
     has (patch finds it applied) is named so it can go;
  3. refresh the config of every arch the series has (or --arch), with the
     build's own config steps and make olddefconfig in that arch's builder
     (a foreign arch under QEMU, as its build), as 'lkbuild kconfig
     --refresh' does;
  4. write the configs and KERNEL_VERSION in the series' build-args, and
     print every change (unified diffs of the configs).

When a patch does not apply, nothing is written and lkbuild exits 1: fix
the patches (lkbuild patches check --version V tries them again), then
bump. --force writes build-args anyway and leaves the configs as they are
(they need the patched tree; run 'lkbuild kconfig --refresh' once the
patches apply). --dry-run does all of it and writes nothing. Variants'
configs and the debug fragment are fragments: they are not refreshed.

Examples:
   lkbuild bump --version 6.6.72
   lkbuild bump --series 6.6.x --version 6.6.72 --arch x86_64 --dry-run
   lkbuild patches check --version 6.6.72    # only the patches`

func bumpCommand() *cli.Command {
	return &cli.Command{
		Name:        "bump",
		Usage:       "move a series to a new kernel release: verify the source, try the patches, refresh the configs, write build-args",
		Description: bumpDescription,
		Flags: append([]cli.Flag{
			kernelDirFlag(),
			&cli.StringFlag{Name: "series", Usage: "series folder, e.g. 6.6.x (default: the series of --version)"},
			&cli.StringFlag{Name: "version", Usage: "the new release, e.g. 6.6.72 (required)"},
			&cli.StringFlag{Name: "arch", Usage: "refresh only this arch's config (x86_64 or amd64, aarch64 or arm64, riscv64); default: every arch the series has a config for"},
			&cli.BoolFlag{Name: "force", Usage: "write build-args even when a patch does not apply (the configs are then left as they are), or when the release is older than the series'"},
			&cli.BoolFlag{Name: "dry-run", Usage: "do everything but write: print what would change"},
		}, sourceFlags()...),
		Action: bumpAction,
	}
}

func patchesCommand() *cli.Command {
	return &cli.Command{
		Name:  "patches",
		Usage: "work on the series' patches (lkbuild patches check)",
		Subcommands: []*cli.Command{{
			Name:  "check",
			Usage: "try every series' patches on its source, as a build applies them, and print each that does not apply",
			Description: `Fetches and verifies each kernel's source and applies its patches in its
builder, as a build does (patch -p1 -F0), but goes on past a patch that
does not apply: each is printed with its rejected hunks, and a patch the
release already has (patch finds it applied) is named so it can go. The
kernels: every series that is not deprecated and its variants, at the
version build-args give; --series (repeatable) to pick; --version V tries
the patches of V's series (and its variants) on release V instead, before
build-args name it (what 'lkbuild bump' does first). Exits 1 when a patch
does not apply. Writes nothing.

Examples:
   lkbuild patches check
   lkbuild patches check --version 6.6.72`,
			Flags: append([]cli.Flag{
				kernelDirFlag(),
				&cli.StringSliceFlag{Name: "series", Usage: "series or variant folder, e.g. 6.6.x (repeatable); default: every one that is not deprecated"},
				&cli.StringFlag{Name: "version", Usage: "try the patches of this release's series on this release, e.g. 6.6.72"},
			}, sourceFlags()...),
			Action: patchesCheckAction,
		}},
	}
}

// sourceFlags are the flags of the commands that fetch a kernel's source
// and run its builder: bump and patches check.
func sourceFlags() []cli.Flag {
	return append([]cli.Flag{
		&cli.StringFlag{Name: "builder-image", Usage: "image to run in (registry reference or oci:DIR:NAME); default: the series' BUILD_IMAGE"},
		&cli.StringFlag{Name: "source-mirror", Usage: "kernel.org-style mirror of the sources: URL or local directory", Value: kernel.DefaultSourceMirror, EnvVars: []string{"LKBUILD_SOURCE_MIRROR"}},
		&cli.StringFlag{Name: "keys", Usage: "PGP keys that sign the sources (default: <kernel-dir>/common/keys.asc)"},
		hashCommitFlag(),
		qemuImageFlag(),
	}, registryFlags()...)
}

// patchTrial is how bump and patches check reach the builders: the
// flags' request, each arch's environment, progress on stderr.
func patchTrial(c *cli.Context, cache cachedir.Dir) builder.PatchTrial {
	return builder.PatchTrial{
		Base: builder.Request{
			KernelDir: c.String("kernel-dir"), HashCommit: c.String("hash-commit"),
			BuilderImage: c.String("builder-image"), KeysFile: c.String("keys"),
		},
		Env: func(a kernel.Arch) (builder.Environment, error) { return kconfigEnv(c, cache, a) },
		Events: func(what string, e builder.Event) {
			kconfigEvents(c.App.ErrWriter, what)(e)
		},
	}
}

// printPatches prints each kernel's report.
func printPatches(w io.Writer, kps []builder.KernelPatches) {
	for _, kp := range kps {
		printPatchReport(w, kp.Name, kp.Report)
	}
}

// printPatchReport prints what each patch did to one kernel.
func printPatchReport(w io.Writer, name string, rep *builder.PatchReport) {
	failed := len(rep.Failed())
	switch {
	case len(rep.Patches) == 0:
		fmt.Fprintf(w, "%s on %s: no patches\n", name, rep.Version)
		return
	case failed == 0:
		fmt.Fprintf(w, "%s on %s: all %d patch(es) apply\n", name, rep.Version, len(rep.Patches))
	default:
		fmt.Fprintf(w, "%s on %s: %d of %d patch(es) do not apply (log: %s)\n", name, rep.Version, failed, len(rep.Patches), rep.Log)
	}
	for _, p := range rep.Patches {
		switch {
		case p.Applied:
			fmt.Fprintf(w, "  ok      %s%s\n", p.File, offsets(p.Output))
		case p.Reversed:
			fmt.Fprintf(w, "  MERGED  %s: %s already has this change (patch found it applied, no hunk rejected): remove the patch\n", p.File, rep.Version)
		default:
			fmt.Fprintf(w, "  FAILED  %s: %d hunk(s) rejected\n", p.File, len(p.Rejected))
			for _, h := range p.Rejected {
				fmt.Fprintln(w, indent(h, "    "))
			}
			if len(p.Rejected) == 0 {
				fmt.Fprintln(w, indent(strings.TrimRight(p.Output, "\n"), "    "))
			}
		}
	}
}

// offsets notes the hunks patch applied at an offset: they apply, but
// the file moved under them.
func offsets(out string) string {
	n := 0
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, " succeeded at ") && strings.Contains(l, "(offset ") {
			n++
		}
	}
	if n == 0 {
		return ""
	}
	return fmt.Sprintf(" (%d hunk(s) at an offset)", n)
}

func indent(s, prefix string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i, l := range lines {
		lines[i] = prefix + l
	}
	return strings.Join(lines, "\n")
}

func patchesCheckAction(c *cli.Context) error {
	if c.NArg() > 0 {
		return fmt.Errorf("patches check: unexpected argument %q", c.Args().First())
	}
	co, err := kernelgit.Open(openOptions(c))
	if err != nil {
		return err
	}
	var ks []builder.PatchKernel
	switch names := c.StringSlice("series"); {
	case c.String("version") != "":
		if len(names) > 1 {
			return errors.New("patches check: --version goes with one --series at most")
		}
		v, err := kernel.ParseVersion(c.String("version"))
		if err != nil {
			return err
		}
		series := ""
		if len(names) == 1 {
			series = names[0]
		}
		s, bks, err := builder.BumpKernels(co.Dir, series, v)
		if err != nil {
			return err
		}
		ks = bks
		if s.Version == v {
			for i := range ks {
				ks[i].Bump = false
			}
		}
	case len(names) > 0:
		for _, n := range names {
			if _, err := co.Dir.Lookup(n); err != nil {
				return err
			}
			ks = append(ks, builder.PatchKernel{Name: n, Query: kernel.Query{Series: n}})
		}
	default:
		for _, s := range co.Dir.Series {
			if !s.Deprecated && !s.Version.IsZero() {
				ks = append(ks, builder.PatchKernel{Name: s.Name, Query: kernel.Query{Series: s.Name}})
			}
		}
		if len(ks) == 0 {
			return fmt.Errorf("%s has no series that is not deprecated: name one with --series", co.Dir.Path)
		}
	}
	cache, err := cacheDir(c)
	if err != nil {
		return err
	}
	kps, failed, err := builder.TryPatches(c.Context, patchTrial(c, cache), ks)
	printPatches(c.App.Writer, kps)
	if err != nil {
		return kconfigFailure(c.App.ErrWriter, err)
	}
	if failed > 0 {
		return cli.Exit(fmt.Sprintf("patches check: %d patch(es) do not apply", failed), 1)
	}
	return nil
}

func bumpAction(c *cli.Context) error {
	if c.NArg() > 0 {
		return fmt.Errorf("bump: unexpected argument %q", c.Args().First())
	}
	if c.String("version") == "" {
		return errors.New("bump needs --version, the new release (e.g. 6.6.72)")
	}
	v, err := kernel.ParseVersion(c.String("version"))
	if err != nil {
		return err
	}
	var arches []kernel.Arch
	if name := c.String("arch"); name != "" {
		a, err := kernel.ParseArch(name)
		if err != nil {
			return err
		}
		arches = []kernel.Arch{a}
	}
	cache, err := cacheDir(c)
	if err != nil {
		return err
	}
	w, ew := c.App.Writer, c.App.ErrWriter
	res, err := builder.Bump(c.Context, builder.BumpRequest{
		PatchTrial: patchTrial(c, cache), Series: c.String("series"), Version: v,
		Arches: arches, Force: c.Bool("force"),
	})
	if res != nil {
		printPatches(w, res.Patches)
	}
	if err != nil {
		return kconfigFailure(ew, err)
	}
	s := res.Series
	if res.Failed > 0 && !c.Bool("force") {
		return cli.Exit(fmt.Sprintf("bump: %d patch(es) do not apply to %s: nothing written (fix them and bump again, or --force to write build-args alone)", res.Failed, v), 1)
	}
	if res.ConfigsSkipped {
		fmt.Fprintf(ew, "lkbuild: --force: the configs are not refreshed (the patches do not apply); once they do: lkbuild kconfig --refresh --series %s\n", s.Name)
	}
	for _, f := range res.Final {
		fmt.Fprintf(ew, "lkbuild: %s needs no change for %s\n", f, v)
	}
	for _, a := range res.Left {
		fmt.Fprintf(ew, "lkbuild: config-%s not refreshed (--arch): lkbuild kconfig --refresh --series %s --arch %s\n", a.Uname, s.Name, a.Uname)
	}
	var names []string
	for _, ch := range res.Changes {
		fmt.Fprint(w, configDiff(ch.File, ch.Old, ch.New))
		names = append(names, ch.File)
	}
	if c.Bool("dry-run") {
		fmt.Fprintf(ew, "lkbuild: --dry-run: %d file(s) would change, none written\n", len(res.Changes))
		return nil
	}
	if err := res.Write(); err != nil {
		return err
	}
	fmt.Fprintf(ew, "lkbuild: %s is now %s (was %s): wrote %s\n", s.Name, v, res.Old, strings.Join(names, ", "))
	fmt.Fprintf(ew, "lkbuild: next: lkbuild build --series %s, then commit\n", s.Name)
	return nil
}
