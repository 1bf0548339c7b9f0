package builder

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing/object"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/lkbuild/lkbuild/internal/cachedir"
	"github.com/lkbuild/lkbuild/internal/gitfetch"
	"github.com/lkbuild/lkbuild/internal/kernelsrc"
	"github.com/lkbuild/lkbuild/internal/pgptest"
	"github.com/lkbuild/lkbuild/kernel"
	"github.com/lkbuild/lkbuild/oci"
	"github.com/lkbuild/lkbuild/sandbox"
	"github.com/lkbuild/lkbuild/toolchain"
)

// The pipeline tests run Build with fakes in place of the source fetch,
// the git fetch, the rootfs and the sandbox: they check what Build does
// with what those return, in milliseconds, on any OS.

// checkout copies testdata/kernel into a new git repository under dir,
// committed at a fixed time (so two checkouts have one commit id), with a
// keys.asc, and returns the kernel directory.
func checkout(t *testing.T, dir string) string {
	t.Helper()
	repo := filepath.Join(dir, "linuxkit")
	kdir := filepath.Join(repo, "kernel")
	src := filepath.Join("..", "testdata", "kernel")
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(kdir, rel), 0o755)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(kdir, rel), data, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	r, err := git.PlainInit(repo, false)
	if err != nil {
		t.Fatal(err)
	}
	wt, err := r.Worktree()
	if err != nil {
		t.Fatal(err)
	}
	if err := wt.AddGlob("kernel"); err != nil {
		t.Fatal(err)
	}
	sig := &object.Signature{Name: "test", Email: "test@lkbuild.invalid", When: time.Unix(1700000000, 0).UTC()}
	if _, err := wt.Commit("kernel", &git.CommitOptions{Author: sig, Committer: sig}); err != nil {
		t.Fatal(err)
	}
	// A new key each time: untracked, so that two checkouts have one
	// commit and series hash.
	if _, err := pgptest.WriteKeyring(filepath.Join(kdir, "common", "keys.asc")); err != nil {
		t.Fatal(err)
	}
	return kdir
}

// fakeWorld stands in for everything outside Build.
type fakeWorld struct {
	t       *testing.T
	srcDir  string
	rootDir string
	digest  v1.Hash
	// crossDir is the tree of fakeCrossImage, for the fast path.
	crossDir string

	mu       sync.Mutex
	steps    []string      // step commands and actions, in the order they ran
	requests []stepRequest // the actions' requests
	// fail, when set, is asked about each run; a non-nil error fails it
	// after writing out to the command's stdout.
	fail func(spec sandbox.Spec) (out string, err error)
}

func newFakeWorld(t *testing.T) *fakeWorld {
	t.Helper()
	w := &fakeWorld{t: t, srcDir: t.TempDir(), rootDir: t.TempDir()}
	if err := os.WriteFile(filepath.Join(w.srcDir, "Makefile"), []byte("all:\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var err error
	if w.digest, err = v1.NewHash("sha256:" + strings.Repeat("ab", 32)); err != nil {
		t.Fatal(err)
	}
	return w
}

func (w *fakeWorld) options() []Option {
	return []Option{
		withSources(func(ctx context.Context, o kernelsrc.Options, v kernel.Version) (kernelsrc.Tree, error) {
			if o.Keyring == nil || o.Dir == "" {
				return kernelsrc.Tree{}, errors.New("fake source: no keyring or dir")
			}
			return kernelsrc.Tree{Dir: w.srcDir, Version: v, SHA256: strings.Repeat("cd", 32), URL: "https://cdn.kernel.org/fake.tar.xz"}, nil
		}),
		withGit(func(ctx context.Context, url, ref, dir string, _ ...gitfetch.Option) (gitfetch.Checkout, error) {
			return gitfetch.Checkout{}, errors.New("fake git: the tests build without microcode")
		}),
		withRootfs(func(ctx context.Context, ref string, a kernel.Arch, o toolchain.RootfsOptions) (toolchain.Rootfs, error) {
			w.record("rootfs " + ref + " " + a.Uname)
			if ref == fakeCrossImage {
				return toolchain.Rootfs{Dir: w.crossDir, Ref: ref, Digest: w.digest}, nil
			}
			return toolchain.Rootfs{Dir: w.rootDir, Ref: ref, Digest: w.digest}, nil
		}),
		withRunner(w.run),
	}
}

// hostPath maps a path inside the sandbox to where the spec's mounts put
// it on the host: a bind's source, a writable overlay's upper dir.
func hostPath(spec sandbox.Spec, p string) (string, bool) {
	best := -1
	for i, m := range spec.Mounts {
		if (p == m.Target || strings.HasPrefix(p, m.Target+"/")) && (best < 0 || len(m.Target) > len(spec.Mounts[best].Target)) {
			best = i
		}
	}
	if best < 0 {
		return "", false
	}
	m := spec.Mounts[best]
	rest := strings.TrimPrefix(p, m.Target)
	switch {
	case m.Overlay != nil && m.Overlay.Upper != "":
		return filepath.Join(m.Overlay.Upper, rest), true
	case m.Overlay == nil && !m.ReadOnly:
		return filepath.Join(m.Source, rest), true
	}
	return "", false
}

// run is the fake sandbox: a step action writes its output file with
// fixed content, make prints two objects, kernelrelease the release.
func (w *fakeWorld) run(ctx context.Context, spec sandbox.Spec) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	stdout := spec.Stdout
	if stdout == nil {
		stdout = io.Discard
	}
	if len(spec.Args) == 2 && spec.Args[1] == StepArg {
		var req stepRequest
		if err := json.NewDecoder(spec.Stdin).Decode(&req); err != nil {
			return err
		}
		w.mu.Lock()
		w.requests = append(w.requests, req)
		w.mu.Unlock()
		var to string
		switch {
		case req.Content != nil:
			to = req.Content.Path
		case req.Copy != nil:
			to = req.Copy.To
		case req.Tar != nil:
			to = req.Tar.To
		}
		w.record("action " + to)
		if out, err := w.failed(spec); err != nil {
			fmt.Fprint(stdout, out)
			return err
		}
		if to != "" {
			host, ok := hostPath(spec, to)
			if !ok {
				return fmt.Errorf("fake: %s is not writable in the sandbox", to)
			}
			if err := os.MkdirAll(filepath.Dir(host), 0o755); err != nil {
				return err
			}
			if err := os.WriteFile(host, []byte("fake "+to+"\n"), 0o644); err != nil {
				return err
			}
		}
		_, err := io.WriteString(stdout, "{}\n")
		return err
	}
	w.record(strings.Join(spec.Args, " "))
	if out, err := w.failed(spec); err != nil {
		fmt.Fprint(stdout, out)
		return err
	}
	switch {
	case slices.Contains(spec.Args, "kernelrelease"):
		fmt.Fprintln(stdout, "6.12.117-linuxkit")
	case isCompile(spec):
		fmt.Fprint(stdout, "  CC      init/main.o\n  CC [M]  lib/crc7.o\n")
	}
	return nil
}

// isCompile tells the plan's compile step (the one make with KCFLAGS) from
// the other makes, which get -j too.
func isCompile(spec sandbox.Spec) bool {
	return len(spec.Args) > 1 && spec.Args[0] == "make" && slices.Contains(spec.Args, "KCFLAGS=-fno-pie")
}

func (w *fakeWorld) record(s string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.steps = append(w.steps, s)
}

func (w *fakeWorld) failed(spec sandbox.Spec) (string, error) {
	if w.fail == nil {
		return "", nil
	}
	return w.fail(spec)
}

// fakeBuild is one build's target, environment and policy.
type fakeBuild struct {
	target *Target
	env    Environment
	pol    Policy
	events []Event
}

func newFakeBuild(t *testing.T, dir string, req Request) *fakeBuild {
	t.Helper()
	req.KernelDir = checkout(t, dir)
	req.Query.Series = "6.12.x"
	if req.Arch == "" {
		req.Arch = "x86_64"
	}
	req.NoUcode = true
	req.Jobs = 2
	req.Getenv = func(string) string { return "" }
	tg, err := Resolve(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	cache, err := cachedir.New(filepath.Join(dir, "cache"))
	if err != nil {
		t.Fatal(err)
	}
	out, err := oci.OpenStore(filepath.Join(dir, "out"))
	if err != nil {
		t.Fatal(err)
	}
	reg, err := oci.NewRegistry()
	if err != nil {
		t.Fatal(err)
	}
	fb := &fakeBuild{target: tg, env: Environment{Registry: reg, Cache: cache, Output: out}, pol: Policy{XZLevel: DefaultXZLevel, Version: "test"}}
	fb.pol.Events = func(e Event) { fb.events = append(fb.events, e) }
	return fb
}

func (fb *fakeBuild) run(w *fakeWorld) (*BuildResult, error) {
	return Build(context.Background(), fb.target, fb.env, fb.pol, w.options()...)
}

// checkNothingLeft checks that a failed build named no image and left no
// scratch space.
func (fb *fakeBuild) checkNothingLeft(t *testing.T) {
	t.Helper()
	for _, tag := range fb.target.Tags {
		if _, _, err := fb.env.Output.ImageByName(tag.String()); err == nil {
			t.Errorf("the failed build named %s in the layout", tag)
		}
	}
	if ents, _ := os.ReadDir(fb.env.Cache.Work()); len(ents) != 0 {
		t.Errorf("scratch left behind: %v", ents)
	}
}

func TestBuildPhasesInOrder(t *testing.T) {
	w := newFakeWorld(t)
	fb := newFakeBuild(t, t.TempDir(), Request{})
	res, err := fb.run(w)
	if err != nil {
		t.Fatal(err)
	}
	var phases []string
	objects := int64(0)
	for _, e := range fb.events {
		switch e.Kind {
		case EventPhaseStart:
			phases = append(phases, e.Phase)
		case EventProgress:
			if e.Unit == "objects" {
				objects = e.Done
				if e.Phase != PhaseCompile {
					t.Errorf("object progress in phase %s", e.Phase)
				}
			}
		}
	}
	want := []string{PhaseFetch, PhaseRootfs, PhasePatch, PhaseConfig, PhaseCompile, PhaseModules, PhasePackage}
	if !slices.Equal(phases, want) {
		t.Errorf("phases %v, want %v", phases, want)
	}
	if objects != 2 {
		t.Errorf("counted %d objects, want 2", objects)
	}
	if res.Release != "6.12.117-linuxkit" || res.Skipped {
		t.Errorf("result %+v", res)
	}
	if _, d, err := fb.env.Output.ImageByName(fb.target.Ref); err != nil || d.Digest != res.Digest {
		t.Errorf("layout has %s: %v %v, want %s", fb.target.Ref, d.Digest, err, res.Digest)
	}
	if p := res.Provenance; p.LkbuildVersion != "test" || p.BuilderDigest != w.digest.String() || len(p.Patches) != 1 || p.SeriesHash != fb.target.Hash {
		t.Errorf("provenance %+v", p)
	}
	// A second build of the same target is skipped.
	again, err := fb.run(w)
	if err != nil || !again.Skipped || again.Digest != res.Digest {
		t.Errorf("rebuild: %+v %v", again, err)
	}
}

// TestBuildDigestIgnoresPaths builds the same kernel twice from
// different directories (checkout, cache, output, the layout the builder
// is read from) with different lkbuild versions: one digest.
func TestBuildDigestIgnoresPaths(t *testing.T) {
	var digests []v1.Hash
	for i, pull := range []string{"oci:/srv/one/layout:builder", "oci:/home/two/elsewhere:builder"} {
		w := newFakeWorld(t)
		fb := newFakeBuild(t, t.TempDir(), Request{BuilderImage: pull})
		fb.pol.Version = fmt.Sprintf("v0.%d", i)
		res, err := fb.run(w)
		if err != nil {
			t.Fatal(err)
		}
		if res.Provenance.BuilderPulled != pull || res.Provenance.LkbuildVersion != fb.pol.Version {
			t.Errorf("provenance does not record the run: %+v", res.Provenance)
		}
		img, _, err := fb.env.Output.ImageByName(fb.target.Ref)
		if err != nil {
			t.Fatal(err)
		}
		m, err := img.Manifest()
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		if got := cfg.Config.Labels[LabelBuildImage]; got != "builder" {
			t.Errorf("buildimage label %q, want the layout's image name", got)
		}
		for k, v := range m.Annotations {
			if strings.Contains(v, pull) || strings.Contains(v, fb.pol.Version) && k != AnnotationPatches {
				t.Errorf("annotation %s=%q names the run", k, v)
			}
		}
		digests = append(digests, res.Digest)
	}
	if digests[0] != digests[1] {
		t.Errorf("digests differ: %v", digests)
	}
}

func TestBuildPatchFailure(t *testing.T) {
	w := newFakeWorld(t)
	w.fail = func(spec sandbox.Spec) (string, error) {
		if spec.Args[0] == "patch" {
			return "patching file init/main.c\nHunk #1 FAILED at 1.\n1 out of 1 hunk FAILED\n", &sandbox.ExitError{Code: 1}
		}
		return "", nil
	}
	fb := newFakeBuild(t, t.TempDir(), Request{})
	_, err := fb.run(w)
	var se *StepError
	if !errors.As(err, &se) {
		t.Fatalf("got %v, want a StepError", err)
	}
	var ee *sandbox.ExitError
	if se.Patch == "" || len(se.Rejected) != 1 || se.Code != 1 || !errors.As(err, &ee) || se.Log == "" {
		t.Errorf("step error %+v", se)
	}
	if !strings.HasPrefix(se.Rejected[0], "--- init/main.c\n@@") {
		t.Errorf("rejected hunk %q", se.Rejected[0])
	}
	fb.checkNothingLeft(t)
	for _, s := range w.steps {
		if strings.HasPrefix(s, "make") {
			t.Errorf("ran %q after the patch failed", s)
		}
	}
}

// TestBuildMissingProgram: a builder without patch is reported as that,
// not as a patch that does not apply.
func TestBuildMissingProgram(t *testing.T) {
	w := newFakeWorld(t)
	w.fail = func(spec sandbox.Spec) (string, error) {
		if spec.Args[0] == "patch" {
			return "", &sandbox.StartError{Name: "patch", Err: fmt.Errorf("exec: %w", syscall.ENOENT)}
		}
		return "", nil
	}
	fb := newFakeBuild(t, t.TempDir(), Request{BuilderImage: "registry.example/bare:1"})
	_, err := fb.run(w)
	var se *StepError
	if !errors.As(err, &se) || !errors.Is(err, sandbox.ErrCommandNotFound) {
		t.Fatalf("got %v, want a StepError for a missing program", err)
	}
	if msg := err.Error(); !strings.Contains(msg, "patch is not in the builder image registry.example/bare:1") || strings.Contains(msg, "does not apply") {
		t.Errorf("message %q", msg)
	}
	log, _ := os.ReadFile(se.Log)
	if !strings.Contains(string(log), "no such file or directory") {
		t.Errorf("the log does not say why the step failed:\n%s", log)
	}
	fb.checkNothingLeft(t)
}

func TestBuildCancelCleansUp(t *testing.T) {
	w := newFakeWorld(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w.fail = func(spec sandbox.Spec) (string, error) {
		if isCompile(spec) {
			cancel()
			return "", ctx.Err()
		}
		return "", nil
	}
	fb := newFakeBuild(t, t.TempDir(), Request{})
	_, err := Build(ctx, fb.target, fb.env, fb.pol, w.options()...)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
	fb.checkNothingLeft(t)
}

// TestBuildPushFailureKeepsImage pushes to a registry that refuses every
// upload: the image stays in the layout, and the error says so.
func TestBuildPushFailureKeepsImage(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/v2/":
			rw.WriteHeader(http.StatusOK)
		case r.Method == http.MethodGet || r.Method == http.MethodHead:
			rw.WriteHeader(http.StatusNotFound)
		default:
			rw.WriteHeader(http.StatusForbidden)
		}
	}))
	defer srv.Close()
	w := newFakeWorld(t)
	fb := newFakeBuild(t, t.TempDir(), Request{Query: kernel.Query{Org: strings.TrimPrefix(srv.URL, "http://") + "/lk"}})
	reg, err := oci.NewRegistry(oci.WithInsecure(true))
	if err != nil {
		t.Fatal(err)
	}
	fb.env.Registry, fb.pol.Push = reg, true
	res, err := fb.run(w)
	var pe *PushError
	if !errors.As(err, &pe) || pe.Layout != fb.env.Output.Dir() {
		t.Fatalf("got %v, want a PushError naming the layout", err)
	}
	if _, d, err := fb.env.Output.ImageByName(fb.target.Ref); err != nil || d.Digest != res.Digest {
		t.Errorf("image not kept: %v", err)
	}
}

func TestBuildChecksOptions(t *testing.T) {
	fb := newFakeBuild(t, t.TempDir(), Request{})
	for name, c := range map[string]struct {
		env Environment
		pol Policy
	}{
		"no registry": {Environment{Cache: fb.env.Cache, Output: fb.env.Output}, fb.pol},
		"no cache":    {Environment{Registry: fb.env.Registry, Output: fb.env.Output}, fb.pol},
		"no output":   {Environment{Registry: fb.env.Registry, Cache: fb.env.Cache}, fb.pol},
		"xz level":    {fb.env, Policy{XZLevel: 10}},
	} {
		if _, err := Build(context.Background(), fb.target, c.env, c.pol); err == nil {
			t.Errorf("%s: built", name)
		}
	}
}

// TestBuildKeepsObjectTree: a build leaves its object tree for the next
// build of the target, which builds on it, unless --clean or the last
// build was cancelled; a build whose make failed keeps it.
func TestBuildKeepsObjectTree(t *testing.T) {
	type run struct {
		clean  bool
		fail   string // "make": the compile exits 2; "cancel": cancelled in it
		wantOK bool
		// incremental is what the build reports (when it gets that far).
		incremental bool
	}
	tests := []struct {
		name string
		runs []run
	}{
		{"first clean, then incremental", []run{{wantOK: true}, {wantOK: true, incremental: true}}},
		{"--clean", []run{{wantOK: true}, {clean: true, wantOK: true}, {wantOK: true, incremental: true}}},
		{"after a failed make", []run{{wantOK: true}, {fail: "make", incremental: true}, {wantOK: true, incremental: true}}},
		{"after a cancelled build", []run{{wantOK: true}, {fail: "cancel", incremental: true}, {wantOK: true}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fb := newFakeBuild(t, t.TempDir(), Request{})
			for i, r := range tt.runs {
				w := newFakeWorld(t)
				ctx, cancel := context.WithCancel(context.Background())
				w.fail = func(spec sandbox.Spec) (string, error) {
					switch {
					case !isCompile(spec):
					case r.fail == "make":
						return "", &sandbox.ExitError{Code: 2}
					case r.fail == "cancel":
						cancel()
						return "", ctx.Err()
					}
					return "", nil
				}
				fb.pol.Force, fb.pol.Clean = true, r.clean
				var inc bool
				fb.pol.Events = func(e Event) {
					if e.Kind == EventNote && strings.HasPrefix(e.Message, "object tree: building on") {
						inc = true
					}
				}
				res, err := Build(ctx, fb.target, fb.env, fb.pol, w.options()...)
				cancel()
				if (err == nil) != r.wantOK {
					t.Fatalf("build %d: %v, want success %v", i, err, r.wantOK)
				}
				if err == nil && res.Incremental != r.incremental {
					t.Errorf("build %d: Incremental %v, want %v", i, res.Incremental, r.incremental)
				}
				if inc != r.incremental {
					t.Errorf("build %d: incremental note %v, want %v", i, inc, r.incremental)
				}
			}
		})
	}
}
