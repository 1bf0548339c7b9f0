// Package e2e builds a real LinuxKit kernel image with the lkbuild binary, as
// an unprivileged user would, and checks everything about it: the files and
// labels (read back with skopeo and by unpacking the layer), the tags and
// indexes in a real registry with auth and in the OCI layout, a boot under
// qemu-system-x86_64 with a module from kernel.tar and an out-of-tree module
// built against kernel-dev.tar in the -builder image, the -dbg kernel, an
// incremental build (which TestVerifyElsewhere rebuilds from scratch, for
// reproducibility), and the failures a user can cause (a patch that does
// not apply, a config that is not final, a package the builder lacks, a
// compile error, Ctrl-C, a registry that refuses the push), and lkbuild
// kconfig on the first build's cache (a command, the refresh of a stale
// config, the shell on a pty driven by tmux). The builder is
// of LinuxKit's shape (its own package repository in /mirror), named only
// in build-args.
//
// It needs the fixtures of scripts/fixtures/e2e.sh (LKBUILD_E2E_*), a
// registry from scripts/registry.sh (LKBUILD_TEST_REGISTRY*, DOCKER_CONFIG),
// skopeo, qemu-system-x86_64, and the lkbuild binary (LKBUILD_E2E_BIN, else
// it is built with go). make e2e runs it on its own, as scripts/test.sh does:
// as an unprivileged user.
package e2e

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/ulikunitz/xz"

	"github.com/lkbuild/lkbuild/internal/boottest"
	"github.com/lkbuild/lkbuild/internal/testenv"
)

// The kernel of testdata/kernel.
const (
	series  = "6.12.x"
	version = "6.12.117"
	release = version + "-linuxkit"
)

// env is what the suite runs against.
type env struct {
	bin                    string // the lkbuild binary
	builder, mirror, ucode string
	// mirrorBuilder is the builder of linuxkit/alpine's shape (no
	// toolchain, its own package repository); buildImage, when set, is
	// the BUILD_IMAGE checkouts name in build-args.
	mirrorBuilder, buildImage string
	keys                      string
	registry, user, password  string
	dockerConfig              string
	work                      string
}

func setup(t *testing.T) *env {
	t.Helper()
	e := &env{
		builder:       testenv.Getenv(t, "LKBUILD_E2E_BUILDER", "run scripts/fixtures/e2e.sh and export its output"),
		mirrorBuilder: testenv.Getenv(t, "LKBUILD_E2E_BUILDER_MIRROR", "run scripts/fixtures/e2e.sh"),
		mirror:        testenv.Getenv(t, "LKBUILD_E2E_MIRROR", "run scripts/fixtures/e2e.sh"),
		keys:          testenv.Getenv(t, "LKBUILD_E2E_KEYS", "run scripts/fixtures/e2e.sh"),
		ucode:         testenv.Getenv(t, "LKBUILD_E2E_UCODE", "run scripts/fixtures/e2e.sh"),
		registry:      testenv.Getenv(t, "LKBUILD_TEST_REGISTRY", "run scripts/registry.sh start ENVFILE"),
		user:          testenv.Getenv(t, "LKBUILD_TEST_REGISTRY_USER", "registry.sh sets it"),
		password:      testenv.Getenv(t, "LKBUILD_TEST_REGISTRY_PASSWORD", "registry.sh sets it"),
		dockerConfig:  testenv.Getenv(t, "DOCKER_CONFIG", "registry.sh writes a docker config"),
	}
	testenv.LookPath(t, "skopeo", "skopeo")
	testenv.LookPath(t, "qemu-system-x86_64", "qemu-system-x86")
	e.work = t.TempDir()
	if e.bin = os.Getenv("LKBUILD_E2E_BIN"); e.bin != "" {
		return e
	}
	goBin := testenv.LookPath(t, "go", "golang (Go 1.26)")
	e.bin = filepath.Join(e.work, "lkbuild")
	build := exec.Command(goBin, "build", "-trimpath", "-tags", "urfave_cli_no_docs", "-o", e.bin, "./cmd/lkbuild")
	build.Dir = repoRoot(t)
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build lkbuild: %v\n%s", err, out)
	}
	return e
}

// repoRoot is the tree the test runs in: go test and scripts/test.sh run a
// package's tests in its directory.
func repoRoot(t *testing.T) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Dir(wd)
}

// checkout makes a LinuxKit-style git checkout holding testdata/kernel as
// kernel/, with the mirror's key as common/keys.asc, committed at a fixed
// time; edit may change files before the commit.
func (e *env) checkout(t *testing.T, edit func(kernelDir string)) string {
	t.Helper()
	return e.checkoutAt(t, 1700000000, edit)
}

// checkoutAt is checkout with the commit at time epoch: the build's epoch.
func (e *env) checkoutAt(t *testing.T, epoch int64, edit func(kernelDir string)) string {
	t.Helper()
	repo := filepath.Join(t.TempDir(), "linuxkit")
	kdir := filepath.Join(repo, "kernel")
	if err := os.MkdirAll(repo, 0o755); err != nil {
		t.Fatal(err)
	}
	run(t, "", "cp", "-r", filepath.Join(repoRoot(t), "testdata", "kernel"), kdir)
	run(t, "", "cp", e.keys, filepath.Join(kdir, "common", "keys.asc"))
	if e.buildImage != "" {
		args := filepath.Join(kdir, series, "build-args")
		data, err := os.ReadFile(args)
		if err != nil {
			t.Fatal(err)
		}
		var lines []string
		for _, l := range strings.Split(strings.TrimSpace(string(data)), "\n") {
			if strings.HasPrefix(l, "BUILD_IMAGE=") {
				l = "BUILD_IMAGE=" + e.buildImage
			}
			lines = append(lines, l)
		}
		if err := os.WriteFile(args, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if edit != nil {
		edit(kdir)
	}
	git := func(args ...string) {
		cmd := exec.Command("git", args...)
		cmd.Dir = repo
		date := fmt.Sprintf("@%d +0000", epoch)
		cmd.Env = append(os.Environ(), "GIT_AUTHOR_DATE="+date, "GIT_COMMITTER_DATE="+date,
			"GIT_AUTHOR_NAME=e2e", "GIT_AUTHOR_EMAIL=e2e@lkbuild.invalid", "GIT_COMMITTER_NAME=e2e", "GIT_COMMITTER_EMAIL=e2e@lkbuild.invalid")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	git("init", "-q", "-b", "main")
	git("add", ".")
	git("commit", "-q", "-m", "kernel")
	return kdir
}

func run(t *testing.T, dir, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
	return string(out)
}

// result is what one lkbuild run did.
type result struct {
	stdout, stderr string
	code           int
	elapsed        time.Duration
	events         []event
}

type event struct {
	Kind    string        `json:"kind"`
	Message string        `json:"message"`
	Phase   string        `json:"phase"`
	Step    string        `json:"step"`
	Unit    string        `json:"unit"`
	Done    int64         `json:"done"`
	Elapsed time.Duration `json:"elapsed"`
	Error   string        `json:"error"`
	Skipped bool          `json:"skipped"`
	// Incremental: the build started from a kept object tree.
	Incremental bool     `json:"incremental"`
	Ref         string   `json:"ref"`
	Digest      string   `json:"digest"`
	Release     string   `json:"release"`
	Layout      string   `json:"layout"`
	Log         string   `json:"log"`
	Pushed      []string `json:"pushed"`
}

func (r result) final() event {
	for i := len(r.events) - 1; i >= 0; i-- {
		if k := r.events[i].Kind; k == "result" || k == "error" {
			return r.events[i]
		}
	}
	return event{}
}

// lkbuild runs the binary with args; onStart, when set, gets the process
// once it runs (to signal it).
func (e *env) lkbuild(t *testing.T, onStart func(*os.Process, *syncBuffer), args ...string) result {
	t.Helper()
	return e.lkbuildWith(t, nil, onStart, args...)
}

// lkbuildWith is lkbuild with env added to the environment.
func (e *env) lkbuildWith(t *testing.T, env []string, onStart func(*os.Process, *syncBuffer), args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, e.bin, args...)
	cmd.Env = append(append(os.Environ(), "DOCKER_CONFIG="+e.dockerConfig), env...)
	var stdout, stderr syncBuffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	began := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if onStart != nil {
		onStart(cmd.Process, &stdout)
	}
	err := cmd.Wait()
	r := result{stdout: stdout.String(), stderr: stderr.String(), elapsed: time.Since(began)}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		r.code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(strings.NewReader(r.stdout))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var ev event
		if json.Unmarshal(sc.Bytes(), &ev) == nil {
			r.events = append(r.events, ev)
		}
	}
	return r
}

// syncBuffer is a bytes.Buffer a test may read while a command writes it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// buildArgs are the flags of a build of the test kernel.
func (e *env) buildArgs(cache, output, kdir, org string, extra ...string) []string {
	return slices.Concat([]string{
		"--cache-dir", cache, "build", "--json",
		"--kernel-dir", kdir, "--series", series, "--arch", "x86_64",
	}, e.builderFlag(), []string{
		"--source-mirror", e.mirror, "--ucode-repo", e.ucode,
		"--output", output, "--org", org, "--insecure-registry",
	}, extra)
}

// builderFlag is --builder-image when the suite names the builder, none
// when the checkout's build-args do.
func (e *env) builderFlag() []string {
	if e.builder == "" {
		return nil
	}
	return []string{"--builder-image", e.builder}
}

func TestKernelBuild(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a kernel")
	}
	e := setup(t)
	org := e.registry + "/e2e"
	repo := org + "/kernel"
	cache1, out1 := filepath.Join(e.work, "cache1"), filepath.Join(e.work, "oci1")
	cache2, out2 := filepath.Join(e.work, "cache2"), filepath.Join(e.work, "oci2")

	// The builder lives in the registry, as it would for a user, and has
	// LinuxKit's shape: no toolchain but its own package repository. The
	// series' build-args name it and no build gives --builder-image:
	// lkbuild installs what common/Dockerfile installs, with no network.
	builderRef := e.registry + "/e2e/builder:mirror"
	e.skopeo(t, "copy", "--dest-tls-verify=false", "--dest-creds", e.creds(), e.mirrorBuilder, "docker://"+builderRef)
	e.builder, e.buildImage = "", builderRef
	kdir := e.checkout(t, nil)

	tags := strings.Fields(run(t, "", e.bin, "tags", "--kernel-dir", kdir, "--series", series, "--arch", "x86_64", "--org", e.registry+"/e2e"))
	if len(tags) != 5 {
		t.Fatalf("lkbuild tags printed %q", tags)
	}
	archTag, indexTag, relArchTag, relTag, builderTag := tags[0], tags[1], tags[2], tags[3], tags[4]
	if !strings.HasPrefix(archTag, repo+":"+version+"-") || !strings.HasSuffix(archTag, "-amd64") {
		t.Fatalf("single-arch tag %s", archTag)
	}

	// 1. The build, pushed with every tag.
	r := e.lkbuild(t, nil, e.buildArgs(cache1, out1, kdir, org, "--push")...)
	if r.code != 0 {
		t.Fatalf("build failed (exit %d):\n%s\n%s", r.code, r.stderr, tailString(r.stdout, 40))
	}
	res := r.final()
	t.Logf("build: %s in %s, %s", res.Ref, r.elapsed.Round(time.Second), res.Digest)
	checkEvents(t, r)
	if !strings.Contains(r.stdout, "from the builder's own repository (/mirror), with no network") {
		t.Errorf("the build did not say it installed the Dockerfile's packages from the builder's /mirror:\n%s", tailString(r.stdout, 60))
	}
	if res.Ref != archTag || res.Release != release || len(res.Pushed) != 5 {
		t.Errorf("result = %+v", res)
	}
	if _, err := os.Stat(res.Log); err != nil {
		t.Errorf("build log: %v", err)
	}

	t.Run("registry", func(t *testing.T) {
		for _, tag := range []string{archTag, relArchTag} {
			if d := e.digest(t, tag); d != res.Digest {
				t.Errorf("%s is %s, want %s", tag, d, res.Digest)
			}
		}
		for _, tag := range []string{indexTag, relTag} {
			var idx struct {
				MediaType string `json:"mediaType"`
				Manifests []struct {
					Digest   string `json:"digest"`
					Platform struct{ Architecture, OS string }
				} `json:"manifests"`
			}
			if err := json.Unmarshal([]byte(e.skopeo(t, "inspect", "--raw", e.tlsCreds(), "docker://"+tag)), &idx); err != nil {
				t.Fatal(err)
			}
			if len(idx.Manifests) != 1 || idx.Manifests[0].Digest != res.Digest || idx.Manifests[0].Platform.Architecture != "amd64" {
				t.Errorf("index %s = %+v", tag, idx)
			}
		}
		if got, want := e.digest(t, builderTag), e.digest(t, builderRef); got != want {
			t.Errorf("%s is %s, want the builder %s", builderTag, got, want)
		}
	})

	img := e.unpack(t, archTag)
	t.Run("image", func(t *testing.T) { checkImage(t, img, builderRef) })
	t.Run("attachments", func(t *testing.T) { e.attachments(t, img, out1, kdir, archTag, res.Digest) })
	t.Run("layout", func(t *testing.T) { e.checkLayout(t, out1, tags, res.Digest, e.digest(t, builderRef)) })
	// kconfig works on the source and the provisioned builder cache1
	// holds now: it fetches and installs nothing.
	t.Run("kconfig", func(t *testing.T) { e.kconfig(t, cache1) })
	// The perf image of the same kernel, on the same cache.
	t.Run("perf", func(t *testing.T) { e.perf(t, cache1, kdir, org, builderRef) })
	// lkbuild bump to a made-up next release, on the same cache.
	t.Run("bump", func(t *testing.T) { e.bump(t, cache1) })
	// The ZFS modules image, on the kernel's kept object tree.
	t.Run("zfs", func(t *testing.T) { e.zfs(t, cache1, kdir, org, img) })

	t.Run("boot", func(t *testing.T) {
		ko := e.outOfTreeModule(t, img, builderTag)
		checkBoot(t, img, ko)
	})

	// 2. The debug kernel (common/config-dbg appended, PANIC_ON_OOPS
	// off, vmlinux in the image, the -dbg tags), from an empty cache,
	// through a registry proxy that refuses uploads: the build must keep
	// the image locally and say how to push it. (The first image built
	// again from scratch elsewhere is TestVerifyElsewhere's.)
	proxy, refuse := refusingProxy(t, e.registry)
	e.addCredentials(t, proxy)
	porg := proxy + "/e2e-again" // the same registry behind: another repository
	dbgTags := strings.Fields(run(t, "", e.bin, "tags", "--kernel-dir", kdir, "--series", series, "--arch", "x86_64", "--org", porg, "--debug"))
	if len(dbgTags) != 5 || !strings.Contains(dbgTags[0], ":"+version+"-dbg-") || dbgTags[3] != porg+"/kernel:"+version+"-dbg" {
		t.Fatalf("lkbuild tags --debug printed %q", dbgTags)
	}
	t.Run("interrupt", func(t *testing.T) {
		r := e.lkbuild(t, interruptAt("compile"), e.buildArgs(cache2, out2, kdir, porg, "--push", "--debug")...)
		if r.code != 130 || !strings.Contains(r.stdout, `"phase":"compile"`) {
			t.Fatalf("interrupted build: exit %d, want 130 after the compile started:\n%s\n%s", r.code, r.stderr, tailString(r.stdout, 5))
		}
		checkNoSandbox(t)
		if names := layoutNames(t, out2); len(names) != 0 {
			t.Errorf("an interrupted build left images in the layout: %v", names)
		}
		if e.exists(t, dbgTags[0]) {
			t.Errorf("an interrupted build left a tag")
		}
		left, _ := os.ReadDir(filepath.Join(cache2, "work"))
		if len(left) != 0 {
			t.Errorf("an interrupted build left scratch directories: %v", left)
		}
	})
	refuse.Store(true)
	r2 := e.lkbuild(t, nil, e.buildArgs(cache2, out2, kdir, porg, "--push", "--debug")...)
	if r2.code == 0 {
		t.Fatalf("push through a refusing registry succeeded")
	}
	t.Logf("debug build: %s", r2.elapsed.Round(time.Second))
	if !strings.Contains(r2.stderr, "lkbuild push") || !strings.Contains(r2.final().Error, "retry with lkbuild push") {
		t.Errorf("a failed push does not say how to retry:\n%s\n%s", r2.stderr, r2.final().Error)
	}
	dbgDigest := layoutNames(t, out2)[dbgTags[0]]
	if dbgDigest == "" || dbgDigest == res.Digest {
		t.Errorf("the debug build wrote %q under %s in its layout (plain image %s): %v", dbgDigest, dbgTags[0], res.Digest, layoutNames(t, out2))
	}
	refuse.Store(false)
	// The retry hint, run as printed.
	_, hint, _ := strings.Cut(r2.stderr, "to retry the push:\n")
	hint, _, _ = strings.Cut(strings.TrimSpace(hint), "\n")
	args := strings.Fields(hint)
	if len(args) < 2 || args[0] != "lkbuild" || !slices.Contains(args, "push") {
		t.Fatalf("no retry command in:\n%s", r2.stderr)
	}
	p := e.lkbuild(t, nil, args[1:]...)
	if p.code != 0 {
		t.Fatalf("lkbuild push: %s", p.stderr)
	}
	for _, tag := range dbgTags[:4] {
		if d := e.digest(t, tag); d == "" {
			t.Errorf("lkbuild push did not push %s", tag)
		}
	}
	t.Run("debug", func(t *testing.T) {
		names := layoutNames(t, out2)
		for _, tag := range dbgTags {
			if names[tag] == "" {
				t.Errorf("the debug build's layout has no %s: %v", tag, names)
			}
		}
		dbg := e.unpack(t, dbgTags[0])
		checkDebugImage(t, dbg, img)
		res := boot(t, dbg, "", "", boottest.Module{Path: "kernel/lib/crc7.ko"})
		checkConsole(t, res, []string{"crc7"})
	})

	// 3. A build whose image exists returns at once.
	r3 := e.lkbuild(t, nil, e.buildArgs(cache1, out1, kdir, org, "--push")...)
	if r3.code != 0 || !r3.final().Skipped {
		t.Errorf("rebuild: exit %d, %+v\n%s", r3.code, r3.final(), r3.stderr)
	}
	t.Logf("rebuild of an existing image: %s", r3.elapsed)
	if r3.elapsed > 2*time.Second {
		t.Errorf("rebuild of an existing image took %s, want < 2 s", r3.elapsed)
	}

	t.Run("bad-input", func(t *testing.T) { e.badInput(t, cache1) })

	// 4. A changed patch in a new commit, built on the object tree cache1
	// keeps (which the failed builds of bad-input used last): kbuild
	// rebuilds what the patch reaches. TestVerifyElsewhere rebuilds this
	// image from scratch, elsewhere, and must get it bit for bit.
	var inc incrementalBuild
	t.Run("incremental", func(t *testing.T) { inc = e.incremental(t, cache1, org) })
	if inc.digest == "" {
		t.Fatal("no incremental build to verify")
	}

	// 5. The incremental build's inputs with one byte of the patch
	// changed, written under its tag: TestVerifyElsewhere must find it
	// different.
	var changed string
	t.Run("changed", func(t *testing.T) {
		changed = e.changedImage(t, inc.kdir, cache1, org, inc.archTag, inc.seriesHash)
	})

	// 6. lkbuild fetch on the cache the builds used finds everything there,
	// offline too, and writes a bundle; TestVerifyElsewhere (after this
	// test) verifies from it in a network namespace without a network.
	t.Run("fetch", func(t *testing.T) {
		fetch := func(extra ...string) result {
			args := slices.Concat([]string{"--cache-dir", cache1}, extra, []string{"fetch",
				"--kernel-dir", kdir, "--series", series, "--arch", "x86_64"}, e.builderFlag(),
				[]string{"--source-mirror", e.mirror, "--ucode-repo", e.ucode, "--insecure-registry"})
			return e.lkbuild(t, nil, args...)
		}
		for _, offline := range [][]string{nil, {"--offline"}} {
			if r := fetch(offline...); r.code != 0 || !strings.Contains(r.stderr, "--offline needs no network") {
				t.Errorf("lkbuild fetch %v: exit %d\n%s", offline, r.code, r.stderr)
			}
		}
		if dir := os.Getenv("LKBUILD_E2E_OFFLINE_STATE"); dir != "" {
			bundle := filepath.Join(dir, "bundle")
			r := fetch("--offline", "--bundle", bundle)
			if r.code != 0 || !strings.Contains(r.stderr, "build --bundle "+bundle) {
				t.Fatalf("lkbuild fetch --bundle: exit %d\n%s", r.code, r.stderr)
			}
			_, size, _ := strings.Cut(r.stderr, "bundle "+bundle+" (")
			size, _, _ = strings.Cut(size, ")")
			t.Logf("bundle for x86_64: %s", size)
		}
	})
	e.keepForVerify(t, inc.kdir, org, inc.layout, changed, inc.archTag, inc.digest, r.elapsed)
}

// keepForVerify moves the checkout of the incremental build into
// $LKBUILD_E2E_OFFLINE_STATE (which holds the bundle) with copies of the
// first image's layout and of the changed one, and the arguments of a
// verify and a build from the bundle, for TestVerifyElsewhere. Without
// the variable it does nothing.
func (e *env) keepForVerify(t *testing.T, kdir, org, out, changed, archTag, digest string, took time.Duration) {
	t.Helper()
	dir := os.Getenv("LKBUILD_E2E_OFFLINE_STATE")
	if dir == "" {
		return
	}
	if changed == "" {
		t.Fatal("no changed image to verify")
	}
	keptRepo := filepath.Join(dir, "linuxkit")
	if err := os.Rename(filepath.Dir(kdir), keptRepo); err != nil {
		t.Fatalf("keep for the verify: %v", err)
	}
	images, changedDir := filepath.Join(dir, "images"), filepath.Join(dir, "changed")
	for from, to := range map[string]string{out: images, changed: changedDir} {
		if err := os.CopyFS(to, os.DirFS(from)); err != nil {
			t.Fatalf("keep for the verify: %v", err)
		}
	}
	kept := filepath.Join(keptRepo, "kernel")
	bundle := filepath.Join(dir, "bundle")
	host, _ := os.Hostname()
	// No --source-mirror, --ucode-repo: the bundle's are used.
	st := verifyState{
		Build: slices.Concat([]string{
			"--cache-dir", filepath.Join(dir, "cache"), "build", "--json",
			"--kernel-dir", kept, "--series", series, "--arch", "x86_64",
		}, e.builderFlag(), []string{"--output", filepath.Join(dir, "oci"), "--org", org, "--bundle", bundle}),
		Verify:       []string{"--offline", "verify", "--kernel-dir", kept, "--bundle", bundle, "--jobs", "3"},
		Image:        "oci:" + images + ":" + archTag,
		Changed:      "oci:" + changedDir + ":" + archTag,
		Digest:       digest,
		BuildSeconds: took.Seconds(),
		UID:          os.Getuid(),
		Hostname:     host,
		TZ:           os.Getenv("TZ"),
	}
	data, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "state.json"), data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// incrementalBuild is the incremental build's checkout, layout, tag,
// digest and series hash, kept in the suite's work dir.
type incrementalBuild struct {
	kdir, layout, archTag, digest, seriesHash string
}

// incremental builds the test kernel with its patch changed, in a new
// commit, on the object tree kept in cache: kbuild rebuilds what the
// patch reaches. That the image is the one a clean build gives is
// TestVerifyElsewhere's check.
func (e *env) incremental(t *testing.T, cache, org string) incrementalBuild {
	kdir := e.checkoutAt(t, 1700000100, func(kdir string) {
		m, _ := filepath.Glob(filepath.Join(kdir, series, "patches", "0001-*.patch"))
		data, err := os.ReadFile(m[0])
		if err != nil {
			t.Fatal(err)
		}
		edited := bytes.Replace(data, []byte(`"lkbuild-e2e: patch 0001 applied\n"`), []byte(`"lkbuild-e2e: patch 0001 applied, edited\n"`), 1)
		if bytes.Equal(edited, data) {
			t.Fatal("the patch's marker line is not where the test expects it")
		}
		if err := os.WriteFile(m[0], edited, 0o644); err != nil {
			t.Fatal(err)
		}
	})
	// Kept after the subtest, for TestVerifyElsewhere.
	repo := filepath.Join(e.work, "incremental")
	if err := os.Rename(filepath.Dir(kdir), repo); err != nil {
		t.Fatal(err)
	}
	kdir = filepath.Join(repo, "kernel")
	out := filepath.Join(e.work, "oci-incremental")
	compiled := func(r result) int64 {
		n := int64(0)
		for _, ev := range r.events {
			if ev.Kind == "progress" && ev.Unit == "objects" {
				n = max(n, ev.Done)
			}
		}
		return n
	}
	r := e.lkbuild(t, nil, e.buildArgs(cache, out, kdir, org)...)
	if r.code != 0 {
		t.Fatalf("incremental build failed (exit %d):\n%s\n%s", r.code, r.stderr, tailString(r.stdout, 40))
	}
	res := r.final()
	if !res.Incremental {
		t.Errorf("the build after a patch change was not incremental:\n%s", tailString(r.stdout, 60))
	}
	// init/main.c, and what a new epoch reaches (the version banner).
	if n := compiled(r); n == 0 || n > 40 {
		t.Errorf("the incremental build compiled %d objects, want 1-40", n)
	}
	t.Logf("incremental build: %s (%d objects), %s", r.elapsed.Round(time.Second), compiled(r), res.Digest)
	lp, err := layout.FromPath(out)
	if err != nil {
		t.Fatal(err)
	}
	h, err := v1.NewHash(res.Digest)
	if err != nil {
		t.Fatal(err)
	}
	img, err := lp.Image(h)
	if err != nil {
		t.Fatal(err)
	}
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	return incrementalBuild{kdir: kdir, layout: out, archTag: res.Ref, digest: res.Digest, seriesHash: m.Annotations["dev.lkbuild.series.hash"]}
}

// checkEvents checks a --json build's events: its phases in order (a kernel
// build's when want is empty) and object counts as progress.
func checkEvents(t *testing.T, r result, want ...string) {
	t.Helper()
	var phases []string
	objects := int64(0)
	for _, ev := range r.events {
		switch {
		case ev.Kind == "phase-end":
			phases = append(phases, ev.Phase)
			if ev.Elapsed <= 0 && ev.Phase != "rootfs" && ev.Phase != "fetch" {
				t.Errorf("phase %s has no duration", ev.Phase)
			}
		case ev.Kind == "progress" && ev.Unit == "objects":
			objects = max(objects, ev.Done)
		}
	}
	if len(want) == 0 {
		want = []string{"fetch", "rootfs", "patch", "config", "compile", "modules", "package", "push"}
	}
	if !slices.Equal(phases, want) {
		t.Errorf("phases %v, want %v", phases, want)
	}
	if objects < 100 {
		t.Errorf("compile progress counted %d objects", objects)
	}
}

func tailString(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// addCredentials gives host the registry's credentials in a docker config
// of the test's own, which lkbuild and skopeo use from then on.
func (e *env) addCredentials(t *testing.T, host string) {
	t.Helper()
	var cfg map[string]any
	readJSON(t, filepath.Join(e.dockerConfig, "config.json"), &cfg)
	auths, _ := cfg["auths"].(map[string]any)
	if auths == nil || auths[e.registry] == nil {
		t.Fatalf("the docker config has no credentials for %s", e.registry)
	}
	auths[host] = auths[e.registry]
	dir := filepath.Join(e.work, "docker")
	os.MkdirAll(dir, 0o700)
	data, _ := json.Marshal(cfg)
	if err := os.WriteFile(filepath.Join(dir, "config.json"), data, 0o600); err != nil {
		t.Fatal(err)
	}
	e.dockerConfig = dir
}

func (e *env) creds() string { return e.user + ":" + e.password }

func (e *env) tlsCreds() string { return "--tls-verify=false" }

func (e *env) skopeo(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command("skopeo", args...)
	cmd.Env = append(os.Environ(), "REGISTRY_AUTH_FILE="+filepath.Join(e.dockerConfig, "config.json"))
	out, err := cmd.Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("skopeo %v: %v\n%s", args, err, stderr)
	}
	return string(out)
}

// digest is the manifest digest of ref in the registry.
func (e *env) digest(t *testing.T, ref string) string {
	t.Helper()
	return strings.TrimSpace(e.skopeo(t, "inspect", "--tls-verify=false", "--format", "{{.Digest}}", "docker://"+ref))
}

func (e *env) exists(t *testing.T, ref string) bool {
	t.Helper()
	cmd := exec.Command("skopeo", "inspect", "--tls-verify=false", "--raw", "docker://"+ref)
	cmd.Env = append(os.Environ(), "REGISTRY_AUTH_FILE="+filepath.Join(e.dockerConfig, "config.json"))
	return cmd.Run() == nil
}

// image is a kernel image copied out of the registry by skopeo and
// unpacked.
type image struct {
	manifest struct {
		Annotations map[string]string `json:"annotations"`
		Layers      []struct {
			Digest string `json:"digest"`
		} `json:"layers"`
	}
	config struct {
		Architecture string `json:"architecture"`
		OS           string `json:"os"`
		Created      time.Time
		Config       struct {
			Entrypoint []string          `json:"Entrypoint"`
			Cmd        []string          `json:"Cmd"`
			WorkingDir string            `json:"WorkingDir"`
			Labels     map[string]string `json:"Labels"`
		} `json:"config"`
	}
	rawConfig []byte
	root      string            // the unpacked layer
	entries   []string          // the layer's entry names
	links     map[string]string // the layer's symlinks (not unpacked), by name
	modes     map[string]int64  // and their modes
}

func (e *env) unpack(t *testing.T, ref string) *image {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "skopeo")
	e.skopeo(t, "copy", "--src-tls-verify=false", "docker://"+ref, "oci:"+dir+":kernel")
	img := &image{root: filepath.Join(t.TempDir(), "root"), modes: map[string]int64{}}
	var index struct{ Manifests []struct{ Digest string } }
	readJSON(t, filepath.Join(dir, "index.json"), &index)
	blob := func(d string) string { return filepath.Join(dir, "blobs", strings.Replace(d, ":", "/", 1)) }
	readJSON(t, blob(index.Manifests[0].Digest), &img.manifest)
	var m struct{ Config struct{ Digest string } }
	readJSON(t, blob(index.Manifests[0].Digest), &m)
	var err error
	if img.rawConfig, err = os.ReadFile(blob(m.Config.Digest)); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(img.rawConfig, &img.config); err != nil {
		t.Fatal(err)
	}
	if len(img.manifest.Layers) != 1 {
		t.Fatalf("%d layers, want 1", len(img.manifest.Layers))
	}
	f, err := os.Open(blob(img.manifest.Layers[0].Digest))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		img.entries = append(img.entries, h.Name)
		img.modes[h.Name] = h.Mode
		p := filepath.Join(img.root, filepath.FromSlash(h.Name))
		switch h.Typeflag {
		case tar.TypeDir:
			os.MkdirAll(p, 0o755)
		case tar.TypeReg:
			os.MkdirAll(filepath.Dir(p), 0o755)
			w, err := os.Create(p)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := io.Copy(w, tr); err != nil {
				t.Fatal(err)
			}
			w.Close()
		case tar.TypeSymlink:
			if img.links == nil {
				img.links = map[string]string{}
			}
			img.links[strings.TrimSuffix(h.Name, "/")] = h.Linkname
		default:
			t.Errorf("layer entry %s has type %c", h.Name, h.Typeflag)
		}
	}
	return img
}

func readJSON(t *testing.T, file string, v any) {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, v); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
}

func (img *image) read(t *testing.T, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(img.root, name))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// tarEntries lists a tar in the image: name -> header.
func (img *image) tarEntries(t *testing.T, name string) map[string]*tar.Header {
	t.Helper()
	f, err := os.Open(filepath.Join(img.root, name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]*tar.Header{}
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		out[h.Name] = h
	}
}

// checkDebugImage checks what a -dbg image has that plain has not: vmlinux,
// the -dbg release, common/config-dbg appended, PANIC_ON_OOPS off.
func checkDebugImage(t *testing.T, dbg, plain *image) {
	t.Helper()
	want := append(slices.Clone(plain.entries), "vmlinux")
	got := slices.Clone(dbg.entries)
	slices.Sort(want)
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("debug image files %v, want %v", got, want)
	}
	if v := dbg.read(t, "vmlinux"); !bytes.HasPrefix(v, []byte("\x7fELF")) {
		t.Errorf("vmlinux is not an ELF file")
	}
	if a := dbg.manifest.Annotations["dev.lkbuild.variant"]; a != "-dbg" {
		t.Errorf("variant annotation %q, want -dbg", a)
	}
	rel := version + "-linuxkit-dbg"
	if _, ok := dbg.tarEntries(t, "kernel.tar")["./lib/modules/"+rel+"/kernel/lib/crc7.ko"]; !ok {
		t.Errorf("kernel.tar has no lib/modules/%s/kernel/lib/crc7.ko", rel)
	}
	config := string(dbg.tarMember(t, "kernel-dev.tar", "usr/src/linux-headers-"+rel+"/.config"))
	for _, line := range []string{"# CONFIG_PANIC_ON_OOPS is not set\n", "CONFIG_DEBUG_LIST=y\n", "CONFIG_DETECT_HUNG_TASK=y\n", `CONFIG_LOCALVERSION="-linuxkit-dbg"` + "\n"} {
		if !strings.Contains(config, line) {
			t.Errorf("the debug kernel's .config lacks %q", line)
		}
	}
}

// tarMember reads one member of a tar in the image.
func (img *image) tarMember(t *testing.T, name, member string) []byte {
	t.Helper()
	f, err := os.Open(filepath.Join(img.root, name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err != nil {
			t.Fatalf("%s: no %s (%v)", name, member, err)
		}
		if strings.TrimPrefix(h.Name, "./") == member {
			data, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			return data
		}
	}
}

func checkImage(t *testing.T, img *image, builderRef string) {
	files := []string{"System.map", "intel-ucode-license.txt", "intel-ucode.cpio", "kernel", "kernel-builder", "kernel-dev.tar",
		"kernel-headers.tar", "kernel-source-info", "kernel.tar", "src/", "src/linux.tar.xz"}
	got := slices.Clone(img.entries)
	slices.Sort(got)
	if !slices.Equal(got, files) {
		t.Errorf("image files %v, want %v", got, files)
	}
	c := img.config
	if c.Architecture != "amd64" || c.OS != "linux" || c.Config.WorkingDir != "/" || c.Config.Entrypoint == nil || len(c.Config.Entrypoint) != 0 || c.Config.Cmd == nil || len(c.Config.Cmd) != 0 {
		t.Errorf("config %s", img.rawConfig)
	}
	if !bytes.Contains(img.rawConfig, []byte(`"Entrypoint":[]`)) || !bytes.Contains(img.rawConfig, []byte(`"Cmd":[]`)) {
		t.Errorf("config does not say Entrypoint: [] and Cmd: []: %s", img.rawConfig)
	}
	if !c.Created.Equal(time.Unix(1700000000, 0)) {
		t.Errorf("created %s, want the commit time", c.Created)
	}
	labels := c.Config.Labels
	if labels["org.mobyproject.linuxkit.kernel.buildimage"] != builderRef || len(labels["org.opencontainers.image.revision"]) != 40 {
		t.Errorf("labels %v", labels)
	}
	a := img.manifest.Annotations
	for _, k := range []string{"source.sha256", "builder.digest", "config.sha256", "patches", "epoch", "arch", "ucode.commit"} {
		if a["dev.lkbuild."+k] == "" {
			t.Errorf("annotation dev.lkbuild.%s missing: %v", k, a)
		}
	}
	if v, ok := a["dev.lkbuild.version"]; ok {
		t.Errorf("lkbuild's version %q is in the image: every release would change every digest", v)
	}
	if a["dev.lkbuild.epoch"] != "1700000000" || a["dev.lkbuild.arch"] != "x86_64" || !strings.HasPrefix(a["dev.lkbuild.builder.digest"], "sha256:") {
		t.Errorf("annotations %v", a)
	}

	if k := img.read(t, "kernel"); len(k) < 0x210 || string(k[0x202:0x206]) != "HdrS" {
		t.Errorf("kernel is not a bzImage")
	}
	if !bytes.Contains(img.read(t, "System.map"), []byte(" T start_kernel\n")) {
		t.Errorf("System.map has no start_kernel")
	}
	if got := string(img.read(t, "kernel-builder")); got != builderRef {
		t.Errorf("kernel-builder = %q, want %q", got, builderRef)
	}
	if got, want := string(img.read(t, "kernel-source-info")), "KERNEL_SOURCE=https://www.kernel.org/pub/linux/kernel/v6.x/linux-"+version+".tar.xz\n"; got != want {
		t.Errorf("kernel-source-info = %q, want %q", got, want)
	}
	if cpio := img.read(t, "intel-ucode.cpio"); !bytes.HasPrefix(cpio, []byte("070701")) || !bytes.Contains(cpio, []byte("kernel/x86/microcode/GenuineIntel.bin")) {
		t.Errorf("intel-ucode.cpio is not an early microcode cpio")
	}
	if len(img.read(t, "intel-ucode-license.txt")) == 0 {
		t.Errorf("empty intel-ucode-license.txt")
	}

	mods := img.tarEntries(t, "kernel.tar")
	dir := "./lib/modules/" + release + "/"
	for _, n := range []string{dir + "kernel/lib/crc7.ko", dir + "modules.dep", dir + "build"} {
		if mods[n] == nil {
			t.Errorf("kernel.tar has no %s", n)
		}
	}
	if b := mods[dir+"build"]; b != nil && (b.Typeflag != tar.TypeSymlink || b.Linkname != "/usr/src/linux-headers-"+release) {
		t.Errorf("kernel.tar build link %+v", b)
	}
	if mods[dir+"source"] != nil {
		t.Errorf("kernel.tar still has the source link")
	}
	if h := img.tarEntries(t, "kernel-headers.tar"); h["usr/include/linux/version.h"] == nil {
		t.Errorf("kernel-headers.tar has no usr/include/linux/version.h")
	}
	dev := img.tarEntries(t, "kernel-dev.tar")
	prefix := "usr/src/linux-headers-" + release + "/"
	for _, n := range []string{".config", "Module.symvers", "Makefile", "include/linux/module.h", "arch/x86/include/asm/page.h", "scripts/Makefile.build", "scripts/basic/fixdep"} {
		if dev[prefix+n] == nil {
			t.Errorf("kernel-dev.tar has no %s", prefix+n)
		}
	}

	xzr, err := xz.NewReader(bytes.NewReader(img.read(t, "src/linux.tar.xz")))
	if err != nil {
		t.Fatalf("src/linux.tar.xz: %v", err)
	}
	tr := tar.NewReader(xzr)
	sawPatch := false
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("src/linux.tar.xz: %v", err)
		}
		if !strings.HasPrefix(h.Name, "linux/") {
			t.Fatalf("src/linux.tar.xz entry %s is not under linux/", h.Name)
		}
		if strings.HasSuffix(h.Name, ".o") || h.Name == "linux/.config" {
			t.Fatalf("src/linux.tar.xz holds a build product %s", h.Name)
		}
		if h.Name == "linux/init/main.c" {
			data, _ := io.ReadAll(tr)
			sawPatch = bytes.Contains(data, []byte("lkbuild-e2e: patch 0001 applied"))
		}
	}
	if !sawPatch {
		t.Errorf("src/linux.tar.xz does not hold the patched init/main.c")
	}
}

// outOfTreeModule builds testdata/module against the image's kernel-dev.tar
// in the -builder image, with lkbuild run, and returns the .ko. As in
// LinuxKit's module recipe, the toolchain is installed first, here from
// the builder's own repository (the sandbox has no network).
func (e *env) outOfTreeModule(t *testing.T, img *image, builderTag string) string {
	t.Helper()
	dev := filepath.Join(t.TempDir(), "dev")
	os.MkdirAll(dev, 0o755)
	run(t, "", "tar", "-C", dev, "-xf", filepath.Join(img.root, "kernel-dev.tar"))
	mod := filepath.Join(t.TempDir(), "module")
	run(t, "", "cp", "-r", filepath.Join(repoRoot(t), "testdata", "module"), mod)
	headers := "/usr/src/linux-headers-" + release
	r := e.lkbuild(t, nil, "--cache-dir", filepath.Join(e.work, "cache1"), "run", "--insecure-registry", "--builder-image", builderTag,
		"--bind", filepath.Join(dev, headers)+":"+headers, "--bind", mod+":/module", "--workdir", "/module",
		"--env", "DEBIAN_FRONTEND=noninteractive", "--", "sh", "-c",
		"apt-get -q -o APT::Sandbox::User=root update >/dev/null && "+
			"apt-get -q -o APT::Sandbox::User=root install -y --no-install-recommends build-essential libelf-dev >/dev/null && "+
			"make -C "+headers+" M=/module modules")
	if r.code != 0 {
		t.Fatalf("out-of-tree module build failed:\n%s\n%s", r.stdout, r.stderr)
	}
	ko := filepath.Join(mod, "lkbuild_hello.ko")
	if _, err := os.Stat(ko); err != nil {
		entries, _ := os.ReadDir(mod)
		t.Fatalf("no module after the build: %v (%v)\n%s", err, entries, r.stdout)
	}
	return ko
}

func checkBoot(t *testing.T, img *image, ko string) {
	t.Helper()
	res := boot(t, img, "", "", boottest.Module{Path: "kernel/lib/crc7.ko"}, boottest.Module{HostPath: ko})
	checkConsole(t, res, []string{"crc7", "lkbuild_hello"}, "lkbuild-e2e: out-of-tree module loaded")
}

// boot boots img's kernel for arch ("" is x86_64) with busybox ("" is the
// host's) and the modules, from img's kernel.tar or the host, in its
// initramfs.
func boot(t *testing.T, img *image, arch, busybox string, modules ...boottest.Module) boottest.Result {
	t.Helper()
	tree := filepath.Join(t.TempDir(), "modules")
	os.MkdirAll(tree, 0o755)
	run(t, "", "tar", "-C", tree, "-xf", filepath.Join(img.root, "kernel.tar"))
	rels, err := os.ReadDir(filepath.Join(tree, "lib", "modules"))
	if err != nil || len(rels) != 1 {
		t.Fatalf("kernel.tar holds lib/modules/%v (%v), want one release", rels, err)
	}
	initrd := filepath.Join(t.TempDir(), "initrd.gz")
	f, err := os.Create(initrd)
	if err != nil {
		t.Fatal(err)
	}
	err = boottest.Initramfs(f, boottest.InitramfsSpec{Busybox: busybox, ModuleTree: tree, Release: rels[0].Name(), Modules: modules})
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	res, err := boottest.Boot(context.Background(), boottest.BootSpec{
		Arch: arch, Kernel: filepath.Join(img.root, "kernel"), Initramfs: initrd, Timeout: 6 * time.Minute,
	})
	// Boot's nil error means the guest powered off after BOOTTEST done
	// (x86_64 through ACPI, aarch64 PSCI, riscv64 SBI).
	if err != nil {
		t.Fatalf("boot: %v", err)
	}
	t.Logf("booted %s in %s (powered off %v)", arch, res.Elapsed.Round(time.Second), res.PoweredOff)
	return res
}

// checkConsole wants the modules loaded and the lines, with the test
// patch's and the banner's, on the console.
func checkConsole(t *testing.T, res boottest.Result, modules []string, lines ...string) {
	t.Helper()
	for _, m := range modules {
		if r, ok := res.Module(m); !ok || !r.OK {
			t.Errorf("module %s: %+v", m, r)
		}
	}
	for _, line := range append(lines, "lkbuild-e2e: patch 0001 applied", "Linux version "+release) {
		if !strings.Contains(res.Console, line) {
			t.Errorf("console lacks %q:\n%s", line, tailString(res.Console, 30))
		}
	}
}

// refusingProxy is a reverse proxy to the registry that, while refuse is
// set, answers every blob upload with 403 DENIED.
func refusingProxy(t *testing.T, registry string) (string, *atomic.Bool) {
	t.Helper()
	target, _ := url.Parse("http://" + registry)
	rp := httputil.NewSingleHostReverseProxy(target)
	refuse := &atomic.Bool{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if refuse.Load() && strings.Contains(r.URL.Path, "/blobs/uploads/") {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusForbidden)
			io.WriteString(w, `{"errors":[{"code":"DENIED","message":"uploads refused by the e2e test"}]}`)
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://"), refuse
}

// interruptAt sends SIGINT to lkbuild once it reports phase, as Ctrl-C
// would (to the process; the sandboxes are lkbuild's to stop).
func interruptAt(phase string) func(*os.Process, *syncBuffer) {
	return func(p *os.Process, stdout *syncBuffer) {
		go func() {
			deadline := time.Now().Add(20 * time.Minute)
			for time.Now().Before(deadline) {
				time.Sleep(200 * time.Millisecond)
				if strings.Contains(stdout.String(), `"kind":"phase-start","phase":"`+phase+`"`) {
					time.Sleep(3 * time.Second)
					p.Signal(syscall.SIGINT)
					return
				}
			}
		}()
	}
}

// checkNoSandbox fails if any process of ours is still a sandbox init or
// runs in one.
func checkNoSandbox(t *testing.T) {
	t.Helper()
	time.Sleep(500 * time.Millisecond)
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	self := strconv.Itoa(os.Getpid())
	for _, p := range procs {
		pid := filepath.Base(filepath.Dir(p))
		if pid == self {
			continue
		}
		data, err := os.ReadFile(p)
		if err != nil || len(data) == 0 {
			continue
		}
		st, err := os.Stat(filepath.Dir(p))
		if err != nil || st.Sys().(*syscall.Stat_t).Uid != uint32(os.Getuid()) {
			continue
		}
		args := strings.Split(strings.TrimRight(string(data), "\x00"), "\x00")
		if args[0] == "lkbuild-sandbox-init" || slices.Contains(args, "KCFLAGS=-fno-pie") {
			t.Errorf("process %s left running: %q", pid, args)
		}
	}
}

// layoutNames maps the image names in an OCI layout to their digests.
func layoutNames(t *testing.T, dir string) map[string]string {
	t.Helper()
	var idx struct {
		Manifests []struct {
			Digest      string            `json:"digest"`
			Annotations map[string]string `json:"annotations"`
		} `json:"manifests"`
	}
	data, err := os.ReadFile(filepath.Join(dir, "index.json"))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &idx); err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, m := range idx.Manifests {
		// Attachments (provenance, SBOM) have no name.
		if n := m.Annotations["org.opencontainers.image.ref.name"]; n != "" {
			out[n] = m.Digest
		}
	}
	return out
}

// checkLayout reads the build's OCI layout as LinuxKit's cache and skopeo
// do: every tag a push writes, under its full name in both the ref name and
// containerd's annotation; the single-arch tags the image, the index tags
// an index of it, the builder tag an index of the builder (the image the
// build-args name, not what lkbuild installed into it); skopeo finds the
// image by its bare tag.
func (e *env) checkLayout(t *testing.T, dir string, tags []string, digest, builderDigest string) {
	t.Helper()
	var idx struct {
		Manifests []struct {
			MediaType   string            `json:"mediaType"`
			Digest      string            `json:"digest"`
			Annotations map[string]string `json:"annotations"`
		} `json:"manifests"`
	}
	readJSON(t, filepath.Join(dir, "index.json"), &idx)
	type entry struct{ mediaType, digest, containerd string }
	byName := map[string]entry{}
	for _, m := range idx.Manifests {
		if n := m.Annotations["org.opencontainers.image.ref.name"]; n != "" {
			byName[n] = entry{m.MediaType, m.Digest, m.Annotations["io.containerd.image.name"]}
		}
	}
	// indexOf reads the amd64 entry of an index blob.
	indexOf := func(d string) string {
		var ix struct {
			Manifests []struct {
				Digest   string
				Platform struct{ Architecture, OS string }
			}
		}
		readJSON(t, filepath.Join(dir, "blobs", strings.Replace(d, ":", "/", 1)), &ix)
		if len(ix.Manifests) != 1 || ix.Manifests[0].Platform.Architecture != "amd64" || ix.Manifests[0].Platform.OS != "linux" {
			t.Errorf("index %s: %+v, want one linux/amd64 entry", d, ix)
			return ""
		}
		return ix.Manifests[0].Digest
	}
	archTag, indexTag, relArchTag, relTag, builderTag := tags[0], tags[1], tags[2], tags[3], tags[4]
	for _, tag := range tags {
		en, ok := byName[tag]
		if !ok {
			t.Errorf("the layout has no %s", tag)
			continue
		}
		if en.containerd != tag {
			t.Errorf("%s: io.containerd.image.name %q (linuxkit cache import registers names from it)", tag, en.containerd)
		}
		switch tag {
		case archTag, relArchTag:
			if en.digest != digest || en.mediaType != "application/vnd.oci.image.manifest.v1+json" {
				t.Errorf("%s: %+v, want the image %s", tag, en, digest)
			}
		case indexTag, relTag, builderTag:
			want := digest
			if tag == builderTag {
				want = builderDigest
			}
			if en.mediaType != "application/vnd.oci.image.index.v1+json" {
				t.Errorf("%s is a %s, want an image index", tag, en.mediaType)
			} else if got := indexOf(en.digest); got != want {
				t.Errorf("%s lists %s for amd64, want %s", tag, got, want)
			}
		}
	}
	_, bare, _ := strings.Cut(archTag, "/kernel:")
	var inspected struct{ Digest string }
	if err := json.Unmarshal([]byte(e.skopeo(t, "inspect", "oci:"+dir+":"+bare)), &inspected); err != nil || inspected.Digest != digest {
		t.Errorf("skopeo inspect oci:DIR:%s: %+v (%v), want %s", bare, inspected, err, digest)
	}
}

// badInput builds broken kernel directories: each must fail with an error
// that names the problem, and leave no image.
func (e *env) badInput(t *testing.T, cache string) {
	patchFile := func(kdir string) string {
		m, _ := filepath.Glob(filepath.Join(kdir, series, "patches", "*.patch"))
		return m[0]
	}
	tests := []struct {
		name string
		edit func(t *testing.T, kdir string)
		want []string // in stderr
	}{
		{
			name: "patch-does-not-apply",
			edit: func(t *testing.T, kdir string) {
				p := patchFile(kdir)
				data, _ := os.ReadFile(p)
				data = bytes.Replace(data, []byte(" \tpage_address_init();"), []byte(" \tpage_address_init_is_not_here();"), 1)
				os.WriteFile(p, data, 0o644)
			},
			want: []string{"0001-init-print-lkbuild-e2e-marker.patch does not apply", "rejected hunk", "page_address_init_is_not_here", "full log:"},
		},
		{
			name: "config-not-final",
			edit: func(t *testing.T, kdir string) {
				p := filepath.Join(kdir, series, "config-x86_64")
				data, _ := os.ReadFile(p)
				data = append(data, "CONFIG_LKBUILD_E2E_NO_SUCH_SYMBOL=y\n"...)
				os.WriteFile(p, data, 0o644)
			},
			want: []string{"config-x86_64: the .config of the build differs from the stored config in CONFIG_LKBUILD_E2E_NO_SUCH_SYMBOL", "-CONFIG_LKBUILD_E2E_NO_SUCH_SYMBOL=y"},
		},
		{
			name: "package-not-in-the-builder",
			edit: func(t *testing.T, kdir string) {
				p := filepath.Join(kdir, "common", "Dockerfile")
				data, _ := os.ReadFile(p)
				data = bytes.Replace(data, []byte("    xz-utils"), []byte("    xz-utils lkbuild-e2e-no-such-package"), 1)
				os.WriteFile(p, data, 0o644)
			},
			want: []string{"lacks lkbuild-e2e-no-such-package, which ", "/kernel/common/Dockerfile installs", "its local package repository does not hold them", "lkbuild builder-image --from", "apt-get install -y lkbuild-e2e-no-such-package"},
		},
		{
			name: "compile-error",
			edit: func(t *testing.T, kdir string) {
				p := filepath.Join(kdir, series, "patches", "0002-break-the-build.patch")
				os.WriteFile(p, []byte(brokenPatch), 0o644)
			},
			want: []string{"step make:", "lines of the log:", "lkbuild-e2e: this build is meant to fail", "full log:"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			kdir := e.checkout(t, func(kdir string) { tc.edit(t, kdir) })
			out := filepath.Join(t.TempDir(), "oci")
			args := e.buildArgs(cache, out, kdir, e.registry+"/e2e-bad")
			args = slices.DeleteFunc(args, func(s string) bool { return s == "--json" })
			r := e.lkbuild(t, nil, args...)
			if r.code == 0 {
				t.Fatalf("build succeeded")
			}
			for _, w := range tc.want {
				if !strings.Contains(r.stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, r.stderr)
				}
			}
			if names := layoutNames(t, out); len(names) != 0 {
				t.Errorf("a failed build left images: %v", names)
			}
		})
	}
}

// brokenPatch makes kernel/bounds.c, which make compiles early (in
// prepare, after the host tools), fail.
const brokenPatch = `From 0000000000000000000000000000000000000000 Mon Sep 17 00:00:00 2001
From: e2e <e2e@lkbuild.invalid>
Subject: [PATCH] break the build

---
diff --git a/kernel/bounds.c b/kernel/bounds.c
--- a/kernel/bounds.c
+++ b/kernel/bounds.c
@@ -1,4 +1,5 @@
 // SPDX-License-Identifier: GPL-2.0
+#error "lkbuild-e2e: this build is meant to fail"
 /*
  * Generate definitions needed by the preprocessor.
  * This code generates raw asm output which is post-processed
`
