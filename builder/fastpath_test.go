package builder

import (
	"context"
	"encoding/binary"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/lkbuild/lkbuild/kernel"
	"github.com/lkbuild/lkbuild/sandbox"
	"github.com/lkbuild/lkbuild/toolchain"
)

// fakeCrossImage is the cross image the fast-path tests name.
const fakeCrossImage = "registry.example/cross:1"

// elfWithInterp is a minimal x86_64 ELF executable whose only program
// header names interp as its loader.
func elfWithInterp(interp string) []byte {
	const ehsize, phsize = 64, 56
	b := make([]byte, ehsize+phsize)
	copy(b, "\x7fELF\x02\x01\x01")
	le := binary.LittleEndian
	le.PutUint16(b[16:], 3)  // ET_DYN
	le.PutUint16(b[18:], 62) // EM_X86_64
	le.PutUint32(b[20:], 1)
	le.PutUint64(b[32:], ehsize) // e_phoff
	le.PutUint16(b[52:], ehsize)
	le.PutUint16(b[54:], phsize)
	le.PutUint16(b[56:], 1) // e_phnum
	ph := b[ehsize:]
	le.PutUint32(ph[0:], 3) // PT_INTERP
	le.PutUint64(ph[8:], uint64(len(b)))
	le.PutUint64(ph[32:], uint64(len(interp)+1))
	le.PutUint64(ph[40:], uint64(len(interp)+1))
	return append(b, append([]byte(interp), 0)...)
}

// fakeCrossTree lays out Debian's cross toolchain for triplet, as an
// amd64 image holds it.
func fakeCrossTree(t *testing.T, triplet string) string {
	t.Helper()
	root := t.TempDir()
	for _, d := range []string{"usr/bin", "usr/lib/gcc-cross/" + triplet + "/14", "usr/libexec/gcc-cross/" + triplet + "/14",
		"usr/" + triplet + "/bin", "usr/lib/x86_64-linux-gnu", "usr/lib64"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	os.Symlink("usr/lib64", filepath.Join(root, "lib64"))
	os.WriteFile(filepath.Join(root, "usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"), []byte("loader"), 0o755)
	os.Symlink("../lib/x86_64-linux-gnu/ld-linux-x86-64.so.2", filepath.Join(root, "usr/lib64/ld-linux-x86-64.so.2"))
	gcc := elfWithInterp("/lib64/ld-linux-x86-64.so.2")
	// Only the versioned driver, as Debian's gcc-14-<triplet> has it.
	os.WriteFile(filepath.Join(root, "usr/bin", triplet+"-gcc-14"), gcc, 0o755)
	os.WriteFile(filepath.Join(root, "usr/bin", triplet+"-cpp-14"), gcc, 0o755)
	for _, tool := range []string{"ld", "ld.bfd", "as", "objcopy"} {
		os.WriteFile(filepath.Join(root, "usr/bin", triplet+"-"+tool), gcc, 0o755)
	}
	os.WriteFile(filepath.Join(root, "usr/bin/gcc"), gcc, 0o755) // the image's own, not bound
	return root
}

func TestNewFastPath(t *testing.T) {
	arm64, host := arch(t, "aarch64"), arch(t, "x86_64")
	root := fakeCrossTree(t, "aarch64-linux-gnu")
	links := filepath.Join(t.TempDir(), "links")
	f, err := NewFastPath(fakeCrossImage, root, arm64, host, links)
	if err != nil {
		t.Fatal(err)
	}
	var targets []string
	for _, m := range f.mounts {
		if !m.ReadOnly {
			t.Errorf("mount %+v is writable", m)
		}
		if !strings.HasPrefix(m.Source, root) && m.Source != links {
			t.Errorf("mount %+v comes from outside the cross tree", m)
		}
		targets = append(targets, m.Target)
	}
	for _, want := range []string{"/usr/bin/aarch64-linux-gnu-gcc-14", "/usr/bin/aarch64-linux-gnu-ld", "/usr/lib/gcc-cross", "/usr/libexec/gcc-cross",
		"/usr/aarch64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib64/ld-linux-x86-64.so.2", fastBin} {
		if !slices.Contains(targets, want) {
			t.Errorf("no mount at %s: %v", want, targets)
		}
	}
	if slices.Contains(targets, "/usr/bin/gcc") {
		t.Error("the cross image's own gcc is bound over the builder's")
	}
	for name, want := range map[string]string{"gcc": "/usr/bin/aarch64-linux-gnu-gcc-14", "cc": "/usr/bin/aarch64-linux-gnu-gcc-14", "cpp": "/usr/bin/aarch64-linux-gnu-cpp-14", "ld": "/usr/bin/aarch64-linux-gnu-ld"} {
		if got, err := os.Readlink(filepath.Join(links, name)); err != nil || got != want {
			t.Errorf("link %s -> %q (%v), want %s", name, got, err, want)
		}
	}
	if _, err := os.Lstat(filepath.Join(links, "nm")); err == nil {
		t.Error("a link to a tool the image lacks")
	}
	spec := sandboxSpec([]string{"PATH=/usr/bin:/bin", "ARCH=arm64"})
	f.Apply(&spec)
	if !slices.Equal(spec.Env, []string{"PATH=" + fastBin + ":/usr/bin:/bin", "ARCH=arm64", gccExecPrefix}) {
		t.Errorf("env %q", spec.Env)
	}

	// An image without this arch's toolchain is refused, naming what to
	// install.
	_, err = NewFastPath(fakeCrossImage, root, arch(t, "riscv64"), host, filepath.Join(t.TempDir(), "l"))
	if err == nil || !strings.Contains(err.Error(), "gcc-14-riscv64-linux-gnu") || !strings.Contains(err.Error(), fakeCrossImage) {
		t.Errorf("no riscv64 cross tools: %v", err)
	}
}

func sandboxSpec(env []string) sandbox.Spec { return sandbox.Spec{Env: env} }

func arch(t *testing.T, name string) kernel.Arch {
	t.Helper()
	a, err := kernel.ParseArch(name)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// TestBuildFastPath runs a foreign-arch build with a cross image through
// the fake sandbox: the toolchains are compared before any step, a match
// gives every command the cross tools and an image identical to the fully
// emulated build's, a mismatch refuses the build naming both versions.
func TestBuildFastPath(t *testing.T) {
	const native = "gcc (Debian 14.2.0-19) 14.2.0\nGNU assembler (GNU Binutils for Debian) 2.44\nGNU ld (GNU Binutils for Debian) 2.44\nx86_64-linux-gnu\n"
	var makes []sandbox.Spec // the compile steps' sandboxes
	nativeActions := 0       // actions run in the cross image
	build := func(t *testing.T, cross string, crossImage string) (*fakeWorld, *fakeBuild, *BuildResult, error) {
		makes, nativeActions = nil, 0
		w := newFakeWorld(t)
		w.crossDir = fakeCrossTree(t, "x86_64-linux-gnu")
		w.fail = func(spec sandbox.Spec) (string, error) {
			if len(spec.Args) == 3 && spec.Args[2] == toolchainProbe {
				if slices.Contains(spec.Env, gccExecPrefix) {
					_, err := spec.Stdout.Write([]byte(cross))
					return "", err
				}
				_, err := spec.Stdout.Write([]byte(native))
				return "", err
			}
			if len(spec.Args) == 3 && spec.Args[2] == xzProbe {
				_, err := spec.Stdout.Write([]byte("xz (XZ Utils) 5.8.1\n"))
				return "", err
			}
			if len(spec.Args) == 2 && spec.Args[1] == StepArg && spec.Rootfs == w.crossDir {
				nativeActions++
			}
			if isCompile(spec) {
				makes = append(makes, spec)
			}
			return "", nil
		}
		fb := newFakeBuild(t, t.TempDir(), Request{})
		fb.env.Emulation = &toolchain.Emulation{Env: []string{"QEMU_CPU=max"}}
		fb.env.CrossImage = crossImage
		res, err := fb.run(w)
		return w, fb, res, err
	}
	_, _, emulated, err := build(t, native, "")
	if err != nil {
		t.Fatal(err)
	}
	w, _, fast, err := build(t, native, fakeCrossImage)
	if err != nil {
		t.Fatal(err)
	}
	if len(makes) != 1 {
		t.Fatalf("%d compile steps, want 1", len(makes))
	}
	if nativeActions != 1 {
		t.Errorf("%d actions ran in the cross image, want 1 (the source archive, its xz native)", nativeActions)
	}
	if env := makes[0].Env; !slices.Contains(env, gccExecPrefix) || !slices.ContainsFunc(env, func(kv string) bool { return strings.HasPrefix(kv, "PATH="+fastBin+":") }) {
		t.Errorf("the compile step's environment lacks the fast path: %q", env)
	}
	if !slices.ContainsFunc(makes[0].Mounts, func(m sandbox.Mount) bool { return m.Target == "/usr/lib/gcc-cross" && m.ReadOnly }) {
		t.Errorf("the compile step has no cross toolchain: %+v", makes[0].Mounts)
	}
	if fast.Digest != emulated.Digest {
		t.Errorf("fast path image %s, fully emulated %s: the image must not say which path made it", fast.Digest, emulated.Digest)
	}
	if p := fast.Provenance; p.Toolchain != ToolchainFastPath || p.CrossImage != fakeCrossImage || p.CrossDigest == "" {
		t.Errorf("fast path provenance %+v", p)
	}
	if p := emulated.Provenance; p.Toolchain != ToolchainEmulated || p.CrossImage != "" {
		t.Errorf("emulated provenance %+v", p)
	}
	if !slices.ContainsFunc(w.steps, func(s string) bool { return strings.HasPrefix(s, "make -j") }) {
		t.Errorf("no compile step ran: %q", w.steps)
	}

	_, fb, _, err := build(t, strings.Replace(native, "14.2.0-19", "14.2.0-19cross1", 1), fakeCrossImage)
	var mm *ToolchainMismatchError
	if !errors.As(err, &mm) {
		t.Fatalf("mismatched toolchains: %v, want a ToolchainMismatchError", err)
	}
	for _, want := range []string{"14.2.0-19)", "14.2.0-19cross1", fakeCrossImage, "--no-fast-path"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not say %q:\n%v", want, err)
		}
	}
	fb.checkNothingLeft(t)
}

// TestBuildCross: --cross pulls a builder for the host's arch, runs no
// emulation, passes CROSS_COMPILE, leaves host programs out of
// kernel-dev.tar, checks the config without the toolchain lines, and says
// so in the image.
func TestBuildCross(t *testing.T) {
	w := newFakeWorld(t)
	var makeEnv []string
	var dev, check bool
	w.fail = func(spec sandbox.Spec) (string, error) {
		if spec.Emulator != nil {
			t.Errorf("a --cross step is emulated: %q", spec.Args)
		}
		if isCompile(spec) {
			makeEnv = spec.Env
		}
		return "", nil
	}
	fb := newFakeBuild(t, t.TempDir(), Request{Arch: "riscv64", Cross: true})
	res, err := fb.run(w)
	if err != nil {
		t.Fatal(err)
	}
	for _, req := range w.requests {
		if req.Tar != nil && req.Tar.Dev {
			dev = req.Tar.Machine == arch(t, "riscv64").ELFMachine()
		}
		if req.Config != nil {
			check = req.Config.IgnoreToolchain
		}
	}
	host, _ := toolchain.HostArch()
	if !slices.Contains(w.steps, "rootfs "+fb.target.BuilderPull+" "+host.Uname) {
		t.Errorf("the builder was not pulled for %s: %q", host, w.steps)
	}
	if !slices.Contains(makeEnv, "CROSS_COMPILE=riscv64-linux-gnu-") {
		t.Errorf("compile env %q lacks CROSS_COMPILE", makeEnv)
	}
	if !dev || !check {
		t.Errorf("kernel-dev.tar leaves out host programs: %v; config check ignores the toolchain: %v", dev, check)
	}
	if res.Provenance.Toolchain != ToolchainCross || res.Provenance.Annotations()[AnnotationToolchain] != ToolchainCross {
		t.Errorf("provenance %+v", res.Provenance)
	}
	img, _, err := fb.env.Output.ImageByName(fb.target.Ref)
	if err != nil {
		t.Fatal(err)
	}
	m, err := img.Manifest()
	if err != nil || m.Annotations[AnnotationToolchain] != ToolchainCross {
		t.Errorf("manifest annotations %v (%v), want %s=cross", m.Annotations, err, AnnotationToolchain)
	}
	if _, err := Resolve(context.Background(), Request{KernelDir: fb.target.KernelDir, Query: kernel.Query{Series: "6.12.x"}, Arch: host.Uname, Cross: true}); err == nil {
		t.Error("--cross for the host's own arch was accepted")
	}

	// A builder without the cross compiler fails before the first step,
	// saying what to install.
	w = newFakeWorld(t)
	w.fail = func(spec sandbox.Spec) (string, error) {
		if len(spec.Args) == 3 && strings.HasPrefix(spec.Args[2], "command -v ") {
			return "", &sandbox.ExitError{Code: 127}
		}
		return "", nil
	}
	fb = newFakeBuild(t, t.TempDir(), Request{Arch: "riscv64", Cross: true})
	_, err = fb.run(w)
	if err == nil || !strings.Contains(err.Error(), "riscv64-linux-gnu-gcc") || !strings.Contains(err.Error(), "gcc-riscv64-linux-gnu") {
		t.Errorf("a builder without the cross gcc: %v", err)
	}
	if slices.ContainsFunc(w.steps, func(s string) bool { return strings.HasPrefix(s, "make") }) {
		t.Errorf("steps ran: %q", w.steps)
	}
	fb.checkNothingLeft(t)
}

// dpkgTree writes a Debian package database into root: each package with
// its version and the files it lists. Programs (in /usr/bin) are copies of
// the host's grep, a real ELF program linking libpcre2-8.so.0 and
// libc.so.6; other files are placeholders.
func dpkgTree(t *testing.T, root string, pkgs map[string]string, files map[string][]string) {
	t.Helper()
	grep, err := os.ReadFile("/usr/bin/grep")
	if err != nil {
		t.Fatalf("the host's grep (Debian's essential package grep): %v", err)
	}
	info := filepath.Join(root, "var/lib/dpkg/info")
	if err := os.MkdirAll(info, 0o755); err != nil {
		t.Fatal(err)
	}
	var status strings.Builder
	for name, version := range pkgs {
		status.WriteString("Package: " + name + "\nStatus: install ok installed\nArchitecture: amd64\nVersion: " + version + "\nDescription: x\n two lines\n\n")
		for _, f := range files[name] {
			p := filepath.Join(root, f)
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			data := []byte(name)
			if strings.HasPrefix(f, "/usr/bin/") {
				data = grep
			}
			if err := os.WriteFile(p, data, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.WriteFile(filepath.Join(info, name+".list"), []byte(strings.Join(files[name], "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(root, "var/lib/dpkg/status"), []byte(status.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestNativeTools(t *testing.T) {
	files := map[string][]string{
		"make":         {"/usr/bin/make"},
		"dash":         {"/usr/bin/dash"},
		"coreutils":    {"/usr/bin/rm", "/usr/bin/mv", "/usr/bin/uname"},
		"sed":          {"/usr/bin/sed"},
		"grep":         {"/usr/bin/grep"},
		"bash":         {"/usr/bin/bash"},
		"libc6":        {"/usr/lib/x86_64-linux-gnu/libc.so.6"},
		"libpcre2-8-0": {"/usr/lib/x86_64-linux-gnu/libpcre2-8.so.0"},
		// A cross toolchain's target libc is not the image's own.
		"libc6-arm64-cross": {"/usr/aarch64-linux-gnu/lib/libc.so.6"},
	}
	same := map[string]string{"make": "4.4.1-2", "dash": "0.5.12-12", "coreutils": "9.7-3", "sed": "4.9-2", "grep": "3.11-4", "bash": "5.2.37-2",
		"libc6": "2.41-12", "libpcre2-8-0": "10.45-1", "libc6-arm64-cross": "2.41-6cross1"}
	with := func(changes map[string]string) map[string]string {
		m := maps.Clone(same)
		for k, v := range changes {
			if v == "" {
				delete(m, k)
			} else {
				m[k] = v
			}
		}
		return m
	}
	all := []string{"make", "dash", "mv", "rm", "sed", "grep"}
	tests := []struct {
		name      string
		cross     map[string]string
		crossEdit func(root string)
		taken     []string
		left      string
	}{
		{name: "same versions", cross: with(map[string]string{"libc6-arm64-cross": "2.40-1cross1"}), taken: all},
		{name: "another sed", cross: with(map[string]string{"sed": "4.8-1"}),
			taken: []string{"make", "dash", "mv", "rm", "grep"}, left: "sed (builder 4.9-2, cross image 4.8-1)"},
		{name: "a binNMU is another version", cross: with(map[string]string{"grep": "3.11-4+b1"}),
			taken: []string{"make", "dash", "mv", "rm", "sed"}, left: "grep (builder 3.11-4, cross image 3.11-4+b1)"},
		{name: "no make in the cross image", cross: with(map[string]string{"make": ""}),
			taken: []string{"dash", "mv", "rm", "sed", "grep"}, left: "make (not in the cross image)"},
		{name: "another library", cross: with(map[string]string{"libpcre2-8-0": "10.42-4"}),
			left: "make (libpcre2-8.so.0: builder libpcre2-8-0 10.45-1, cross image libpcre2-8-0 10.42-4)"},
		{name: "a library of no package", cross: with(map[string]string{"libpcre2-8-0": ""}),
			left: "sed (libpcre2-8.so.0: builder libpcre2-8-0 10.45-1, cross image none)"},
		{name: "a program another package's file", cross: same, crossEdit: func(root string) {
			// The cross image's grep is not the file dpkg lists.
			os.WriteFile(filepath.Join(root, "var/lib/dpkg/info/grep.list"), []byte("/usr/bin/egrep\n"), 0o644)
		}, taken: []string{"make", "dash", "mv", "rm", "sed"}},
		{name: "a symlink out of the tree", cross: same, crossEdit: func(root string) {
			os.Remove(filepath.Join(root, "usr/bin/sed"))
			os.Symlink("../../../../../../etc/passwd", filepath.Join(root, "usr/bin/sed"))
		}, taken: []string{"make", "dash", "mv", "rm", "grep"}},
		{name: "not a program", cross: same, crossEdit: func(root string) {
			os.WriteFile(filepath.Join(root, "usr/bin/rm"), []byte("#!/bin/sh\n"), 0o755)
		}, taken: []string{"make", "dash", "mv", "sed", "grep"}, left: "rm (the cross image's is not an ELF program: EOF)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			builder, cross := t.TempDir(), t.TempDir()
			dpkgTree(t, builder, same, files)
			dpkgTree(t, cross, tt.cross, files)
			if tt.crossEdit != nil {
				tt.crossEdit(cross)
			}
			f := &FastPath{image: fakeCrossImage, root: cross}
			taken, left, err := f.NativeTools(builder)
			if err != nil {
				t.Fatal(err)
			}
			slices.Sort(taken)
			want := slices.Clone(tt.taken)
			slices.Sort(want)
			if !slices.Equal(taken, want) {
				t.Errorf("taken %v, want %v", taken, want)
			}
			if tt.left != "" && !slices.Contains(left, tt.left) {
				t.Errorf("left %q, want %q in it", left, tt.left)
			}
			for _, m := range f.mounts {
				if !m.ReadOnly || !strings.HasPrefix(m.Source, cross+"/") || !strings.HasPrefix(m.Target, "/usr/bin/") {
					t.Errorf("mount %+v: want a read-only bind from the cross tree to /usr/bin", m)
				}
				if m.Target == "/usr/bin/uname" || m.Target == "/usr/bin/bash" {
					t.Errorf("%s is bound: it names the machine", m.Target)
				}
			}
		})
	}
}

func TestNativeToolsNoDpkg(t *testing.T) {
	f := &FastPath{image: fakeCrossImage, root: t.TempDir()}
	taken, left, err := f.NativeTools(t.TempDir())
	if err != nil || len(taken) != 0 || len(f.mounts) != 0 {
		t.Fatalf("taken %v, mounts %v, err %v: want nothing native and no error", taken, f.mounts, err)
	}
	if len(left) != 1 || !strings.Contains(left[0], "no dpkg database") {
		t.Errorf("left %q, want it to say the builder has no dpkg database", left)
	}
}

func TestNativeToolsHugeStatus(t *testing.T) {
	builder, cross := t.TempDir(), t.TempDir()
	files := map[string][]string{"make": {"/usr/bin/make"}}
	dpkgTree(t, builder, map[string]string{"make": "4.4.1-2"}, files)
	dpkgTree(t, cross, map[string]string{"make": "4.4.1-2"}, files)
	// A hostile cross image's status file of 1 TiB (sparse).
	if err := os.Truncate(filepath.Join(cross, "var/lib/dpkg/status"), 1<<40); err != nil {
		t.Fatal(err)
	}
	f := &FastPath{image: fakeCrossImage, root: cross}
	if _, _, err := f.NativeTools(builder); err == nil || !strings.Contains(err.Error(), "at most 64 MiB") {
		t.Fatalf("err %v, want the status file refused", err)
	}
}
