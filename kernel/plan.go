// This file is long because the plan is one ordered recipe: the steps of
// upstream's Dockerfile, in its order, with the types that describe them;
// reading it top to bottom is reading the build.

package kernel

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Paths are the fixed places of a build inside the sandbox. Fixed paths
// are part of reproducibility: they end up in debug information and in
// the modules' metadata.
type Paths struct {
	// Kernel is the kernel directory, bound read-only. Upstream's
	// Dockerfile copies it to /src/ as well.
	Kernel string
	// Source is the kernel source tree, where every make runs. Before the
	// first step the runner fills it with the verified release (the
	// linux-<version>/ folder of the tarball). /linux, as upstream.
	Source string
	// Out receives the outputs, laid out as they appear in the image.
	Out string
	// Work holds the install roots of modules_install and
	// headers_install. Upstream uses /tmp; the sandbox gives every command
	// a fresh tmpfs /tmp, so lkbuild needs a place that outlives a step.
	Work string
}

// DefaultPaths are the paths every plan uses.
func DefaultPaths() Paths {
	return Paths{Kernel: "/src", Source: "/linux", Out: "/out", Work: "/work"}
}

// Ucode is the Intel microcode an x86_64 build packs next to the kernel
// (LINUXKIT-COMPAT.md §3 step 3). The build is hermetic, so the runner
// clones it before the sandbox starts.
type Ucode struct {
	Repo string // git URL
	Ref  string // tag to check out
	// Dir is where the runner binds the checkout, read-only.
	Dir string
	// Firmware is where the runner binds the checkout's intel-ucode/
	// folder, read-only. Upstream copies it to /lib/firmware so that a
	// config may name it in CONFIG_EXTRA_FIRMWARE; a bind gives the same
	// view without a step that writes into the root filesystem.
	Firmware string
}

// The microcode LinuxKit's Dockerfile uses.
const (
	UcodeRepo = "https://github.com/intel/Intel-Linux-Processor-Microcode-Data-Files"
	UcodeRef  = "microcode-20210608"
)

// ReleasePlaceholder stands for the kernel release ("6.6.71-linuxkit") in
// the steps that come after the release is known; Step.Expand replaces it.
// The release depends on the configured kernel (CONFIG_LOCALVERSION, any
// localversion* files a patch adds), so no plan can know it in advance.
const ReleasePlaceholder = "@KERNELRELEASE@"

// Default values of PlanOptions.
const (
	// DefaultBuildUser and DefaultBuildHost are the user and host name the
	// kernel records (/proc/version: "(root@buildkitsandbox)"). They are
	// what LinuxKit's images say, built as root in BuildKit's sandbox, so
	// only the timestamp tells an lkbuild kernel's banner apart.
	DefaultBuildUser = "root"
	DefaultBuildHost = "buildkitsandbox"
	// DefaultPath is the PATH of every command: Docker's default, which is
	// what upstream's RUN steps get.
	DefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
)

// PlanOptions are the parameters of a build that the kernel directory does
// not fix.
type PlanOptions struct {
	// Jobs is make's -j for the kernel build. The default is 1; the
	// builder passes the CPUs the build may use. It does not change the
	// result.
	Jobs int
	// Epoch is the build's date: SOURCE_DATE_EPOCH, KBUILD_BUILD_TIMESTAMP
	// and every mtime in the output tars. The builder passes the commit
	// time of the kernel directory's HEAD, so a commit always builds the
	// same bits; the package cannot ask git itself. The default (zero) is
	// the Unix epoch, 1970-01-01 00:00:00 UTC.
	Epoch time.Time
	// BuilderImage is the image the build runs in, written to
	// kernel-builder. The default is the series' BUILD_IMAGE; a caller
	// that builds in another image (one with the toolchain preinstalled)
	// must say so here, so that modules are built with the same compiler.
	BuilderImage string
	// BuildUser and BuildHost default to DefaultBuildUser and
	// DefaultBuildHost.
	BuildUser, BuildHost string
	// CrossCompile, when set, is the toolchain prefix of a --cross build
	// ("aarch64-linux-gnu-"), passed as CROSS_COMPILE: a host-arch builder
	// with a cross compiler, whose output differs from a native build's.
	// The final-config check then ignores the toolchain lines and
	// kernel-dev.tar leaves out the host-arch programs.
	CrossCompile string
	// NoUcode leaves the Intel microcode out of an x86_64 build: no clone,
	// no intel-ucode.cpio. The image then differs from upstream's.
	NoUcode bool
	// ZFSVersion is the OpenZFS release a ToolZFS plan builds; "" is the
	// one the kernel directory's ZFS Dockerfile names (Dir.ZFSVersion).
	ZFSVersion string
}

// Plan is everything a build does, as data: the config it installs, the
// patches, the ordered steps and the files it produces. A runner (package
// builder) carries it out:
//
//   - it binds the kernel directory at Paths.Kernel (read-only) and host
//     directories at Paths.Source, Paths.Out and Paths.Work, fills
//     Paths.Source with the verified source and, when Ucode is set, binds
//     the microcode as Ucode says;
//   - it takes the steps in order, each through Step.Expand with the
//     release once a step has printed it (see Step.PrintsRelease), and
//     stops at the first that fails, naming it (and its Patch);
//   - a step with no Action is a command, run in the sandbox with its Env
//     only, in Dir, with /dev/null as standard input. All steps share one
//     root filesystem;
//   - a step with an Action is done by the runner itself, on the host
//     side of the bound directories: every path an Action names lies under
//     Paths.Source, Paths.Out, Paths.Work or Ucode.Dir.
//
// At the end Paths.Out holds exactly Outputs.
type Plan struct {
	Series  *Series
	Name    Name // the image's name, for tags and labels
	Arch    Arch
	Version Version
	Extra   string // EXTRA, "-rt" or ""
	Debug   bool
	// Tool is the tool image built instead of the kernel (ToolPerf), ""
	// for the kernel. A tool's plan builds from the patched source alone:
	// no config steps, no microcode.
	Tool  string
	Epoch time.Time
	Jobs  int
	// BuilderImage is the image the steps run in.
	BuilderImage string
	// CrossCompile is PlanOptions.CrossCompile: a --cross build.
	CrossCompile string
	Paths        Paths
	// Ucode is the microcode to provide; nil when the build has none.
	Ucode *Ucode
	// ZFS is the OpenZFS source to provide, for ToolZFS; nil otherwise.
	ZFS *ZFS

	// ConfigFiles are the files Config is made from, as the user knows
	// them: config-<arch>, the variant's fragment, config-dbg.
	ConfigFiles []string
	// Config is what the build installs as the arch's defconfig (see
	// AssembleConfig).
	Config []byte
	// LocalVersion is CONFIG_LOCALVERSION: "-linuxkit<EXTRA><DEBUG>".
	LocalVersion string
	// Patches are the patches applied, in order, relative to the kernel
	// directory: a variant's own, then its base's.
	Patches []string
	// Env is the environment of every command (see Step.Env).
	Env []string

	Steps   []Step
	Outputs []Output
}

// Step is one thing a build does. Names are unique within a plan.
type Step struct {
	// Name says what the step does, for progress and errors: "defconfig",
	// "patch 0001-foo.patch", "kernel.tar".
	Name string
	// Args, Env and Dir are the command of a step without an Action: argv
	// (Args[0] looked up in Env's PATH), the whole environment, the
	// working directory.
	Args []string
	Env  []string
	Dir  string
	// PrintsRelease marks the command whose standard output is the kernel
	// release: the runner keeps it, checks it with ParseRelease and hands
	// it to Expand for the steps that follow.
	PrintsRelease bool
	// Patch, on a patch step, is the patch file as the user knows it
	// ("kernel/6.6.x/patches/0001-foo.patch"), for the error when it does
	// not apply; PatchFile is the same file relative to the kernel
	// directory (Plan.Patches), for the runner to read its hunks.
	Patch, PatchFile string
	// Phase is the part of the build the step belongs to, for progress.
	// The planner sets it: a step's name does not decide it.
	Phase Phase
	// Background steps run beside the steps after them, in a read-only
	// view of the source tree as it is when they start (the source
	// archive, which needs the patched tree before the build fills it).
	Background bool
	// CountsObjects marks the command whose output is kbuild's, one line
	// per object compiled ("  CC      kernel/fork.o"), for progress.
	CountsObjects bool
	// Action, when set, is work the runner does in Go instead of a
	// command: a *FileContent, *FileCopy, *TarArchive or *ConfigCheck.
	Action Action
}

// Phase is a part of a build, as progress reports name it.
type Phase string

// The phases of a plan's steps, in order.
const (
	PhasePatch   Phase = "patch"
	PhaseConfig  Phase = "config"
	PhaseCompile Phase = "compile"
	PhaseModules Phase = "modules"
	// PhaseZFS builds OpenZFS's modules (ToolZFS).
	PhaseZFS     Phase = "zfs"
	PhasePackage Phase = "package"
)

// Action is the work of a step the runner does itself. Its types are the
// ones listed on Step.Action.
type Action interface{ isAction() }

// FileContent writes Data to Path.
type FileContent struct {
	Path string
	Data []byte
}

// FileCopy copies the first of From that exists, a regular file, to To,
// mode 0644, or 0755 with Exec. None existing is an error that names them
// all.
type FileCopy struct {
	From []string
	To   string
	Exec bool `json:",omitempty"`
}

// TarArchive writes the tree at Dir as a deterministic tar (oci.WriteTar)
// at To, with every name under Prefix and every mtime the plan's Epoch
// (or, with SourceTime, the release's).
type TarArchive struct {
	Dir, To, Prefix string
	// Dev selects the files of kernel-dev.tar (DevFiles) instead of the
	// whole tree.
	Dev bool
	// Machine, when set, is the target's ELF machine (Arch.ELFMachine):
	// ELF files for another machine are left out. A --cross build's host
	// tools (fixdep, modpost, ...) are host-arch programs that look like
	// the target's and cannot run there.
	Machine uint16 `json:",omitempty"`
	// XZ compresses the tar with xz.
	XZ bool
	// SourceTime gives every entry the modification time of the newest
	// file of the verified release instead of the plan's Epoch: the
	// source archive is then a function of the source and the patches,
	// and a new commit with the same patches has the same archive.
	SourceTime bool `json:",omitempty"`
}

// ConfigCheck compares the .config at Path to Want with CheckFinalConfig
// and fails on any difference.
type ConfigCheck struct {
	Path string
	Want []byte
	// File is the stored config as the user knows it, for the error.
	File string
	// IgnoreToolchain leaves the lines that record the toolchain out of
	// the comparison (ToolchainSymbols): a --cross build's compiler names
	// itself differently from the target's own.
	IgnoreToolchain bool `json:",omitempty"`
}

func (*FileContent) isAction() {}
func (*FileCopy) isAction()    {}
func (*TarArchive) isAction()  {}
func (*ConfigCheck) isAction() {}

// Check compares got, the build's .config, to the stored config. The
// error is a *ConfigMismatchError that names the stored file.
func (c *ConfigCheck) Check(got []byte) error {
	want := c.Want
	if c.IgnoreToolchain {
		want, got = withoutToolchain(want), withoutToolchain(got)
	}
	err := CheckFinalConfig(want, got)
	var m *ConfigMismatchError
	if errors.As(err, &m) {
		m.File = c.File
	}
	return err
}

// OutputKind says what an output file is, for whoever compares two builds
// file by file.
type OutputKind int

const (
	// OutputFile is a file the kernel build made, copied as it is.
	OutputFile OutputKind = iota + 1
	// OutputText is a short text lkbuild writes.
	OutputText
	// OutputTar is a tar archive.
	OutputTar
	// OutputTarXZ is an xz-compressed tar archive.
	OutputTarXZ
	// OutputCpio is a cpio archive.
	OutputCpio
	// OutputTree is a directory: every file under it is the image's
	// (ToolZFS's lib/modules).
	OutputTree
)

func (k OutputKind) String() string {
	switch k {
	case OutputFile:
		return "file"
	case OutputText:
		return "text"
	case OutputTar:
		return "tar"
	case OutputTarXZ:
		return "tar.xz"
	case OutputCpio:
		return "cpio"
	case OutputTree:
		return "tree"
	}
	return fmt.Sprintf("OutputKind(%d)", int(k))
}

// Output is one file of the image.
type Output struct {
	// Path is relative to Paths.Out and to the image's root: "kernel",
	// "src/linux.tar.xz".
	Path string
	Kind OutputKind
	// Step names the step that writes it.
	Step string
}

// NewPlan makes the plan of building the kernel q names (its Extra and
// Debug included; Org and Image only name the result) for arch a. It
// reads the config files, the debug fragment and the list of patches from
// d; every error about one of them names the file.
func NewPlan(d *Dir, q Query, a Arch, opts PlanOptions) (*Plan, error) {
	if d == nil {
		return nil, errors.New("plan: no kernel directory")
	}
	if a.IsZero() {
		return nil, errors.New("plan: no arch")
	}
	if opts.Jobs < 0 {
		return nil, fmt.Errorf("plan: jobs must not be negative (0 means 1), got %d", opts.Jobs)
	}
	s, name, err := (&Checkout{Dir: d}).Resolve(q)
	if err != nil {
		return nil, err
	}
	if name.Version != s.Version {
		// make build-<version> would tag the build with the version asked
		// for but build KERNEL_VERSION; refuse rather than mislabel.
		return nil, &FileError{File: argsFile(d, s), Err: fmt.Errorf("kernel %s is not the series' %s=%s: the build uses build-args", name.Version, KeyKernelVersion, s.Version)}
	}
	p := &Plan{
		Series:       s,
		Name:         name,
		Arch:         a,
		Version:      s.Version,
		Extra:        s.Extra,
		Debug:        q.Debug,
		Epoch:        opts.Epoch,
		Jobs:         max(opts.Jobs, 1),
		BuilderImage: opts.BuilderImage,
		Paths:        DefaultPaths(),
		Patches:      s.PatchFiles(),
	}
	if p.Epoch.IsZero() {
		p.Epoch = time.Unix(0, 0)
	}
	p.Epoch = p.Epoch.UTC().Truncate(time.Second)
	if p.Epoch.Unix() < 0 {
		return nil, fmt.Errorf("plan: epoch %s is before 1970", p.Epoch.Format(time.RFC3339))
	}
	if p.BuilderImage == "" {
		p.BuilderImage = s.BuildImage()
	}
	if p.BuilderImage == "" {
		return nil, &FileError{File: argsFile(d, s), Err: fmt.Errorf("no %s, and no builder image was given", KeyBuildImage)}
	}
	if q.Tool != "" && opts.CrossCompile != "" {
		return nil, fmt.Errorf("plan: %s links the builder's libraries for the target statically: build it natively, emulated or on the fast path, not with a cross compiler", q.Tool)
	}
	p.Tool = q.Tool
	if a.Uname == "x86_64" && !opts.NoUcode && p.Tool == "" {
		p.Ucode = &Ucode{Repo: UcodeRepo, Ref: UcodeRef, Dir: "/ucode", Firmware: "/lib/firmware/intel-ucode"}
	}
	if err := p.assembleConfig(d, s, a); err != nil {
		return nil, err
	}
	p.Env = p.env(s, opts)
	p.CrossCompile = opts.CrossCompile
	switch p.Tool {
	case ToolPerf:
		p.planPerf(d)
	case ToolZFS:
		v := opts.ZFSVersion
		if v == "" {
			if v, err = d.ZFSVersion(); err != nil {
				return nil, err
			}
		} else if err := CheckZFSVersion(v); err != nil {
			return nil, err
		}
		p.ZFS = &ZFS{Version: v, Dir: "/zfs"}
		p.planZFS(d)
	default:
		p.plan(d)
	}
	return p, nil
}

// argsFile names the file s's build-args come from.
func argsFile(d *Dir, s *Series) string {
	if a := s.Args(); a != nil {
		return a.File
	}
	return d.file(s.Name)
}

// assembleConfig reads the config files and sets ConfigFiles, Config and
// LocalVersion.
func (p *Plan) assembleConfig(d *Dir, s *Series, a Arch) error {
	files, err := s.ConfigFiles(a)
	if err != nil {
		return fmt.Errorf("%s: %w", d.file(s.Name), err)
	}
	read := func(rel string) ([]byte, error) {
		p.ConfigFiles = append(p.ConfigFiles, d.file(rel))
		b, err := fs.ReadFile(d.FS, rel)
		if err != nil {
			return nil, &FileError{File: d.file(rel), Err: err}
		}
		return b, nil
	}
	parts := ConfigParts{Extra: p.Extra, Debug: p.Debug}
	if parts.Stored, err = read(files[0]); err != nil {
		return err
	}
	if len(files) > 1 {
		if parts.Variant, err = read(files[1]); err != nil {
			return err
		}
	}
	if p.Debug {
		if parts.DebugFragment, err = read(debugFragment(d)); err != nil {
			return err
		}
	}
	p.Config = AssembleConfig(parts)
	p.LocalVersion = parts.LocalVersion()
	return nil
}

// debugFragment is the debug config's path in d: common/config-dbg, or in
// the flat layout config-dbg next to the configs. Upstream cats
// config$(DEBUG) from there.
func debugFragment(d *Dir) string {
	if d.Layout == LayoutFlat {
		return "config" + DebugSuffix
	}
	return "common/config" + DebugSuffix
}

// kbuildTimestampLayout is how date(1) prints a time in the C locale,
// "Thu Jan  1 00:00:00 UTC 1970": what KBUILD_BUILD_TIMESTAMP holds when
// a kernel is built without it, and a form GNU date -d and tar --mtime
// (used by kernel scripts such as gen_kheaders.sh) read back.
const kbuildTimestampLayout = "Mon Jan _2 15:04:05 MST 2006"

// KbuildTimestamp formats t for KBUILD_BUILD_TIMESTAMP, in UTC.
func KbuildTimestamp(t time.Time) string {
	return t.UTC().Format(kbuildTimestampLayout)
}

// env is the environment of every command: a fixed PATH and HOME, the
// reproducibility variables of DESIGN.md, ARCH, and the build arguments
// upstream's Dockerfile declares, which docker puts in the environment of
// its RUN steps (some Makefiles under tools/ look at DEBUG).
func (p *Plan) env(s *Series, opts PlanOptions) []string {
	user, host := opts.BuildUser, opts.BuildHost
	if user == "" {
		user = DefaultBuildUser
	}
	if host == "" {
		host = DefaultBuildHost
	}
	env := []string{
		"PATH=" + DefaultPath,
		"HOME=/root",
		"LC_ALL=C",
		"TZ=UTC",
		"SOURCE_DATE_EPOCH=" + strconv.FormatInt(p.Epoch.Unix(), 10),
		"KBUILD_BUILD_TIMESTAMP=" + KbuildTimestamp(p.Epoch),
		"KBUILD_BUILD_USER=" + user,
		"KBUILD_BUILD_HOST=" + host,
		// The build number in the banner ("#1 SMP"); a fresh tree has no
		// .version and would say 1 too.
		"KBUILD_BUILD_VERSION=1",
		"ARCH=" + p.Arch.Make,
	}
	if opts.CrossCompile != "" {
		env = append(env, "CROSS_COMPILE="+opts.CrossCompile)
	}
	env = append(env,
		KeyBuildImage+"="+p.BuilderImage,
		KeyKernelVersion+"="+p.Version.String(),
		KeyKernelSeries+"="+s.Base,
	)
	if p.Extra != "" {
		env = append(env, "EXTRA="+p.Extra)
	}
	if p.Debug {
		env = append(env, "DEBUG="+DebugSuffix)
	}
	return env
}

// The install roots under Paths.Work, named as upstream's under /tmp.
const (
	modulesDir = "kernel-modules"
	headersDir = "kernel-headers"
)

// ModulesFile is where modules_install writes name (modules.order,
// modules.builtin) for release, relative to Paths.Work.
func (p *Plan) ModulesFile(release, name string) string {
	return path.Join(modulesDir, "lib/modules", release, name)
}

// planner collects steps and the outputs they write.
type planner struct {
	p       *Plan
	steps   []Step
	outputs []Output
	// phase is given to every step added.
	phase Phase
}

// run is a command step with the plan's environment.
func (b *planner) run(name, dir string, args ...string) Step {
	return Step{Name: name, Args: args, Env: slices.Clone(b.p.Env), Dir: dir}
}

// make is a make step in the source tree.
func (b *planner) make(name string, args ...string) Step {
	return b.run(name, b.p.Paths.Source, append([]string{"make"}, args...)...)
}

func (b *planner) add(steps ...Step) {
	for _, s := range steps {
		s.Phase = b.phase
		b.steps = append(b.steps, s)
	}
}

// produce adds s, which writes rel under Paths.Out.
func (b *planner) produce(rel string, kind OutputKind, s Step) {
	b.add(s)
	b.outputs = append(b.outputs, Output{Path: rel, Kind: kind, Step: s.Name})
}

// out is the sandbox path of output rel.
func (b *planner) out(rel string) string { return path.Join(b.p.Paths.Out, rel) }

// patches adds one step per patch, so that a failure names it. -i rather
// than upstream's `< file`, which needs a shell; patch reads the same
// bytes.
func (b *planner) patches(d *Dir) {
	for _, rel := range b.p.Patches {
		s := b.run("patch "+path.Base(rel), b.p.Paths.Source, "patch", "-t", "-F0", "-N", "-u", "-p1", "-i", path.Join(b.p.Paths.Kernel, rel))
		s.Patch, s.PatchFile = d.file(rel), rel
		b.add(s)
	}
}

// plan sets Steps and Outputs: what the build does, in the order of
// upstream's Dockerfile.
func (p *Plan) plan(d *Dir) {
	b := &planner{p: p}
	src := p.Paths.Source
	modules := path.Join(p.Paths.Work, modulesDir)
	headers := path.Join(p.Paths.Work, headersDir)

	b.phase = PhasePatch
	if u := p.Ucode; u != nil {
		// --normal-earlyfw: the microcode only, for the early loader, as
		// upstream asks.
		b.produce("intel-ucode.cpio", OutputCpio,
			b.run("intel-ucode.cpio", u.Dir, "iucode_tool", "--normal-earlyfw", "--write-earlyfw="+b.out("intel-ucode.cpio"), "./intel-ucode"))
		b.produce("intel-ucode-license.txt", OutputFile, Step{Name: "intel-ucode-license.txt",
			Action: &FileCopy{From: []string{path.Join(u.Dir, "license")}, To: b.out("intel-ucode-license.txt")}})
	}

	b.patches(d)

	// The patched, unbuilt tree, as upstream's
	// `tar cJf /out/src/linux.tar.xz /linux`: here, before the build
	// fills the tree with objects.
	b.produce("src/linux.tar.xz", OutputTarXZ, Step{Name: "src/linux.tar.xz", Background: true, Action: &TarArchive{
		Dir: src, To: b.out("src/linux.tar.xz"), Prefix: path.Base(src) + "/", XZ: true, SourceTime: true,
	}})

	b.configure()
	b.compile()
	jobs := "-j" + strconv.Itoa(p.Jobs)

	var boot []string
	for _, img := range p.Arch.BootImages {
		boot = append(boot, path.Join(src, img))
	}
	b.produce("kernel", OutputFile, Step{Name: "kernel", Action: &FileCopy{From: boot, To: b.out("kernel")}})
	b.produce("System.map", OutputFile, Step{Name: "System.map", Action: &FileCopy{From: []string{path.Join(src, "System.map")}, To: b.out("System.map")}})
	if p.Debug {
		b.produce("vmlinux", OutputFile, Step{Name: "vmlinux", Action: &FileCopy{From: []string{path.Join(src, "vmlinux")}, To: b.out("vmlinux")}})
	}

	b.modulesInstall()
	if p.Arch.Uname == "aarch64" {
		b.add(b.make("dtbs_install", jobs, "INSTALL_DTBS_PATH="+path.Join(modules, "boot/dtb"), "dtbs_install"))
	}
	b.produce("kernel.tar", OutputTar, Step{Name: "kernel.tar", Action: &TarArchive{Dir: modules, To: b.out("kernel.tar"), Prefix: "./"}})

	b.add(
		b.run("create headers dir", "/", "mkdir", "-p", path.Join(headers, "usr")),
		b.make("headers_install", jobs, "INSTALL_HDR_PATH="+path.Join(headers, "usr"), "headers_install"),
	)
	b.produce("kernel-headers.tar", OutputTar, Step{Name: "kernel-headers.tar", Action: &TarArchive{Dir: headers, To: b.out("kernel-headers.tar")}})
	b.phase = PhasePackage
	dev := &TarArchive{Dir: src, To: b.out("kernel-dev.tar"), Prefix: DevPrefix(ReleasePlaceholder), Dev: true}
	if p.CrossCompile != "" {
		dev.Machine = p.Arch.ELFMachine()
	}
	b.produce("kernel-dev.tar", OutputTar, Step{Name: "kernel-dev.tar", Action: dev})

	// Upstream: printf "${BUILD_IMAGE}", no newline.
	b.produce("kernel-builder", OutputText, Step{Name: "kernel-builder", Action: &FileContent{Path: b.out("kernel-builder"), Data: []byte(p.BuilderImage)}})
	b.produce("kernel-source-info", OutputText, Step{Name: "kernel-source-info", Action: &FileContent{
		Path: b.out("kernel-source-info"), Data: []byte("KERNEL_SOURCE=" + p.SourceURL() + "\n"),
	}})

	slices.SortFunc(b.outputs, func(x, y Output) int { return strings.Compare(x.Path, y.Path) })
	p.Steps, p.Outputs = b.steps, b.outputs
}

// configure adds the config steps: the stored config as the arch's
// defconfig, make defconfig and oldconfig, and for a plain kernel the
// final-config check.
func (b *planner) configure() {
	p, src := b.p, b.p.Paths.Source
	b.phase = PhaseConfig
	b.add(
		Step{Name: "install config", Action: &FileContent{Path: path.Join(src, p.Arch.Defconfig), Data: p.Config}},
		b.make("defconfig", "defconfig"),
		b.make("oldconfig", "oldconfig"),
	)
	if p.Extra == "" && !p.Debug {
		// Upstream runs `diff -u .config <defconfig>` for a plain kernel.
		// That defconfig is the stored config: the LOCALVERSION
		// substitution puts back what it finds.
		b.add(Step{Name: "check config", Action: &ConfigCheck{
			Path: path.Join(src, ".config"), Want: p.Config, File: p.ConfigFiles[0],
			IgnoreToolchain: p.CrossCompile != "",
		}})
	}
}

// compile adds the kernel's make and the step that prints the release.
func (b *planner) compile() {
	// KCFLAGS goes to this make only, exactly as upstream, so that the
	// later makes see the command lines upstream's see: kbuild rebuilds an
	// object whose recorded command line changed.
	// The installs after it get the same -j (upstream runs them serially):
	// their files do not depend on it, and under emulation headers_install
	// alone, a shell script per header, took 5 minutes on one of two cores.
	b.phase = PhaseCompile
	compile := b.make("make", "-j"+strconv.Itoa(b.p.Jobs), "KCFLAGS=-fno-pie")
	compile.CountsObjects = true
	b.add(compile)
	// The release comes from include/config/auto.conf, which the build
	// writes; before it `make kernelrelease` fails ("run 'make prepare'").
	// -s keeps make's own messages out of the output.
	release := b.make("kernelrelease", "-s", "kernelrelease")
	release.PrintsRelease = true
	b.add(release)
}

// modulesInstall adds make modules_install into the modules root under
// Paths.Work, with lib/modules/<release>/build pointing at the headers
// kernel-dev.tar installs and source (a link into /linux) gone. Two
// commands with the release filled in do what upstream's subshell does
// with `find | basename`, without a shell, and the runner follows no
// symlink of the build's on the host side.
func (b *planner) modulesInstall() {
	modules := path.Join(b.p.Paths.Work, modulesDir)
	relDir := path.Join(modules, "lib/modules", ReleasePlaceholder)
	b.phase = PhaseModules
	b.add(
		b.make("modules_install", "-j"+strconv.Itoa(b.p.Jobs), "INSTALL_MOD_PATH="+modules, "modules_install"),
		b.run("remove modules build and source links", "/", "rm", "-f", path.Join(relDir, "build"), path.Join(relDir, "source")),
		b.run("link modules build to headers", "/", "ln", "-s", "/"+strings.TrimSuffix(DevPrefix(ReleasePlaceholder), "/"), path.Join(relDir, "build")),
	)
}

// SourceURL is the URL kernel-source-info records: kernel.org's, wherever
// the runner took the bytes from. The SHA-256 in the signed sums pins the
// content, and a mirror's address in the image would make two builds of
// the same source differ.
func (p *Plan) SourceURL() string {
	f, err := SourceURLs(DefaultSourceMirror, p.Version)
	if err != nil {
		// Only a zero version fails, and NewPlan has none.
		return ""
	}
	return f.Tarball
}

// Expand returns s with ReleasePlaceholder replaced by release in its
// command and its action's paths. A step that needs the release when
// release is "" is an error: no step before it printed one.
func (s Step) Expand(release string) (Step, error) {
	if !s.NeedsRelease() {
		return s, nil
	}
	if release == "" {
		return Step{}, fmt.Errorf("step %s needs the kernel release, and no step before it printed one", s.Name)
	}
	r := func(v string) string { return strings.ReplaceAll(v, ReleasePlaceholder, release) }
	out := s
	out.Args = make([]string, len(s.Args))
	for i, a := range s.Args {
		out.Args[i] = r(a)
	}
	out.Dir = r(s.Dir)
	switch a := s.Action.(type) {
	case *FileContent:
		out.Action = &FileContent{Path: r(a.Path), Data: a.Data}
	case *FileCopy:
		from := make([]string, len(a.From))
		for i, f := range a.From {
			from[i] = r(f)
		}
		out.Action = &FileCopy{From: from, To: r(a.To), Exec: a.Exec}
	case *TarArchive:
		c := *a
		c.Dir, c.To, c.Prefix = r(a.Dir), r(a.To), r(a.Prefix)
		out.Action = &c
	case *ConfigCheck:
		c := *a
		c.Path = r(a.Path)
		out.Action = &c
	}
	return out, nil
}

// NeedsRelease reports whether s names the release (ReleasePlaceholder).
func (s Step) NeedsRelease() bool {
	has := func(v string) bool { return strings.Contains(v, ReleasePlaceholder) }
	if slices.ContainsFunc(s.Args, has) || has(s.Dir) {
		return true
	}
	switch a := s.Action.(type) {
	case *FileContent:
		return has(a.Path)
	case *FileCopy:
		return has(a.To) || slices.ContainsFunc(a.From, has)
	case *TarArchive:
		return has(a.Dir) || has(a.To) || has(a.Prefix)
	case *ConfigCheck:
		return has(a.Path)
	}
	return false
}

// String describes s on one line: the command and where it runs, or the
// action.
func (s Step) String() string {
	switch a := s.Action.(type) {
	case *FileContent:
		return fmt.Sprintf("%s: write %s (%d bytes)", s.Name, a.Path, len(a.Data))
	case *FileCopy:
		if len(a.From) == 1 {
			return fmt.Sprintf("%s: copy %s to %s", s.Name, a.From[0], a.To)
		}
		return fmt.Sprintf("%s: copy the first of %s to %s", s.Name, strings.Join(a.From, ", "), a.To)
	case *TarArchive:
		var b strings.Builder
		b.WriteString(s.Name + ": tar ")
		if a.Dev {
			b.WriteString("the kernel-dev files of ")
		}
		b.WriteString(a.Dir)
		if a.Prefix != "" {
			fmt.Fprintf(&b, " under %s", a.Prefix)
		}
		if a.XZ {
			b.WriteString(", xz")
		}
		b.WriteString(" to " + a.To)
		return b.String()
	case *ConfigCheck:
		return fmt.Sprintf("%s: compare %s to %s", s.Name, a.Path, a.File)
	}
	str := fmt.Sprintf("%s: %s (in %s)", s.Name, strings.Join(s.Args, " "), s.Dir)
	if s.PrintsRelease {
		str += ", prints the release"
	}
	return str
}

// ParseRelease checks what `make -s kernelrelease` printed for a build of
// v and returns the release: one line that starts with the version
// ("6.6.71-linuxkit", or "5.11.4-rt13-linuxkit-rt" with a patch's
// localversion-rt file), fit to be a directory name.
func ParseRelease(out []byte, v Version) (string, error) {
	s := strings.TrimSuffix(string(out), "\n")
	switch {
	case s == "":
		return "", errors.New("make kernelrelease printed nothing")
	case strings.ContainsAny(s, "/ \t\n\r\x00"), s == "." || s == "..":
		return "", fmt.Errorf("make kernelrelease printed %q, which is not one release name", s)
	case !strings.HasPrefix(s, v.String()):
		return "", fmt.Errorf("make kernelrelease printed %q, which is not a release of %s", s, v)
	}
	return s, nil
}
