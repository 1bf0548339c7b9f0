package e2e

import (
	"bytes"
	"crypto/sha256"
	"debug/elf"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/lkbuild/lkbuild/internal/boottest"
	"github.com/lkbuild/lkbuild/internal/testenv"
)

// foreignArches are the arches the foreign-arch tests build, with the
// kernel's ARCH and the variables naming their builder images.
var foreignArches = []struct{ arch, make, builderVar string }{
	{"aarch64", "arm64", "LKBUILD_E2E_BUILDER_ARM64"},
	{"riscv64", "riscv", "LKBUILD_E2E_BUILDER_RISCV64"},
}

// identityScript configures and compiles a slice of the kernel, enough to
// exercise every kind of tool the fast path replaces: the defconfig's
// compiler probes (the .config records the compiler), the host programs
// (fixdep, conf, modpost, ... built by the target's compiler, run
// emulated), the generated headers and the vdso (compiled, assembled and
// linked), a few dozen kernel objects, and headers_install (sh, sed, grep
// and sort per header, native on the fast path, with the target's
// unifdef). It writes the ELF machine of /bin/sh and make (od: bytes 18
// and 19) to /out.
const identityScript = `set -e
command -v gcc >/out/gcc
od -An -tx1 -j18 -N2 /bin/sh >/out/sh-machine
od -An -tx1 -j18 -N2 "$(command -v make)" >/out/make-machine
make -s -C /src O=/build defconfig
make -s -C /src O=/build -j2 prepare
make -s -C /src O=/build -j2 init/ lib/sort.o lib/string.o lib/bsearch.o lib/kasprintf.o lib/cmdline.o kernel/panic.o kernel/exit.o
make -s -C /src O=/build -j2 INSTALL_HDR_PATH=/build/hdr headers_install
`

// identityEnv is the environment of identityScript, besides ARCH.
var identityEnv = []string{"LC_ALL=C", "KBUILD_BUILD_TIMESTAMP=Thu Jan  1 00:00:00 UTC 1970",
	"KBUILD_BUILD_USER=lkbuild", "KBUILD_BUILD_HOST=lkbuild", "SOURCE_DATE_EPOCH=0"}

// TestFastPathIdentity builds the same slice of the kernel twice for each
// foreign arch, in the same builder: fully emulated, and with the cross
// compilers of the fast path running natively, and compares every byte of
// the two object trees. This is the fast path's contract at a scale CI
// can afford (the whole-image comparison is in bench/foreign.sh).
//
// The emulated build is the slow reference (8-9 minutes an arch): with
// $LKBUILD_E2E_RESULTS set (scripts/test.sh sets it), its digests are kept
// there, keyed by everything that makes it (identityKey), and a later run
// with the same inputs compares its fast-path build with them.
func TestFastPathIdentity(t *testing.T) {
	if testing.Short() {
		t.Skip("compiles parts of two kernels twice")
	}
	e := setupForeign(t)
	src := e.kernelSource(t)
	for _, a := range foreignArches {
		t.Run(a.arch, func(t *testing.T) {
			builder := testenv.Getenv(t, a.builderVar, "run scripts/fixtures/e2e.sh and export its output")
			trees := map[string]string{}
			took := map[string]time.Duration{}
			modes := []string{"emulated", "fast"}
			key := identityKey(t, a.arch, builder)
			ref, cached := loadIdentity(t, key)
			if cached {
				modes = modes[1:]
				took["emulated"] = time.Duration(ref.Seconds * float64(time.Second))
				t.Logf("%s: the emulated reference comes from %s (%s): made %s, emulated in %s",
					a.arch, os.Getenv(resultsVar), key[:16], ref.Made, took["emulated"].Round(time.Second))
			}
			for _, mode := range modes {
				build, out := filepath.Join(e.work, a.arch+"-"+mode), filepath.Join(e.work, a.arch+"-"+mode+"-out")
				for _, d := range []string{build, out} {
					if err := os.MkdirAll(d, 0o755); err != nil {
						t.Fatal(err)
					}
				}
				args := []string{"--cache-dir", e.cache, "run", "--arch", a.arch, "--builder-image", builder,
					"--bind", src + ":/src:ro", "--bind", build + ":/build", "--bind", out + ":/out", "--env", "ARCH=" + a.make}
				for _, kv := range identityEnv {
					args = append(args, "--env", kv)
				}
				if mode == "fast" {
					args = append(args, "--cross-image", e.cross)
				}
				args = append(args, "--", "/bin/sh", "-c", identityScript)
				began := time.Now()
				cmd := exec.Command(e.bin, args...)
				var stderr bytes.Buffer
				cmd.Stdout, cmd.Stderr = &stderr, &stderr
				if err := cmd.Run(); err != nil {
					t.Fatalf("%s build: %v\n%s", mode, err, tailString(stderr.String(), 40))
				}
				took[mode] = time.Since(began)
				trees[mode] = build
				gcc, _ := os.ReadFile(filepath.Join(out, "gcc"))
				want := "/usr/bin/gcc"
				if mode == "fast" {
					want = "/usr/libexec/lkbuild-fastpath/gcc"
				}
				if strings.TrimSpace(string(gcc)) != want {
					t.Fatalf("%s build: gcc is %q, want %s", mode, gcc, want)
				}
				// The fast path runs the builder's make and shell natively
				// (x86_64: e_machine 0x3e), the emulated build the target's.
				for _, prog := range []string{"sh", "make"} {
					got, _ := os.ReadFile(filepath.Join(out, prog+"-machine"))
					f := strings.Fields(string(got))
					native := len(f) > 0 && f[0] == "3e"
					if native != (mode == "fast") {
						t.Fatalf("%s build: %s has e_machine %q: native %v, want %v", mode, prog, strings.TrimSpace(string(got)), native, mode == "fast")
					}
				}
			}
			emu := ref.Digests
			if !cached {
				emu = treeDigests(t, trees["emulated"])
			}
			fast := treeDigests(t, trees["fast"])
			var differ []string
			for name, d := range emu {
				if fast[name] != d {
					differ = append(differ, name)
				}
			}
			for name := range fast {
				if _, ok := emu[name]; !ok {
					differ = append(differ, name+" (only in the fast build)")
				}
			}
			sort.Strings(differ)
			objects := 0
			for name := range emu {
				if strings.HasSuffix(name, ".o") {
					objects++
				}
			}
			t.Logf("%s: %d files (%d objects) compared; emulated %s, fast path %s (%.1fx)",
				a.arch, len(emu), objects, took["emulated"].Round(time.Second), took["fast"].Round(time.Second),
				took["emulated"].Seconds()/took["fast"].Seconds())
			if len(differ) > 0 {
				t.Errorf("%d of %d files differ between the emulated and the fast-path build: %s", len(differ), len(emu), strings.Join(differ[:min(len(differ), 30)], ", "))
			}
			if objects < 40 {
				t.Errorf("only %d objects built: the comparison proves little", objects)
			}
			// Kept only when it proved what it is for: a reference that
			// failed would fail every later run until an input changed.
			if !cached && !t.Failed() {
				saveIdentity(t, key, identityResult{Digests: emu, Seconds: took["emulated"].Seconds(), Made: time.Now().UTC().Format(time.RFC3339)})
			}
		})
	}
}

// foreignEnv is what the foreign-arch tests run against.
type foreignEnv struct {
	bin, cross, work, cache string
}

func setupForeign(t *testing.T) *foreignEnv {
	t.Helper()
	e := setup(t)
	return &foreignEnv{
		bin:   e.bin,
		cross: testenv.Getenv(t, "LKBUILD_E2E_CROSS", "run scripts/fixtures/e2e.sh and export its output"),
		work:  e.work,
		cache: filepath.Join(e.work, "cache"),
	}
}

// kernelSource unpacks the Debian kernel source the fixtures use.
func (e *foreignEnv) kernelSource(t *testing.T) string {
	t.Helper()
	tarball := "/usr/src/linux-source-6.12.tar.xz"
	if _, err := os.Stat(tarball); err != nil {
		testenv.Need(t, false, tarball+" is missing: install linux-source-6.12 (scripts/deps.sh)")
	}
	dir := filepath.Join(e.work, "src")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	run(t, "", "tar", "-C", dir, "--strip-components=1", "-xJf", tarball)
	return dir
}

// treeDigests maps every file, link and directory under root to a digest
// of its type, mode and contents (or link target).
func treeDigests(t *testing.T, root string) map[string]string {
	t.Helper()
	m := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		fi, err := d.Info()
		if err != nil {
			return err
		}
		h := sha256.New()
		fmt.Fprintf(h, "%v\n", fi.Mode())
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			h.Write([]byte(target))
		case fi.Mode().IsRegular():
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			h.Write(data)
		}
		m[rel] = fmt.Sprintf("%x", h.Sum(nil))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestForeignBuild builds the test kernel for each foreign arch on the
// fast path (the arch's trixie builder, the cross image's compilers),
// pushes it next to the other arches' images, and boots it under that
// arch's qemu-system with a module from kernel.tar. kernel-dev.tar must
// hold host tools for the target, as a fully emulated build's does.
// LKBUILD_E2E_FOREIGN_ARCHES picks the arches: aarch64 by default (one
// full foreign build is what CI affords), "aarch64 riscv64" for both.
func TestForeignBuild(t *testing.T) {
	if testing.Short() {
		t.Skip("builds kernels")
	}
	base := setup(t)
	e := setupForeign(t)
	kdir := base.checkout(t, nil)
	org := base.registry + "/e2e-foreign"
	want := os.Getenv("LKBUILD_E2E_FOREIGN_ARCHES")
	if want == "" {
		want = "aarch64"
	}
	for _, a := range foreignArches {
		if !slices.Contains(strings.Fields(want), a.arch) {
			continue
		}
		t.Run(a.arch, func(t *testing.T) {
			builder := testenv.Getenv(t, a.builderVar, "run scripts/fixtures/e2e.sh and export its output")
			busybox := testenv.Getenv(t, a.builderVar+"_BUSYBOX", "run scripts/fixtures/e2e.sh and export its output")
			cache, out := filepath.Join(e.work, "cache-"+a.arch), filepath.Join(e.work, "oci-"+a.arch)
			r := base.lkbuild(t, nil, "--cache-dir", cache, "build", "--json",
				"--kernel-dir", kdir, "--series", series, "--arch", a.arch,
				"--builder-image", builder, "--cross-image", e.cross, "--source-mirror", base.mirror,
				"--output", out, "--org", org, "--insecure-registry", "--push")
			if r.code != 0 {
				t.Fatalf("build exited %d after %s\n%s", r.code, r.elapsed.Round(time.Second), tailString(r.stderr+r.stdout, 40))
			}
			fast := false
			for _, ev := range r.events {
				if ev.Kind == "note" && strings.Contains(ev.Message, "fast path") {
					fast = true
				}
			}
			if !fast {
				t.Errorf("no event says the fast path built it")
			}
			t.Logf("%s: fast-path build in %s", a.arch, r.elapsed.Round(time.Second))
			tags := strings.Fields(run(t, "", base.bin, "tags", "--kernel-dir", kdir, "--series", series, "--arch", a.arch, "--org", org))
			img := base.unpack(t, tags[0])
			if img.config.Architecture != map[string]string{"aarch64": "arm64", "riscv64": "riscv64"}[a.arch] {
				t.Errorf("image architecture %q", img.config.Architecture)
			}
			index := base.skopeo(t, "inspect", "--tls-verify=false", "--raw", "docker://"+tags[1])
			if !strings.Contains(index, img.config.Architecture) {
				t.Errorf("index %s lacks %s: %s", tags[1], img.config.Architecture, index)
			}
			// The kernel's host tools in kernel-dev.tar run on the target.
			dev := filepath.Join(t.TempDir(), "dev")
			os.MkdirAll(dev, 0o755)
			run(t, "", "tar", "-C", dev, "-xf", filepath.Join(img.root, "kernel-dev.tar"))
			fixdep := filepath.Join(dev, "usr/src/linux-headers-"+release, "scripts/basic/fixdep")
			ef, err := elf.Open(fixdep)
			if err != nil {
				t.Fatalf("kernel-dev.tar's fixdep: %v", err)
			}
			machine := ef.Machine
			ef.Close()
			if wantM := map[string]elf.Machine{"aarch64": elf.EM_AARCH64, "riscv64": elf.EM_RISCV}[a.arch]; machine != wantM {
				t.Errorf("kernel-dev.tar's fixdep is for %s, want %s", machine, wantM)
			}
			res := boot(t, img, a.arch, busybox, boottest.Module{Path: "kernel/lib/crc7.ko"}, boottest.Module{Path: "kernel/lib/crc8.ko"})
			checkConsole(t, res, []string{"crc7", "crc8"})
		})
	}
}

// resultsVar names the directory where e2e tests keep results they may
// reuse (outside the clone, the test user's own); unset, nothing is kept.
const resultsVar = "LKBUILD_E2E_RESULTS"

// identityResult is an emulated reference build of TestFastPathIdentity.
type identityResult struct {
	Digests map[string]string
	Seconds float64
	Made    string
}

// identityKey hashes every input of the emulated reference build of
// arch in builder: the script and its environment, the builder image
// (its layout's index names it by digest), the kernel source, the QEMU
// that runs it, and lkbuild's code on its path (the sandbox, the
// toolchain and emulation, the run command, builder.Emulate, the modules
// in go.sum). A change to any of them makes a new reference.
func identityKey(t *testing.T, arch, builder string) string {
	t.Helper()
	h := sha256.New()
	fmt.Fprintf(h, "identity-v1\n%s\n%s\n%q\n", arch, identityScript, identityEnv)
	hashFile := func(name string) {
		f, err := os.Open(name)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		fmt.Fprintf(h, "%s\n", filepath.Base(name))
		if _, err := io.Copy(h, f); err != nil {
			t.Fatal(err)
		}
	}
	layout, ok := strings.CutPrefix(builder, "oci:")
	if i := strings.LastIndex(layout, ":"); ok && i > 0 {
		hashFile(filepath.Join(layout[:i], "index.json"))
	} else {
		fmt.Fprintf(h, "%s\n", builder) // a registry reference: fixtures use layouts
	}
	hashFile("/usr/src/linux-source-6.12.tar.xz")
	qemu := map[string]string{"aarch64": "qemu-aarch64", "riscv64": "qemu-riscv64"}[arch]
	for _, name := range []string{qemu + "-static", qemu} {
		if p, err := exec.LookPath(name); err == nil {
			hashFile(p)
			break
		}
	}
	root := repoRoot(t)
	var code []string
	for _, pattern := range []string{"sandbox/*.go", "toolchain/*.go", "cmd/lkbuild/run_cmd.go", "builder/emulation.go", "go.sum"} {
		m, err := filepath.Glob(filepath.Join(root, pattern))
		if err != nil {
			t.Fatal(err)
		}
		code = append(code, m...)
	}
	sort.Strings(code)
	for _, f := range code {
		if !strings.HasSuffix(f, "_test.go") {
			hashFile(f)
		}
	}
	return fmt.Sprintf("%x", h.Sum(nil))
}

// loadIdentity reads the reference kept under key, if any.
func loadIdentity(t *testing.T, key string) (identityResult, bool) {
	t.Helper()
	dir := os.Getenv(resultsVar)
	if dir == "" {
		return identityResult{}, false
	}
	data, err := os.ReadFile(filepath.Join(dir, "identity-"+key+".json"))
	if errors.Is(err, fs.ErrNotExist) {
		return identityResult{}, false
	}
	if err != nil {
		t.Fatal(err)
	}
	var r identityResult
	if err := json.Unmarshal(data, &r); err != nil || len(r.Digests) == 0 {
		t.Logf("the kept reference %s is unreadable (%v): building it again", key[:16], err)
		return identityResult{}, false
	}
	return r, true
}

// saveIdentity keeps r under key, written whole or not at all.
func saveIdentity(t *testing.T, key string, r identityResult) {
	t.Helper()
	dir := os.Getenv(resultsVar)
	if dir == "" {
		return
	}
	data, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	tmp, err := os.CreateTemp(dir, ".identity-*")
	if err != nil {
		t.Fatal(err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := tmp.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp.Name(), filepath.Join(dir, "identity-"+key+".json")); err != nil {
		t.Fatal(err)
	}
}
