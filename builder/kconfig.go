package builder

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/lkbuild/lkbuild/kernel"
	"github.com/lkbuild/lkbuild/sandbox"
)

// KconfigTree is one kernel's patched source in a Kconfig sandbox.
type KconfigTree struct {
	// Version is the kernel release; Dir its tree in the sandbox,
	// "/linux-6.6.71".
	Version string
	Dir     string
	// Defconfig is where the stored config was copied in the tree
	// ("arch/x86/configs/x86_64_defconfig"), and Config the stored config
	// as the user knows it ("kernel/6.6.x/config-x86_64").
	Defconfig, Config string
	// Save is the stored config's path in the sandbox, in the kernel
	// directory bound read-write: "/src/6.6.x/config-x86_64".
	Save string
}

// Kconfig is LinuxKit's kconfig image made without an image: the builder
// of the targets, provisioned as a build provisions it, with the patched
// source of each target at /linux-<version> (a writable overlay of the
// cached, verified source and the patches, thrown away at Close), the
// stored config copied over the arch's defconfig in each tree, and the
// kernel directory bound read-write at the plan's kernel path (/src), so
// that a config saved there stays. Close removes it.
type Kconfig struct {
	builds []*build
	dirs   []sandboxDirs
	trees  []KconfigTree
	env    Environment
}

// PrepareKconfig fetches, verifies and provisions what the targets need,
// as a build does, and applies each target's patches. The targets must
// be plain kernels (no variant, no debug) of one arch, with one builder,
// and distinct versions.
func PrepareKconfig(ctx context.Context, ts []*Target, env Environment, events func(Event), opts ...Option) (*Kconfig, error) {
	if len(ts) == 0 {
		return nil, errors.New("kconfig: no kernel")
	}
	if err := env.checkFetch(); err != nil {
		return nil, err
	}
	k := &Kconfig{env: env}
	seen := map[string]bool{}
	for _, t := range ts {
		if err := kconfigTarget(t); err != nil {
			return nil, err
		}
		if t.Arch.Uname != ts[0].Arch.Uname {
			return nil, fmt.Errorf("kconfig: %s is for %s, %s for %s: one arch at a time", t.Plan.Version, t.Arch, ts[0].Plan.Version, ts[0].Arch)
		}
		v := t.Plan.Version.String()
		if seen[v] {
			return nil, fmt.Errorf("kconfig: kernel %s named twice", v)
		}
		seen[v] = true
	}
	ok := false
	defer func() {
		if !ok {
			k.Close()
		}
	}()
	for _, t := range ts {
		b, d, err := prepareTree(ctx, t, env, events, opts)
		if b != nil {
			k.builds = append(k.builds, b)
			k.dirs = append(k.dirs, d)
		}
		if err != nil {
			return nil, fmt.Errorf("kconfig %s: %w", t.Plan.Version, err)
		}
		if first := k.builds[0]; b.rootfs.Dir != first.rootfs.Dir {
			return nil, fmt.Errorf("kconfig: %s builds in %s, %s in %s: name one series (--series) or one builder for all (--builder-image)",
				t.Plan.Version, t.BuilderPull, first.plan.Version, first.t.BuilderPull)
		}
		files, err := t.Plan.Series.ConfigFiles(t.Arch)
		if err != nil {
			return nil, err
		}
		tree := KconfigTree{
			Save:      path.Join(t.Plan.Paths.Kernel, files[0]),
			Version:   t.Plan.Version.String(),
			Dir:       "/linux-" + t.Plan.Version.String(),
			Defconfig: t.Arch.Defconfig,
			Config:    t.Plan.ConfigFiles[0],
		}
		// The stored config goes into the tree's own upper layer, where the
		// overlay shows it over the source's defconfig.
		defconfig := filepath.Join(kconfigUpper(d), filepath.FromSlash(t.Arch.Defconfig))
		if err := os.MkdirAll(filepath.Dir(defconfig), 0o755); err != nil {
			return nil, fmt.Errorf("kconfig: %w", err)
		}
		if err := os.WriteFile(defconfig, t.Plan.Config, 0o644); err != nil {
			return nil, fmt.Errorf("kconfig: %w", err)
		}
		k.trees = append(k.trees, tree)
	}
	ok = true
	return k, nil
}

// kconfigTarget checks that t is a kernel whose stored config is final:
// a plain one.
func kconfigTarget(t *Target) error {
	if t == nil || t.Plan == nil {
		return errors.New("kconfig: no target (Resolve makes one)")
	}
	if t.Plan.Extra != "" || t.Plan.Debug {
		return fmt.Errorf("kconfig: %s%s: a variant's or the debug kernel's config is a fragment over the series' config: name the series itself", t.Plan.Version, t.Plan.LocalVersion)
	}
	if t.Plan.CrossCompile != "" {
		return errors.New("kconfig: a --cross builder's compiler is not the one the config records: run it in the arch's own builder")
	}
	return nil
}

// prepareTree prepares t's builder and applies its patches. The build
// it returns, when not nil, must be closed, even with an error.
func prepareTree(ctx context.Context, t *Target, env Environment, events func(Event), opts []Option) (*build, sandboxDirs, error) {
	// No microcode: nothing here packs it.
	p := *t.Plan
	p.Ucode = nil
	b := &build{t: t, plan: &p, env: env, pol: Policy{Events: events}, deps: makeDeps(opts), logPrefix: "kconfig-", kconfig: true}
	b.res.Ref = t.Ref
	d, err := b.prepare(ctx)
	if err != nil {
		return b, d, err
	}
	if err := b.patch(ctx, d, nil); err != nil {
		return b, d, err
	}
	b.endPhase()
	return b, d, nil
}

// kconfigUpper is the writable layer of a kconfig tree, in the build's
// scratch space: the build's own upper dir, which kconfig does not use.
func kconfigUpper(d sandboxDirs) string { return d.buildUpper }

// Trees are the kernels' trees in the sandbox, in the targets' order.
func (k *Kconfig) Trees() []KconfigTree { return k.trees }

// Log is the log of the preparation (fetch, provision, patches) of the
// first kernel.
func (k *Kconfig) Log() string {
	if len(k.builds) == 0 {
		return ""
	}
	return k.builds[0].res.Log
}

// Spec is the sandbox of a kconfig command: args in the builder, with
// the trees at their Dir, the kernel directory read-write at the plan's
// kernel path, no network, and the builds' environment (ARCH, the
// KBUILD_BUILD_ variables) with env added. The caller sets its streams
// (and Terminal) and runs it with sandbox.Run.
func (k *Kconfig) Spec(args []string, env ...string) sandbox.Spec {
	first, d0 := k.builds[0], k.dirs[0]
	p := first.plan
	s := sandbox.Spec{
		Rootfs:   first.rootfs.Dir,
		StateDir: d0.state,
		Hostname: "lkbuild",
		Args:     args,
		Env:      sandbox.EnvDefaults(append(kconfigEnv(p.Env), env...), nil),
		Dir:      "/",
		Mounts:   []sandbox.Mount{{Source: first.t.KernelDir, Target: p.Paths.Kernel}},
	}
	for i, b := range k.builds {
		d := k.dirs[i]
		s.Mounts = append(s.Mounts, sandbox.Mount{Target: k.trees[i].Dir, Overlay: &sandbox.Overlay{
			Lower: []string{d.patchUpper, b.src.Dir}, Upper: kconfigUpper(d), Work: d.buildWk,
		}})
	}
	if k.env.Emulation != nil {
		Emulate(&s, *k.env.Emulation)
	}
	return s
}

// kconfigEnv is a build's environment without what names one kernel
// (KERNEL_VERSION, KERNEL_SERIES): a kconfig sandbox holds several.
func kconfigEnv(env []string) []string {
	var out []string
	for _, e := range env {
		if strings.HasPrefix(e, kernel.KeyKernelVersion+"=") || strings.HasPrefix(e, kernel.KeyKernelSeries+"=") {
			continue
		}
		out = append(out, e)
	}
	return out
}

// Close removes the trees' scratch space and lets go of the cache.
func (k *Kconfig) Close() {
	for _, b := range k.builds {
		b.close()
	}
	k.builds = nil
}

// RefreshOptions say how RefreshConfig brings a stored config up to date.
type RefreshOptions struct {
	// Answers, when set, is fed to `make oldconfig` (run on the stored
	// config as .config) to answer the questions about symbols the config
	// lacks. Without it they get their defaults (olddefconfig).
	Answers []byte
	// Write writes the refreshed config over the stored one when they
	// differ. Without it nothing is written (a check).
	Write bool
	// Events receives progress; nil discards it.
	Events func(Event)
}

// RefreshResult is what RefreshConfig found for one stored config.
type RefreshResult struct {
	// File is the stored config as the user knows it,
	// "kernel/6.6.x/config-x86_64"; Path is its path on this host.
	File, Path string
	// Stored is the config as it was; Final the .config a build makes of
	// it (or of the answered one), with the build's own steps.
	Stored, Final []byte
	// Mismatch is the build's final-config check of Stored, nil when it
	// passes: exactly the error a build of the stored config would fail
	// with.
	Mismatch *kernel.ConfigMismatchError
	// Written is true when Final replaced the stored config.
	Written bool
	// Log is the full log of the commands.
	Log string
}

// RefreshConfig runs the build's config steps (the stored config
// installed as the arch's defconfig, make defconfig, make oldconfig) on
// t's patched source in its builder, and checks the stored config with
// the build's own final-config check: a config RefreshConfig passes
// passes the build's check. With opts.Answers the stored config is
// first run through `make oldconfig` with them. With opts.Write the
// result replaces the stored config when it differs.
func RefreshConfig(ctx context.Context, t *Target, env Environment, opts RefreshOptions, deps ...Option) (*RefreshResult, error) {
	if err := kconfigTarget(t); err != nil {
		return nil, err
	}
	if err := env.checkFetch(); err != nil {
		return nil, err
	}
	check := configCheck(t.Plan)
	if check == nil {
		return nil, fmt.Errorf("kconfig: the plan of %s has no config check", t.Plan.Version)
	}
	b, d, err := prepareTree(ctx, t, env, opts.Events, deps)
	if b != nil {
		defer b.close()
	}
	res := &RefreshResult{File: check.File, Stored: t.Plan.Config}
	if b != nil {
		res.Log = b.res.Log
	}
	if err != nil {
		return res, err
	}
	files, err := t.Plan.Series.ConfigFiles(t.Arch)
	if err != nil {
		return res, err
	}
	res.Path = filepath.Join(t.KernelDir, filepath.FromSlash(files[0]))
	answers := filepath.Join(b.scr, "answers")
	if opts.Answers != nil {
		if err := os.WriteFile(answers, opts.Answers, 0o644); err != nil {
			return res, fmt.Errorf("kconfig: %w", err)
		}
	}
	for _, s := range refreshSteps(t.Plan, opts.Answers != nil) {
		b.startPhase(string(s.Phase))
		b.emit(Event{Kind: EventStep, Step: s.Name, Message: s.String()})
		b.logf("step %s", s)
		spec := b.spec(d, true, false)
		if s.Action != nil {
			err = b.action(ctx, spec, s)
		} else {
			if s.Name == answersStep {
				spec.Mounts = append(spec.Mounts, sandbox.Mount{Source: answers, Target: answersPath, ReadOnly: true})
			}
			_, err = b.command(ctx, spec, s)
		}
		if err != nil {
			return res, err
		}
	}
	b.endPhase()
	if res.Final, err = os.ReadFile(filepath.Join(d.out, refreshedName)); err != nil {
		return res, fmt.Errorf("kconfig: the refreshed config: %w", err)
	}
	if err := check.Check(res.Final); err != nil {
		if !errors.As(err, &res.Mismatch) {
			return res, err
		}
	}
	if opts.Write && !bytes.Equal(res.Stored, res.Final) {
		if err := ReplaceFile(res.Path, res.Final); err != nil {
			return res, err
		}
		res.Written = true
	}
	return res, nil
}

// answersPath is where RefreshOptions.Answers is bound in the sandbox.
const answersPath = "/tmp/lkbuild-kconfig-answers"

// answersStep is the step that runs make oldconfig with the answers.
const answersStep = "oldconfig with answers"

// refreshedName is the refreshed .config's name under Paths.Out.
const refreshedName = "config"

// configCheck is the plan's final-config check.
func configCheck(p *kernel.Plan) *kernel.ConfigCheck {
	for _, s := range p.Steps {
		if c, ok := s.Action.(*kernel.ConfigCheck); ok {
			return c
		}
	}
	return nil
}

// refreshSteps are the plan's config steps up to its check, then a copy
// of the .config out. With answers, the stored config first goes through
// `make oldconfig` fed from them, and its result is what the build's
// steps install as the defconfig.
func refreshSteps(p *kernel.Plan, answers bool) []kernel.Step {
	src := p.Paths.Source
	var steps []kernel.Step
	if answers {
		env := append([]string(nil), p.Env...)
		steps = append(steps,
			kernel.Step{Name: "install config as .config", Phase: kernel.PhaseConfig, Action: &kernel.FileContent{Path: path.Join(src, ".config"), Data: p.Config}},
			kernel.Step{Name: answersStep, Phase: kernel.PhaseConfig, Dir: src, Env: env,
				Args: []string{"sh", "-c", `make oldconfig < "$1" && cp .config "$2"`, "sh", answersPath, p.Arch.Defconfig}},
		)
	}
	for _, s := range p.Steps {
		if s.Phase != kernel.PhaseConfig {
			continue
		}
		if _, ok := s.Action.(*kernel.ConfigCheck); ok {
			break
		}
		if _, ok := s.Action.(*kernel.FileContent); ok && answers {
			continue // the answered config is the defconfig
		}
		steps = append(steps, s)
	}
	return append(steps, kernel.Step{Name: "save .config", Phase: kernel.PhaseConfig,
		Action: &kernel.FileCopy{From: []string{path.Join(src, ".config")}, To: path.Join(p.Paths.Out, refreshedName)}})
}

// ReplaceFile replaces file with data atomically (a new file renamed over
// it: never half written), keeping its mode (0644 for a new file): the
// stored configs kconfig refreshes, the files update-yamls rewrites.
func ReplaceFile(file string, data []byte) error {
	mode := os.FileMode(0o644)
	if fi, err := os.Stat(file); err == nil {
		mode = fi.Mode().Perm()
	}
	tmp, err := os.CreateTemp(filepath.Dir(file), "."+filepath.Base(file)+".lkbuild-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", file, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", file, err)
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", file, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", file, err)
	}
	if err := os.Rename(tmp.Name(), file); err != nil {
		return fmt.Errorf("write %s: %w", file, err)
	}
	return nil
}
