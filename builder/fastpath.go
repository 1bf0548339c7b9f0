package builder

import (
	"bytes"
	"context"
	"debug/elf"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"

	securejoin "github.com/cyphar/filepath-securejoin"

	"github.com/lkbuild/lkbuild/internal/cachedir"
	"github.com/lkbuild/lkbuild/kernel"
	"github.com/lkbuild/lkbuild/sandbox"
	"github.com/lkbuild/lkbuild/toolchain"
)

// The fast path of a foreign-arch build: everything runs in the target's
// builder under QEMU as in a fully emulated build, except the compiler
// driver, cc1, as, ld and the other binutils, which are a cross toolchain
// of the same version for the host's arch, from another image (the cross
// image), running natively. They are bound read-only where Debian's cross
// toolchain lives (/usr/bin/<triplet>-*, /usr/lib/gcc-cross,
// /usr/libexec/gcc-cross, /usr/<triplet>), with the host arch's loader and
// libraries, and reached through the names the build already uses (gcc,
// ld, ...: links in fastBin, first in PATH), so the kernel's Makefiles,
// its .config and kernel-dev.tar see a native toolchain: host tools are
// built for the target and run emulated.
//
// Two things would differ from a native toolchain, and are handled:
//   - gcc prints the name it was called by in --version, which the
//     .config records (CONFIG_CC_VERSION_TEXT): the links are named gcc.
//   - the cross driver's own directories (/usr/lib/gcc-cross/...) end up
//     in debug info: GCC_EXEC_PREFIX=/usr/lib/gcc/ makes it name the
//     native ones, which the target's builder holds.
//
// Before the first step, checkToolchain compares the versions both
// toolchains print and refuses the fast path when they differ.
//
// make, the shell and the recipes' text tools run natively too, where the
// cross image holds the builder's own package versions (NativeTools).

// fastBin is where the links to the cross tools are, first in PATH.
const fastBin = "/usr/libexec/lkbuild-fastpath"

// gccExecPrefix makes the cross driver name the native gcc's directories.
const gccExecPrefix = "GCC_EXEC_PREFIX=/usr/lib/gcc/"

// fastTools are the plain names the kernel build calls, each linked to
// <triplet>-<name>; cc is gcc.
func fastTools() []string {
	return []string{
		"gcc", "cc", "cpp", "as", "ld", "ld.bfd", "ar", "nm", "objcopy", "objdump", "strip",
		"readelf", "ranlib", "size", "strings", "addr2line", "elfedit", "c++filt",
		"gcc-ar", "gcc-nm", "gcc-ranlib",
	}
}

// FastPath is a cross toolchain prepared for foreign-arch sandboxes (see
// Apply).
type FastPath struct {
	image, digest string // the cross image, as given, and its digest
	mounts        []sandbox.Mount
	// root is the unpacked cross image. When its xz is the builder's
	// (nativeXZ), the source archive is compressed there, natively.
	root     string
	nativeXZ bool
	// native are the builder's programs that run natively (NativeTools).
	native []string
}

// NewFastPath finds the cross toolchain for target in the unpacked cross
// image at root (an image for host) and writes the links to it into links,
// a new host directory.
func NewFastPath(image, root string, target, host kernel.Arch, links string) (*FastPath, error) {
	triplet := toolchain.Triplet(target)
	missing := func(what string) error {
		return fmt.Errorf("cross image %s: no %s: it holds no %s cross toolchain for %s (Debian: gcc-14-%s, binutils-%s)",
			image, what, target, host, triplet, triplet)
	}
	bins, err := os.ReadDir(filepath.Join(root, "usr/bin"))
	if err != nil {
		return nil, missing("/usr/bin")
	}
	f := &FastPath{image: image, root: root}
	have := map[string]bool{}
	for _, e := range bins {
		if !strings.HasPrefix(e.Name(), triplet+"-") {
			continue
		}
		have[e.Name()] = true
		if err := f.bind(root, "/usr/bin/"+e.Name()); err != nil {
			return nil, err
		}
	}
	// Debian's gcc-14-<triplet> has only the versioned driver
	// (<triplet>-gcc-14); the unversioned name is another package's.
	cross := func(name string) string {
		if name == "cc" {
			name = "gcc"
		}
		if have[triplet+"-"+name] {
			return triplet + "-" + name
		}
		var versioned []string
		for n := range have {
			if v, ok := strings.CutPrefix(n, triplet+"-"+name+"-"); ok && v != "" && strings.Trim(v, "0123456789") == "" {
				versioned = append(versioned, n)
			}
		}
		if len(versioned) == 1 {
			return versioned[0]
		}
		return ""
	}
	if cross("gcc") == "" || cross("ld") == "" {
		return nil, missing("/usr/bin/" + triplet + "-gcc or -ld")
	}
	for _, dir := range []string{"/usr/lib/gcc-cross", "/usr/libexec/gcc-cross", "/usr/" + triplet, "/usr/lib/" + toolchain.Triplet(host)} {
		if err := f.bind(root, dir); err != nil {
			return nil, missing(dir)
		}
	}
	// The host's dynamic loader, at the path the cross tools name.
	interp, err := interpreter(root, "/usr/bin/"+cross("gcc"))
	if err != nil {
		return nil, fmt.Errorf("cross image %s: %w", image, err)
	}
	if err := f.bind(root, interp); err != nil {
		return nil, fmt.Errorf("cross image %s: its loader %s: %w", image, interp, err)
	}
	if err := os.Mkdir(links, 0o755); err != nil {
		return nil, fmt.Errorf("fast path: %w", err)
	}
	for _, name := range fastTools() {
		prog := cross(name)
		if prog == "" {
			continue
		}
		if err := os.Symlink("/usr/bin/"+prog, filepath.Join(links, name)); err != nil {
			return nil, fmt.Errorf("fast path: %w", err)
		}
	}
	f.mounts = append(f.mounts, sandbox.Mount{Source: links, Target: fastBin, ReadOnly: true})
	return f, nil
}

// bind adds a read-only bind of p in the cross tree at p in the build,
// resolving links inside the tree.
func (f *FastPath) bind(root, p string) error {
	src, err := securejoin.SecureJoin(root, p)
	if err != nil {
		return err
	}
	if _, err := os.Stat(src); err != nil {
		return err
	}
	f.mounts = append(f.mounts, sandbox.Mount{Source: src, Target: p, ReadOnly: true})
	return nil
}

// interpreter is the ELF interpreter (PT_INTERP) of the program at p in
// the tree at root.
func interpreter(root, p string) (string, error) {
	full, err := securejoin.SecureJoin(root, p)
	if err != nil {
		return "", err
	}
	ef, err := elf.Open(full)
	if err != nil {
		return "", fmt.Errorf("%s: %w", p, err)
	}
	defer ef.Close()
	for _, prog := range ef.Progs {
		if prog.Type == elf.PT_INTERP {
			b := make([]byte, prog.Filesz)
			if _, err := prog.ReadAt(b, 0); err != nil {
				return "", fmt.Errorf("%s: interpreter: %w", p, err)
			}
			return path.Clean(string(bytes.TrimRight(b, "\x00"))), nil
		}
	}
	return "", fmt.Errorf("%s: no interpreter (a static cross compiler needs no loader, but lkbuild expects Debian's)", p)
}

// Apply makes spec run the cross tools: their mounts, the links first in
// PATH, the native gcc's directories named.
func (f *FastPath) Apply(spec *sandbox.Spec) {
	spec.Mounts = append(spec.Mounts, f.mounts...)
	env := make([]string, 0, len(spec.Env)+1)
	sawPath := false
	for _, kv := range spec.Env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			kv, sawPath = "PATH="+fastBin+":"+v, true
		}
		env = append(env, kv)
	}
	if !sawPath {
		env = append(env, "PATH="+fastBin+":"+kernel.DefaultPath)
	}
	spec.Env = append(env, gccExecPrefix)
}

// ToolchainMismatchError refuses a fast path whose cross toolchain is not
// the builder's own: the output would differ from a native build's.
type ToolchainMismatchError struct {
	CrossImage      string
	Builder, Cross  string // what each toolchain says of itself
	BuilderImage    string
	FirstDifference string
}

func (e *ToolchainMismatchError) Error() string {
	return fmt.Sprintf("fast path refused: the cross toolchain in %s is not the one in the builder %s, so the output would differ (%s); use a cross image of the builder's gcc and binutils versions, or build fully emulated with --no-fast-path\nbuilder:\n%s\ncross:\n%s",
		e.CrossImage, e.BuilderImage, e.FirstDifference, indent(e.Builder), indent(e.Cross))
}

func indent(s string) string {
	return "  " + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n  ")
}

// toolchainProbe prints what a toolchain says of itself: the first line of
// each tool's --version and the target triplet.
const toolchainProbe = `for t in gcc as ld; do "$t" --version </dev/null | sed -n 1p; done; gcc -dumpmachine`

// checkToolchain runs toolchainProbe in the builder as it is and with the
// fast path, and refuses the fast path unless both say the same.
func (b *build) checkToolchain(ctx context.Context, d sandboxDirs) error {
	native, err := b.probe(ctx, b.spec(d, false, false), false, toolchainProbe)
	if err != nil {
		return fmt.Errorf("fast path: the builder's toolchain: %w", err)
	}
	cross, err := b.probe(ctx, b.spec(d, false, false), true, toolchainProbe)
	if err != nil {
		return fmt.Errorf("fast path: the cross toolchain from %s does not run in the build: %w", b.fast.image, err)
	}
	b.logf("toolchain (builder):\n%s", native)
	b.logf("toolchain (fast path):\n%s", cross)
	if native != cross {
		return &ToolchainMismatchError{
			CrossImage: b.fast.image, BuilderImage: b.t.BuilderPull,
			Builder: native, Cross: cross, FirstDifference: firstDifference(native, cross),
		}
	}
	return nil
}

// probe runs script with /bin/sh in spec, one of the build's sandboxes,
// with the default PATH (and, when fast, the fast path's tools) and returns
// what it printed; an error carries what it said on standard error.
func (b *build) probe(ctx context.Context, spec sandbox.Spec, fast bool, script string) (string, error) {
	spec.Args = []string{"/bin/sh", "-c", script}
	spec.Env = []string{"PATH=" + kernel.DefaultPath}
	if e := b.env.Emulation; e != nil && !e.Register {
		spec.Env = sandbox.EnvDefaults(spec.Env, e.Env)
	}
	if fast {
		b.fast.Apply(&spec)
	}
	var out, errb bytes.Buffer
	spec.Stdout, spec.Stderr = &out, &errb
	if err := b.deps.run(ctx, spec); err != nil {
		return "", fmt.Errorf("%w: %s", err, strings.TrimSpace(errb.String()))
	}
	return out.String(), nil
}

// firstDifference names the first line two probe outputs differ in.
func firstDifference(a, b string) string {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	for i := range max(len(al), len(bl)) {
		var x, y string
		if i < len(al) {
			x = al[i]
		}
		if i < len(bl) {
			y = bl[i]
		}
		if x != y {
			return fmt.Sprintf("%q vs %q", x, y)
		}
	}
	return "no difference"
}

// crossImage pulls and unpacks the fast path's cross image, for host.
func (b *build) crossImage(ctx context.Context, host kernel.Arch) (toolchain.Rootfs, error) {
	store, err := b.env.Cache.Blobs()
	if err != nil {
		return toolchain.Rootfs{}, err
	}
	var rfs toolchain.Rootfs
	err = b.fetchHeld(cachedir.KindRootfs, func() (string, string, error) {
		rfs, err = b.deps.prepareRootfs(ctx, b.env.CrossImage, host, toolchain.RootfsOptions{
			Registry: b.env.Registry, Store: store, Dir: b.env.Cache.Rootfs(),
		})
		return rfs.Digest.String(), rfs.Dir, err
	})
	if err != nil {
		if m := b.missing(fmt.Sprintf("the cross image %s for %s", b.env.CrossImage, host), err); m != err {
			return rfs, m
		}
		return rfs, fmt.Errorf("fast path: %w", err)
	}
	return rfs, nil
}

// prepareToolchain says how a foreign-arch build runs and, for the fast
// path, unpacks the cross image and checks its toolchain against the
// builder's.
func (b *build) prepareToolchain(ctx context.Context, d sandboxDirs) error {
	if b.plan.CrossCompile != "" {
		gcc := b.plan.CrossCompile + "gcc"
		if _, err := b.probe(ctx, b.spec(d, false, false), false, "command -v "+gcc); err != nil {
			return fmt.Errorf("--cross: the builder %s has no %s (Debian: gcc-%s): %w", b.t.BuilderPull, gcc, strings.TrimSuffix(b.plan.CrossCompile, "-"), err)
		}
		b.emit(Event{Kind: EventNote, Message: fmt.Sprintf("%s with --cross: %sgcc in %s; the image differs from a native or emulated build's and says so (%s=cross); the config check ignores the toolchain lines (%s); kernel-dev.tar leaves out the host tools, which are not %s programs",
			b.t.Arch, b.plan.CrossCompile, b.t.BuilderPull, AnnotationToolchain, strings.Join(kernel.ToolchainSymbols()[:4], ", ")+", ...", b.t.Arch)})
		return nil
	}
	if b.env.Emulation == nil {
		return nil
	}
	host, err := toolchain.HostArch()
	if err != nil {
		return err
	}
	if b.env.CrossImage == "" {
		b.emit(Event{Kind: EventNote, Message: fmt.Sprintf("%s on %s: fully emulated, 6-8x slower than native (--cross-image gives the fast path, about as fast as native, with the same output)", b.t.Arch, host)})
		return nil
	}
	rfs, err := b.crossImage(ctx, host)
	if err != nil {
		return err
	}
	b.fast, err = NewFastPath(b.env.CrossImage, rfs.Dir, b.t.Arch, host, filepath.Join(b.scr, "fastpath"))
	if err != nil {
		return err
	}
	b.fast.digest = rfs.Digest.String()
	b.logf("fast path: cross toolchain %s %s (cached %v)", b.env.CrossImage, rfs.Digest, rfs.Cached)
	native, left, err := b.fast.NativeTools(b.rootfs.Dir)
	if err != nil {
		return err
	}
	b.logf("fast path: native programs (the builder's packages at the same versions): %s", strings.Join(native, " "))
	if len(left) > 0 {
		b.logf("fast path: left emulated: %s", strings.Join(left, "; "))
	}
	if err := b.checkToolchain(ctx, d); err != nil {
		return err
	}
	b.emit(Event{Kind: EventNote, Message: fmt.Sprintf("%s on %s: fast path: gcc, cc1, as, ld and binutils run natively from %s, with %s; the kernel's host tools (fixdep, conf, unifdef, ...), perl and uname emulated", b.t.Arch, host, b.env.CrossImage, nativeSummary(native, left))})
	b.checkXZ(ctx, d)
	return nil
}

// xzProbe prints the xz version line.
const xzProbe = `xz --version </dev/null | sed -n 1p`

// checkXZ lets the cross image compress src/linux.tar.xz natively when
// its xz is the builder's version: the same version and options give the
// same bytes. Otherwise the builder's xz does it, emulated, and a note says
// why it is slow.
func (b *build) checkXZ(ctx context.Context, d sandboxDirs) {
	version := func(spec sandbox.Spec) string {
		out, err := b.probe(ctx, spec, false, xzProbe)
		if err != nil {
			return ""
		}
		return strings.TrimSpace(out)
	}
	builderXZ := version(b.spec(d, false, false))
	native := b.spec(d, true, true)
	b.fast.archiveSpec(&native)
	crossXZ := version(native)
	b.logf("xz: builder %q, cross image %q", builderXZ, crossXZ)
	if builderXZ != "" && builderXZ == crossXZ {
		b.fast.nativeXZ = true
		return
	}
	b.emit(Event{Kind: EventNote, Message: fmt.Sprintf("src/linux.tar.xz is compressed by the builder's xz, emulated (slow): the cross image's xz (%q) is not the builder's (%q)", crossXZ, builderXZ)})
}

// archiveSpec makes spec, the source archive's read-only sandbox, run in
// the cross image natively: the archive is lkbuild's own tar and xz, whose
// version checkXZ compared.
func (f *FastPath) archiveSpec(spec *sandbox.Spec) {
	spec.Rootfs, spec.Emulator = f.root, nil
}

// nativeSummary says which of the builder's programs run natively.
func nativeSummary(native, left []string) string {
	s := "no other program native"
	if n := len(native); n > 0 {
		s = fmt.Sprintf("%d of the builder's programs native at its package versions (%s)", n, strings.Join(native[:min(n, 4)], ", "))
		if n > 4 {
			s = strings.TrimSuffix(s, ")") + ", ...)"
		}
	}
	if len(left) > 0 {
		s += ", emulated: " + strings.Join(left, "; ")
	}
	return s
}
