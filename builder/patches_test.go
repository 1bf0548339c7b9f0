package builder

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lkbuild/lkbuild/internal/kernelsrc"
	"github.com/lkbuild/lkbuild/kernel"
	"github.com/lkbuild/lkbuild/sandbox"
)

// TestCheckPatchesGoesOn: every patch is tried, a failed one's hunks and
// an already applied one are told apart, and nothing but patch runs.
func TestCheckPatchesGoesOn(t *testing.T) {
	dir := t.TempDir()
	kdir := checkout(t, dir)
	patches := filepath.Join(kdir, "6.12.x", "patches")
	first, err := os.ReadFile(filepath.Join(patches, "0001-init-print-lkbuild-e2e-marker.patch"))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"0002-merged-upstream.patch", "0003-still-fine.patch"} {
		if err := os.WriteFile(filepath.Join(patches, name), first, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	w := newFakeWorld(t)
	w.fail = func(spec sandbox.Spec) (string, error) {
		if spec.Args[0] != "patch" {
			return "", nil
		}
		switch file := spec.Args[len(spec.Args)-1]; {
		case strings.HasSuffix(file, "0001-init-print-lkbuild-e2e-marker.patch"):
			return "patching file init/main.c\nHunk #1 FAILED at 893.\n1 out of 1 hunk FAILED -- saving rejects to file init/main.c.rej\n", &sandbox.ExitError{Code: 1}
		case strings.HasSuffix(file, "0002-merged-upstream.patch"):
			return "patching file init/main.c\nReversed (or previously applied) patch detected!  Skipping patch.\n1 out of 1 hunk ignored\n", &sandbox.ExitError{Code: 1}
		}
		return "", nil
	}
	var fetched kernel.Version
	opts := append(w.options(), withSources(func(ctx context.Context, o kernelsrc.Options, v kernel.Version) (kernelsrc.Tree, error) {
		fetched = v
		return kernelsrc.Tree{Dir: w.srcDir, Version: v, SHA256: strings.Repeat("cd", 32)}, nil
	}))
	tg, err := Resolve(context.Background(), Request{
		KernelDir: kdir, Query: kernel.Query{Series: "6.12.x", Version: "6.12.118"}, Bump: true,
		Arch: "x86_64", NoUcode: true, Jobs: 2, Getenv: func(string) string { return "" },
	})
	if err != nil {
		t.Fatal(err)
	}
	env := newFakeBuild(t, t.TempDir(), Request{}).env
	rep, err := CheckPatches(context.Background(), tg, env, nil, opts...)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Version != "6.12.118" || fetched.String() != "6.12.118" {
		t.Errorf("tried on %s, fetched %s; want 6.12.118", rep.Version, fetched)
	}
	if len(rep.Patches) != 3 {
		t.Fatalf("%d results, want 3: %+v", len(rep.Patches), rep.Patches)
	}
	p1, p2, p3 := rep.Patches[0], rep.Patches[1], rep.Patches[2]
	if p1.Applied || p1.Reversed || len(p1.Rejected) != 1 || !strings.HasPrefix(p1.Rejected[0], "--- init/main.c\n@@ -893") {
		t.Errorf("the failed patch: %+v", p1)
	}
	if p2.Applied || !p2.Reversed || len(p2.Rejected) != 0 {
		t.Errorf("the merged patch: %+v", p2)
	}
	if !p3.Applied || !strings.HasSuffix(p3.File, "0003-still-fine.patch") {
		t.Errorf("the good patch: %+v", p3)
	}
	if got := len(rep.Failed()); got != 2 {
		t.Errorf("%d failed, want 2", got)
	}
	for _, s := range w.steps {
		if !strings.HasPrefix(s, "patch ") && !strings.HasPrefix(s, "rootfs ") {
			t.Errorf("ran %q", s)
		}
	}
	if ents, _ := os.ReadDir(env.Cache.Work()); len(ents) != 0 {
		t.Errorf("scratch left behind: %v", ents)
	}
	if _, err := os.Stat(rep.Log); err != nil {
		t.Errorf("log: %v", err)
	}
}

// TestCheckPatchesMissingPatch: a builder without patch is an error, not
// a patch that does not apply.
func TestCheckPatchesMissingPatch(t *testing.T) {
	w := newFakeWorld(t)
	w.fail = func(spec sandbox.Spec) (string, error) {
		if spec.Args[0] == "patch" {
			return "", &sandbox.StartError{Name: "patch", Err: sandbox.ErrCommandNotFound}
		}
		return "", nil
	}
	fb := newFakeBuild(t, t.TempDir(), Request{})
	rep, err := CheckPatches(context.Background(), fb.target, fb.env, nil, w.options()...)
	if !errors.Is(err, sandbox.ErrCommandNotFound) || !strings.Contains(err.Error(), "patch is not in the builder image") {
		t.Fatalf("got %v, want the missing program", err)
	}
	if len(rep.Patches) != 0 {
		t.Errorf("results %+v", rep.Patches)
	}
}
