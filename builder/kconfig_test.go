package builder

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/lkbuild/lkbuild/kernel"
	"github.com/lkbuild/lkbuild/sandbox"
)

// refreshRunner is the fake world's sandbox, with the refreshed .config
// (the copy to Paths.Out/config) given the content final.
func refreshRunner(w *fakeWorld, final []byte) runFunc {
	return func(ctx context.Context, spec sandbox.Spec) error {
		if err := w.run(ctx, spec); err != nil {
			return err
		}
		host, ok := hostPath(spec, "/out/"+refreshedName)
		if !ok {
			return nil
		}
		if data, err := os.ReadFile(host); err == nil && strings.HasPrefix(string(data), "fake ") {
			return os.WriteFile(host, final, 0o644)
		}
		return nil
	}
}

func TestRefreshConfig(t *testing.T) {
	const extra = "# CONFIG_NEW_SYMBOL is not set\n"
	tests := []struct {
		name        string
		stale       bool
		opts        RefreshOptions
		wantWritten bool
		// wantSteps are the commands and actions that run after the
		// patches, in order.
		wantSteps []string
	}{
		{name: "final", opts: RefreshOptions{Write: true},
			wantSteps: []string{"action /linux/arch/x86/configs/x86_64_defconfig", "make defconfig", "make oldconfig", "action /out/config"}},
		{name: "stale, check", stale: true,
			wantSteps: []string{"action /linux/arch/x86/configs/x86_64_defconfig", "make defconfig", "make oldconfig", "action /out/config"}},
		{name: "stale, write", stale: true, opts: RefreshOptions{Write: true}, wantWritten: true,
			wantSteps: []string{"action /linux/arch/x86/configs/x86_64_defconfig", "make defconfig", "make oldconfig", "action /out/config"}},
		{name: "answers", stale: true, opts: RefreshOptions{Write: true, Answers: []byte("y\n")}, wantWritten: true,
			wantSteps: []string{"action /linux/.config", `sh -c make oldconfig < "$1" && cp .config "$2" sh ` + answersPath + " arch/x86/configs/x86_64_defconfig",
				"make defconfig", "make oldconfig", "action /out/config"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newFakeWorld(t)
			fb := newFakeBuild(t, t.TempDir(), Request{})
			stored := fb.target.Plan.Config
			final := stored
			if tt.stale {
				final = append(slices.Clone(stored), extra...)
			}
			var answers []string
			run := refreshRunner(w, final)
			opts := append(w.options(), withRunner(func(ctx context.Context, spec sandbox.Spec) error {
				for _, m := range spec.Mounts {
					if m.Target == answersPath {
						data, _ := os.ReadFile(m.Source)
						answers = append(answers, string(data))
					}
				}
				return run(ctx, spec)
			}))
			res, err := RefreshConfig(context.Background(), fb.target, fb.env, tt.opts, opts...)
			if err != nil {
				t.Fatal(err)
			}
			if (res.Mismatch != nil) != tt.stale {
				t.Errorf("mismatch %v, want one: %v", res.Mismatch, tt.stale)
			}
			if tt.stale && !slices.Equal(res.Mismatch.Symbols, []string{"CONFIG_NEW_SYMBOL"}) {
				t.Errorf("mismatch symbols %v", res.Mismatch.Symbols)
			}
			if res.Written != tt.wantWritten {
				t.Errorf("written %v, want %v", res.Written, tt.wantWritten)
			}
			if want := filepath.Join(fb.target.KernelDir, "6.12.x", "config-x86_64"); res.Path != want {
				t.Errorf("path %s, want %s", res.Path, want)
			}
			onDisk, err := os.ReadFile(res.Path)
			if err != nil {
				t.Fatal(err)
			}
			want := stored
			if tt.wantWritten {
				want = final
			}
			if string(onDisk) != string(want) || string(res.Final) != string(final) {
				t.Errorf("stored config on disk (%d bytes) or Final (%d bytes) is not what the refresh made", len(onDisk), len(res.Final))
			}
			var after []string
			for i, s := range w.steps {
				if strings.HasPrefix(s, "patch ") {
					after = w.steps[i+1:]
				}
			}
			if !slices.Equal(after, tt.wantSteps) {
				t.Errorf("steps after the patches:\n%q\nwant\n%q", after, tt.wantSteps)
			}
			if tt.opts.Answers != nil && !slices.Equal(answers, []string{"y\n"}) {
				t.Errorf("answers bound %q", answers)
			}
			if ents, _ := os.ReadDir(fb.env.Cache.Work()); len(ents) != 0 {
				t.Errorf("scratch left behind: %v", ents)
			}
		})
	}
}

func TestPrepareKconfig(t *testing.T) {
	w := newFakeWorld(t)
	fb := newFakeBuild(t, t.TempDir(), Request{})
	k, err := PrepareKconfig(context.Background(), []*Target{fb.target}, fb.env, nil, w.options()...)
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	if !slices.ContainsFunc(w.steps, func(s string) bool { return strings.HasPrefix(s, "patch ") }) {
		t.Errorf("no patch applied: %q", w.steps)
	}
	want := KconfigTree{Version: "6.12.117", Dir: "/linux-6.12.117", Defconfig: "arch/x86/configs/x86_64_defconfig",
		Config: fb.target.Plan.ConfigFiles[0], Save: "/src/6.12.x/config-x86_64"}
	if trees := k.Trees(); len(trees) != 1 || trees[0] != want {
		t.Fatalf("trees %+v, want %+v", trees, want)
	}
	spec := k.Spec([]string{"sh"}, "TERM=xterm")
	if spec.Rootfs != w.rootDir || spec.Dir != "/" {
		t.Errorf("rootfs %s dir %s", spec.Rootfs, spec.Dir)
	}
	for _, e := range spec.Env {
		if strings.HasPrefix(e, kernel.KeyKernelVersion+"=") || strings.HasPrefix(e, kernel.KeyKernelSeries+"=") {
			t.Errorf("env names one kernel: %s", e)
		}
	}
	if !slices.Contains(spec.Env, "TERM=xterm") || !slices.Contains(spec.Env, "ARCH=x86") {
		t.Errorf("env %q lacks TERM or ARCH", spec.Env)
	}
	var src, tree *sandbox.Mount
	for i, m := range spec.Mounts {
		switch m.Target {
		case "/src":
			src = &spec.Mounts[i]
		case "/linux-6.12.117":
			tree = &spec.Mounts[i]
		}
	}
	if src == nil || src.ReadOnly || src.Source != fb.target.KernelDir {
		t.Errorf("kernel dir mount %+v, want %s read-write", src, fb.target.KernelDir)
	}
	if tree == nil || tree.Overlay == nil || tree.Overlay.Upper == "" || len(tree.Overlay.Lower) != 2 || tree.Overlay.Lower[1] != w.srcDir {
		t.Fatalf("tree mount %+v, want a writable overlay over the patches and the cached source", tree)
	}
	data, err := os.ReadFile(filepath.Join(tree.Overlay.Upper, "arch", "x86", "configs", "x86_64_defconfig"))
	if err != nil || string(data) != string(fb.target.Plan.Config) {
		t.Errorf("the defconfig in the tree is not the stored config (%v)", err)
	}
	k.Close()
	if ents, _ := os.ReadDir(fb.env.Cache.Work()); len(ents) != 0 {
		t.Errorf("scratch left behind: %v", ents)
	}
}

func TestKconfigRefusesTargets(t *testing.T) {
	w := newFakeWorld(t)
	tests := []struct {
		name string
		req  Request
	}{
		{"debug", Request{Query: kernel.Query{Debug: true}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fb := newFakeBuild(t, t.TempDir(), tt.req)
			if _, err := PrepareKconfig(context.Background(), []*Target{fb.target}, fb.env, nil, w.options()...); err == nil || !strings.Contains(err.Error(), "fragment") {
				t.Errorf("PrepareKconfig: %v, want a refusal", err)
			}
			if _, err := RefreshConfig(context.Background(), fb.target, fb.env, RefreshOptions{}, w.options()...); err == nil || !strings.Contains(err.Error(), "fragment") {
				t.Errorf("RefreshConfig: %v, want a refusal", err)
			}
		})
	}
	if _, err := PrepareKconfig(context.Background(), nil, Environment{}, nil); err == nil {
		t.Error("PrepareKconfig of no kernel: no error")
	}
}

func TestKconfigPatchFailure(t *testing.T) {
	w := newFakeWorld(t)
	w.fail = func(spec sandbox.Spec) (string, error) {
		if spec.Args[0] == "patch" {
			return "patching file init/main.c\nHunk #1 FAILED at 1.\n", &sandbox.ExitError{Code: 1}
		}
		return "", nil
	}
	fb := newFakeBuild(t, t.TempDir(), Request{})
	_, err := PrepareKconfig(context.Background(), []*Target{fb.target}, fb.env, nil, w.options()...)
	var se *StepError
	if !errors.As(err, &se) || se.Patch == "" {
		t.Fatalf("err %v, want the patch's StepError", err)
	}
	if ents, _ := os.ReadDir(fb.env.Cache.Work()); len(ents) != 0 {
		t.Errorf("scratch left behind: %v", ents)
	}
}
