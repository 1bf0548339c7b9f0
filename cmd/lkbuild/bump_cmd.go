package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/lkbuild/lkbuild/builder"
	"github.com/lkbuild/lkbuild/internal/cachedir"
	"github.com/lkbuild/lkbuild/internal/kernelgit"
	"github.com/lkbuild/lkbuild/kernel"
	"github.com/lkbuild/lkbuild/toolchain"
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

// patchKernel is one kernel whose patches are tried.
type patchKernel struct {
	// name is the series or variant folder; q names the kernel.
	name string
	q    kernel.Query
	// bump is set when q.Version is not yet the series' KERNEL_VERSION.
	bump bool
}

// bumpSeries is the series a bump changes, and its kernels whose patches
// are tried at v: the series and each variant that is built and takes its
// version from it.
func bumpSeries(co *kernel.Checkout, series string, v kernel.Version) (*kernel.Series, []patchKernel, error) {
	if series == "" {
		series = v.Series()
	}
	s, err := co.Dir.Lookup(series)
	if err != nil {
		return nil, nil, err
	}
	if s.Extra != "" {
		return nil, nil, fmt.Errorf("%s is a variant: name its series, %s (its variants follow)", s.Name, s.Base)
	}
	if v.Series() != s.Base {
		return nil, nil, fmt.Errorf("version %s is not in series %s", v, s.Name)
	}
	ks := []patchKernel{{name: s.Name, q: kernel.Query{Series: s.Name, Version: v.String()}, bump: true}}
	for _, o := range co.Dir.Series {
		if o.BaseSeries() == s && o.BuildArgs == nil && !o.Deprecated {
			ks = append(ks, patchKernel{name: o.Name, q: kernel.Query{Series: s.Name, Version: v.String(), Extra: o.Extra}, bump: true})
		}
	}
	return s, ks, nil
}

// patchArch is the arch whose builder applies the patches: this host's
// when the series has a config for it (no emulation), else its first.
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

// toolsRequest is the Request of a bump or patches check target.
func toolsRequest(c *cli.Context, k patchKernel, arch kernel.Arch) builder.Request {
	return builder.Request{
		KernelDir: c.String("kernel-dir"), HashCommit: c.String("hash-commit"),
		Query: k.q, Arch: arch.Uname, BuilderImage: c.String("builder-image"),
		KeysFile: c.String("keys"), NoUcode: true, Bump: k.bump,
	}
}

// tryPatches tries each kernel's patches and prints the report on w,
// progress on ew. It returns the number of patch files that do not apply
// to some kernel (a base patch a variant applies too counts once).
func tryPatches(c *cli.Context, co *kernel.Checkout, cache cachedir.Dir, ks []patchKernel) (int, error) {
	w, ew := c.App.Writer, c.App.ErrWriter
	failedFiles := map[string]bool{}
	for _, k := range ks {
		s, _, err := co.Resolve(kernel.Query{Series: k.name})
		if err != nil {
			return len(failedFiles), err
		}
		arch, err := patchArch(s)
		if err != nil {
			return len(failedFiles), err
		}
		env, err := kconfigEnv(c, cache, arch)
		if err != nil {
			return len(failedFiles), fmt.Errorf("%s's patches are tried in its %s builder: %w", k.name, arch, err)
		}
		t, err := builder.Resolve(c.Context, toolsRequest(c, k, arch))
		if err != nil {
			return len(failedFiles), err
		}
		what := fmt.Sprintf("patches %s", t.Plan.Version.String()+t.Plan.Extra)
		rep, err := builder.CheckPatches(c.Context, t, env, kconfigEvents(ew, what))
		if err != nil {
			return len(failedFiles), kconfigFailure(ew, err)
		}
		for _, p := range rep.Failed() {
			failedFiles[p.File] = true
		}
		printPatchReport(w, k.name, rep)
	}
	return len(failedFiles), nil
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
	var ks []patchKernel
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
		s, bks, err := bumpSeries(co, series, v)
		if err != nil {
			return err
		}
		ks = bks
		if s.Version == v {
			for i := range ks {
				ks[i].bump = false
			}
		}
	case len(names) > 0:
		for _, n := range names {
			if _, err := co.Dir.Lookup(n); err != nil {
				return err
			}
			ks = append(ks, patchKernel{name: n, q: kernel.Query{Series: n}})
		}
	default:
		for _, s := range co.Dir.Series {
			if !s.Deprecated && !s.Version.IsZero() {
				ks = append(ks, patchKernel{name: s.Name, q: kernel.Query{Series: s.Name}})
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
	failed, err := tryPatches(c, co, cache, ks)
	if err != nil {
		return err
	}
	if failed > 0 {
		return cli.Exit(fmt.Sprintf("patches check: %d patch(es) do not apply", failed), 1)
	}
	return nil
}

// bumpChange is one file bump writes.
type bumpChange struct {
	// file is the file as the user knows it; path on this host.
	file, path string
	old, new   []byte
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
	co, err := kernelgit.Open(openOptions(c))
	if err != nil {
		return err
	}
	s, ks, err := bumpSeries(co, c.String("series"), v)
	if err != nil {
		return err
	}
	if s.Deprecated {
		return fmt.Errorf("bump: series %s is deprecated", s.Name)
	}
	if s.BuildArgs == nil {
		return fmt.Errorf("bump: series %s has no build-args to write", s.Name)
	}
	old := s.Version
	switch cmp := v.Compare(old); {
	case cmp == 0:
		return fmt.Errorf("bump: %s is already at %s", s.Name, v)
	case cmp < 0 && !c.Bool("force"):
		return fmt.Errorf("bump: %s is older than %s's %s (--force to go back)", v, s.Name, old)
	}
	arches, err := bumpArches(c, s)
	if err != nil {
		return err
	}
	cache, err := cacheDir(c)
	if err != nil {
		return err
	}
	// Every arch needs its emulator: find out before any work.
	envs := map[string]builder.Environment{}
	for _, a := range arches {
		if envs[a.Uname], err = kconfigEnv(c, cache, a); err != nil {
			return fmt.Errorf("bump: %w", err)
		}
	}
	w, ew := c.App.Writer, c.App.ErrWriter
	fmt.Fprintf(ew, "lkbuild: bump %s: %s -> %s\n", s.Name, old, v)
	failed, err := tryPatches(c, co, cache, ks)
	if err != nil {
		return err
	}
	if failed > 0 && !c.Bool("force") {
		return cli.Exit(fmt.Sprintf("bump: %d patch(es) do not apply to %s: nothing written (fix them and bump again, or --force to write build-args alone)", failed, v), 1)
	}
	var changes []bumpChange
	if failed == 0 {
		for _, a := range arches {
			t, err := builder.Resolve(c.Context, toolsRequest(c, ks[0], a))
			if err != nil {
				return err
			}
			res, err := builder.RefreshConfig(c.Context, t, envs[a.Uname], builder.RefreshOptions{
				Events: kconfigEvents(ew, fmt.Sprintf("kconfig %s %s", v, a.Uname)),
			})
			if err != nil {
				return kconfigFailure(ew, err)
			}
			if !bytes.Equal(res.Stored, res.Final) {
				changes = append(changes, bumpChange{file: res.File, path: res.Path, old: res.Stored, new: res.Final})
				fmt.Fprint(w, configDiff(res.File, res.Stored, res.Final))
			} else {
				fmt.Fprintf(ew, "lkbuild: %s needs no change for %s\n", res.File, v)
			}
		}
	} else {
		fmt.Fprintf(ew, "lkbuild: --force: the configs are not refreshed (the patches do not apply); once they do: lkbuild kconfig --refresh --series %s\n", s.Name)
	}
	for _, a := range s.Arches() {
		if !slices.ContainsFunc(arches, func(b kernel.Arch) bool { return b.Uname == a.Uname }) {
			fmt.Fprintf(ew, "lkbuild: config-%s not refreshed (--arch): lkbuild kconfig --refresh --series %s --arch %s\n", a.Uname, s.Name, a.Uname)
		}
	}
	args, err := buildArgsChange(kernelgit.KernelDir(openOptions(c)), s, v)
	if err != nil {
		return err
	}
	changes = append(changes, args)
	fmt.Fprint(w, configDiff(args.file, args.old, args.new))
	if c.Bool("dry-run") {
		fmt.Fprintf(ew, "lkbuild: --dry-run: %d file(s) would change, none written\n", len(changes))
		return nil
	}
	// build-args last: a bump cut short leaves the series at its old
	// version, which a second bump takes up again.
	for _, ch := range changes {
		if err := builder.ReplaceFile(ch.path, ch.new); err != nil {
			return fmt.Errorf("bump: %w", err)
		}
	}
	var names []string
	for _, ch := range changes {
		names = append(names, ch.file)
	}
	fmt.Fprintf(ew, "lkbuild: %s is now %s: wrote %s\n", s.Name, v, strings.Join(names, ", "))
	fmt.Fprintf(ew, "lkbuild: next: lkbuild build --series %s, then commit\n", s.Name)
	return nil
}

// bumpArches are the arches whose configs bump refreshes.
func bumpArches(c *cli.Context, s *kernel.Series) ([]kernel.Arch, error) {
	all := s.Arches()
	name := c.String("arch")
	if name == "" {
		return all, nil
	}
	a, err := kernel.ParseArch(name)
	if err != nil {
		return nil, err
	}
	if !slices.ContainsFunc(all, func(b kernel.Arch) bool { return b.Uname == a.Uname }) {
		return nil, fmt.Errorf("bump: series %s has no config-%s", s.Name, a.Uname)
	}
	return []kernel.Arch{a}, nil
}

// buildArgsChange is s's build-args, in the kernel directory kdir, with
// KERNEL_VERSION set to v.
func buildArgsChange(kdir string, s *kernel.Series, v kernel.Version) (bumpChange, error) {
	path := filepath.Join(kdir, s.Name, "build-args")
	old, err := os.ReadFile(path)
	if err != nil {
		return bumpChange{}, fmt.Errorf("bump: %w", err)
	}
	data, err := kernel.ReplaceBuildArg(old, kernel.KeyKernelVersion, v.String())
	if err != nil {
		return bumpChange{}, fmt.Errorf("bump: %s: %w", s.BuildArgs.File, err)
	}
	return bumpChange{file: s.BuildArgs.File, path: path, old: old, new: data}, nil
}
