package main

import (
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
	"github.com/lkbuild/lkbuild/internal/textdiff"
	"github.com/lkbuild/lkbuild/kernel"
	"github.com/lkbuild/lkbuild/sandbox"
)

const kconfigDescription = `LinuxKit's kconfig workflow ('make kconfig', then
'docker run -ti -v $(pwd):/src linuxkit/kconfig') without Docker: a shell in
the series' builder (BUILD_IMAGE, or --builder-image; provisioned as a build
provisions it) with the patched source of every kernel at /linux-<version>,
the stored config (config-<arch>) copied over the arch's defconfig in each
tree, so that 'make defconfig' and 'make menuconfig' start from it, and the
kernel directory at /src, read-write, so that 'cp .config
/src/<series>/config-<arch>' saves a config. The source trees are overlays
of the cached, verified source and the patches: what changes in them is
thrown away at exit. The sandbox has no network, as a build's. make
menuconfig needs ncurses: lkbuild installs what upstream's kconfig image
adds (ncurses-dev; Debian: libncurses-dev) where the builder's own
repository holds it, and says so where not.

Every series that is not deprecated by default, --series (repeatable) to
pick. --arch picks the arch (default: this host's); a foreign arch runs
under QEMU user-mode, as its build does. With '-- CMD ...' lkbuild runs CMD
instead of a shell, without a terminal, and exits with its status.

--refresh brings the stored configs up to date instead: for each series and
each arch it has a config-<arch> for (or --arch), it runs the build's own
config steps (the stored config as the defconfig, make defconfig, make
oldconfig) on the patched source in the arch's builder, which sets every
symbol the config lacks to its default (make olddefconfig). With --answers
FILE the stored config goes through 'make oldconfig' fed from FILE first, to
answer those questions. The result replaces the stored config, and a
unified diff shows each change. --check writes nothing and exits 1 when a
stored config is not final, printing the diffs: the build's own
final-config check, so a config that passes it passes the build's. A
foreign arch with no QEMU is an error naming the arch (--arch to leave it
out).

Examples:
   # edit a config with menuconfig and save it back
   lkbuild kconfig --series 6.6.x
     cd /linux-6.6.71 && make defconfig && make menuconfig
     cp .config /src/6.6.x/config-x86_64 && exit
   lkbuild build --series 6.6.x          # the build's config check passes

   # the same, without a terminal
   lkbuild kconfig --series 6.6.x -- sh -c 'cd /linux-6.6.71 && make defconfig &&
       ./scripts/config --enable CONFIG_BPF_JIT && make olddefconfig && cp .config /src/6.6.x/config-x86_64'

   # bring every stored config up to date after a new release or patch
   lkbuild kconfig --refresh
   lkbuild kconfig --refresh --series 6.6.x --arch aarch64 --answers answers.txt

   # CI gate: fails, with the diffs, when a stored config is not final
   lkbuild kconfig --refresh --check`

func kconfigCommand() *cli.Command {
	return &cli.Command{
		Name:        "kconfig",
		Usage:       "a shell in the builder with the patched sources and the stored configs, or refresh the stored configs (--refresh)",
		ArgsUsage:   "[-- CMD [ARGS...]]",
		Description: kconfigDescription,
		Flags: append([]cli.Flag{
			kernelDirFlag(),
			&cli.StringSliceFlag{Name: "series", Usage: "series folder, e.g. 6.6.x (repeatable); default: every series that is not deprecated"},
			&cli.StringFlag{Name: "arch", Usage: "arch (x86_64 or amd64, aarch64 or arm64, riscv64); default: this host's, and with --refresh every arch a series has a config for"},
			&cli.BoolFlag{Name: "refresh", Usage: "bring the stored configs up to date (make olddefconfig, or oldconfig with --answers) and print the diffs"},
			&cli.BoolFlag{Name: "check", Usage: "with --refresh: write nothing, exit 1 when a stored config is not final"},
			&cli.StringFlag{Name: "answers", Usage: "with --refresh: feed FILE to make oldconfig, to answer its questions about new symbols"},
			&cli.StringFlag{Name: "builder-image", Usage: "image to run in (registry reference or oci:DIR:NAME); default: the series' BUILD_IMAGE"},
			&cli.StringFlag{Name: "source-mirror", Usage: "kernel.org-style mirror of the sources: URL or local directory", Value: kernel.DefaultSourceMirror, EnvVars: []string{"LKBUILD_SOURCE_MIRROR"}},
			&cli.StringFlag{Name: "keys", Usage: "PGP keys that sign the sources (default: <kernel-dir>/common/keys.asc)"},
			hashCommitFlag(),
			qemuImageFlag(),
		}, registryFlags()...),
		Before: func(c *cli.Context) error {
			switch {
			case c.Bool("check") && !c.Bool("refresh"):
				return errors.New("kconfig: --check goes with --refresh")
			case c.String("answers") != "" && !c.Bool("refresh"):
				return errors.New("kconfig: --answers goes with --refresh")
			case c.Bool("refresh") && c.NArg() > 0:
				return fmt.Errorf("kconfig --refresh runs no command (got %q)", c.Args().First())
			}
			return nil
		},
		Action: func(c *cli.Context) error {
			if c.Bool("refresh") {
				return kconfigRefresh(c)
			}
			return kconfigShell(c)
		},
	}
}

// kconfigQueries are the kernels kconfig works on: each --series, else
// the versions lkbuild list prints, without their variants (upstream's
// KERNEL_VERSIONS).
func kconfigQueries(c *cli.Context, arch kernel.Arch) ([]kernel.Query, error) {
	q := kernel.Query{}
	if s := c.StringSlice("series"); len(s) > 0 {
		var qs []kernel.Query
		for _, name := range s {
			qs = append(qs, kernel.Query{Series: name})
		}
		return qs, nil
	}
	versions, dir, err := listedVersions(c, arch, true)
	if err != nil {
		return nil, err
	}
	var qs []kernel.Query
	for _, v := range versions {
		q.Version = v
		qs = append(qs, q)
	}
	if len(qs) == 0 {
		return nil, fmt.Errorf("%s has no series that is not deprecated: name one with --series", dir)
	}
	return qs, nil
}

// kconfigRequest is the Request of a kconfig target.
func kconfigRequest(c *cli.Context, q kernel.Query, arch kernel.Arch) builder.Request {
	return builder.Request{
		KernelDir: c.String("kernel-dir"), HashCommit: c.String("hash-commit"),
		Query: q, Arch: arch.Uname, BuilderImage: c.String("builder-image"),
		KeysFile: c.String("keys"), NoUcode: true,
	}
}

// kconfigEnv is the environment of kconfig's builds.
func kconfigEnv(c *cli.Context, cache cachedir.Dir, arch kernel.Arch) (builder.Environment, error) {
	reg, err := newRegistry(c)
	if err != nil {
		return builder.Environment{}, err
	}
	emu, err := emulationFor(c, arch)
	if err != nil {
		return builder.Environment{}, fmt.Errorf("%s is not this host's arch and cannot be emulated here (leave it out with --arch): %w", arch, err)
	}
	return builder.Environment{
		Registry: reg, Cache: cache, SourceMirror: c.String("source-mirror"),
		Emulation: emu, Offline: offline(c),
	}, nil
}

// kconfigEvents prints what preparing the trees does, briefly, on w.
func kconfigEvents(w io.Writer, what string) func(builder.Event) {
	return func(e builder.Event) {
		switch e.Kind {
		case builder.EventPhaseStart:
			fmt.Fprintf(w, "lkbuild: %s: %s\n", what, e.Phase)
		case builder.EventNote:
			fmt.Fprintf(w, "lkbuild: %s: %s\n", what, e.Message)
		}
	}
}

func kconfigShell(c *cli.Context) error {
	arch, err := archOrHost(c.String("arch"))
	if err != nil {
		return err
	}
	qs, err := kconfigQueries(c, arch)
	if err != nil {
		return err
	}
	var ts []*builder.Target
	for _, q := range qs {
		t, err := builder.Resolve(c.Context, kconfigRequest(c, q, arch))
		if err != nil {
			return err
		}
		ts = append(ts, t)
	}
	cache, err := cacheDir(c)
	if err != nil {
		return err
	}
	env, err := kconfigEnv(c, cache, arch)
	if err != nil {
		return err
	}
	k, err := builder.PrepareKconfig(c.Context, ts, env, kconfigEvents(c.App.ErrWriter, "kconfig "+arch.Uname))
	if k != nil {
		defer k.Close()
	}
	if err != nil {
		return kconfigFailure(c.App.ErrWriter, err)
	}
	args := c.Args().Slice()
	interactive := len(args) == 0
	spec := k.Spec(args, "TERM="+termName(os.Getenv("TERM")))
	if interactive {
		spec.Args = []string{shellIn(spec.Rootfs)}
		for _, t := range k.Trees() {
			fmt.Fprintf(c.App.ErrWriter, "lkbuild: %s: the patched %s, with %s as %s (make defconfig, make menuconfig; cp .config %s saves it)\n",
				t.Dir, t.Version, t.Config, t.Defconfig, t.Save)
		}
		fmt.Fprintln(c.App.ErrWriter, "lkbuild: the kernel directory is /src, read-write; the trees are thrown away at exit")
	}
	spec.Stdin, spec.Stdout, spec.Stderr = os.Stdin, c.App.Writer, c.App.ErrWriter
	spec.Notify = func(s string) { fmt.Fprintln(c.App.ErrWriter, "lkbuild:", s) }
	if interactive && sandbox.IsTerminal(os.Stdin) {
		return exitStatus(runOnTerminal(c, spec, os.Stdin))
	}
	return exitStatus(sandbox.Run(c.Context, spec))
}

// runOnTerminal runs spec on a pty of its own, with the user's terminal
// tty in raw mode meanwhile and its size passed on.
func runOnTerminal(c *cli.Context, spec sandbox.Spec, tty *os.File) error {
	size, err := sandbox.TerminalSize(tty)
	if err != nil {
		return err
	}
	sizes, stop := sandbox.WatchSize(tty)
	defer stop()
	restore, err := sandbox.MakeRaw(tty)
	if err != nil {
		return err
	}
	defer restore()
	spec.Terminal = &sandbox.Terminal{Size: size, Resize: sizes}
	return sandbox.Run(c.Context, spec)
}

// termName is the TERM of the shell: the user's, else one curses knows.
func termName(term string) string {
	if term == "" {
		return "xterm"
	}
	return term
}

// shellIn is the shell to start in the rootfs at root: bash when it has
// one, else sh (upstream's kconfig image runs /bin/sh).
func shellIn(root string) string {
	if fi, err := os.Stat(filepath.Join(root, "bin", "bash")); err == nil && fi.Mode().IsRegular() {
		return "/bin/bash"
	}
	return "/bin/sh"
}

// kconfigFailure prints the log of a failed preparation and returns err.
func kconfigFailure(w io.Writer, err error) error {
	var se *builder.StepError
	if errors.As(err, &se) {
		for _, h := range se.Rejected {
			fmt.Fprintf(w, "rejected hunk of %s:\n%s\n", se.Patch, h)
		}
		for _, l := range se.Tail {
			fmt.Fprintln(w, "  "+l)
		}
		if se.Log != "" {
			fmt.Fprintln(w, "full log:", se.Log)
		}
	}
	return err
}

// refreshTarget is one stored config to refresh.
type refreshTarget struct {
	q    kernel.Query
	arch kernel.Arch
}

// refreshTargets are the series and arches --refresh works on: --arch, else
// every arch each series has a config for.
func refreshTargets(c *cli.Context) ([]refreshTarget, error) {
	var only *kernel.Arch
	if s := c.String("arch"); s != "" {
		a, err := kernel.ParseArch(s)
		if err != nil {
			return nil, err
		}
		only = &a
	}
	host, err := archOrHost("")
	if err != nil {
		return nil, err
	}
	listArch := host
	if only != nil {
		listArch = *only
	}
	qs, err := kconfigQueries(c, listArch)
	if err != nil {
		return nil, err
	}
	co, err := kernelgit.Open(openOptions(c))
	if err != nil {
		return nil, err
	}
	var out []refreshTarget
	for _, q := range qs {
		s, _, err := co.Resolve(q)
		if err != nil {
			return nil, err
		}
		if s.Extra != "" {
			return nil, fmt.Errorf("kconfig --refresh: %s is a variant, whose config is a fragment: name its series", s.Name)
		}
		for _, a := range s.Arches() {
			if only == nil || only.Uname == a.Uname {
				out = append(out, refreshTarget{q: q, arch: a})
			}
		}
		if only != nil && !slices.ContainsFunc(s.Arches(), func(a kernel.Arch) bool { return a.Uname == only.Uname }) {
			return nil, fmt.Errorf("kconfig --refresh: series %s has no config-%s", s.Name, only.Uname)
		}
	}
	return out, nil
}

func kconfigRefresh(c *cli.Context) error {
	targets, err := refreshTargets(c)
	if err != nil {
		return err
	}
	var answers []byte
	if f := c.String("answers"); f != "" {
		if answers, err = os.ReadFile(f); err != nil {
			return fmt.Errorf("answers: %w", err)
		}
	}
	cache, err := cacheDir(c)
	if err != nil {
		return err
	}
	// Every arch needs its emulator: find out before any work.
	envs := map[string]builder.Environment{}
	for _, rt := range targets {
		if _, ok := envs[rt.arch.Uname]; ok {
			continue
		}
		env, err := kconfigEnv(c, cache, rt.arch)
		if err != nil {
			return fmt.Errorf("kconfig --refresh: %w", err)
		}
		envs[rt.arch.Uname] = env
	}
	w, ew := c.App.Writer, c.App.ErrWriter
	var stale []string
	for _, rt := range targets {
		t, err := builder.Resolve(c.Context, kconfigRequest(c, rt.q, rt.arch))
		if err != nil {
			return err
		}
		res, err := builder.RefreshConfig(c.Context, t, envs[rt.arch.Uname], builder.RefreshOptions{
			Answers: answers, Write: !c.Bool("check"),
			Events: kconfigEvents(ew, fmt.Sprintf("kconfig %s %s", t.Plan.Version, rt.arch.Uname)),
		})
		if err != nil {
			return kconfigFailure(ew, err)
		}
		if res.Mismatch == nil && string(res.Final) == string(res.Stored) {
			fmt.Fprintf(ew, "lkbuild: %s is final\n", res.File)
			continue
		}
		fmt.Fprint(w, configDiff(res.File, res.Stored, res.Final))
		switch {
		case res.Written:
			fmt.Fprintf(ew, "lkbuild: %s refreshed (%s)\n", res.File, changeSummary(res.Mismatch))
		default:
			stale = append(stale, res.File)
			fmt.Fprintf(ew, "lkbuild: %s is not final (%s)\n", res.File, changeSummary(res.Mismatch))
		}
	}
	if len(stale) > 0 {
		return cli.Exit(fmt.Sprintf("kconfig --check: %s not final: lkbuild kconfig --refresh writes the configs a build expects", strings.Join(stale, ", ")), 1)
	}
	return nil
}

// configDiff is the unified diff of a stored config file and its
// refreshed form, headed as git heads it for a relative name.
func configDiff(file string, stored, final []byte) string {
	a, b := file, file
	if !filepath.IsAbs(file) {
		a, b = "a/"+file, "b/"+file
	}
	return textdiff.Unified(a, b, stored, final)
}

// changeSummary names the symbols a refresh changes.
func changeSummary(m *kernel.ConfigMismatchError) string {
	if m == nil || len(m.Symbols) == 0 {
		return "no symbol changes, only comments or order"
	}
	const show = 6
	if len(m.Symbols) > show {
		return fmt.Sprintf("%s and %d more symbols", strings.Join(m.Symbols[:show], ", "), len(m.Symbols)-show)
	}
	return strings.Join(m.Symbols, ", ")
}
