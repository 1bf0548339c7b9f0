package builder

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lkbuild/lkbuild/kernel"
	"github.com/lkbuild/lkbuild/sandbox"
)

// TestBump runs Bump on the fake world: what it would write, in order,
// and what Write writes; a patch that fails ends it with nothing to
// write, or with Force build-args alone.
func TestBump(t *testing.T) {
	v118 := kernel.Version{Major: 6, Minor: 12, Patch: 118}
	x86, _ := kernel.ParseArch("x86_64")
	tests := []struct {
		name      string
		failPatch bool
		force     bool
		// want are the files Changes names, in order.
		want    []string
		skipped bool
	}{
		{name: "patches apply", want: []string{"6.12.x/config-x86_64", "6.12.x/build-args"}},
		{name: "a patch fails", failPatch: true},
		{name: "a patch fails, force", failPatch: true, force: true, want: []string{"6.12.x/build-args"}, skipped: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := newFakeWorld(t)
			if tc.failPatch {
				w.fail = func(spec sandbox.Spec) (string, error) {
					if spec.Args[0] == "patch" {
						return "patching file init/main.c\nHunk #1 FAILED at 893.\n", &sandbox.ExitError{Code: 1}
					}
					return "", nil
				}
			}
			fb := newFakeBuild(t, t.TempDir(), Request{})
			kdir := fb.target.KernelDir
			before, err := os.ReadFile(filepath.Join(kdir, "6.12.x", "build-args"))
			if err != nil {
				t.Fatal(err)
			}
			base := fb.target.Request
			base.Query = kernel.Query{}
			var whats []string
			res, err := Bump(context.Background(), BumpRequest{
				PatchTrial: PatchTrial{
					Base:   base,
					Env:    func(kernel.Arch) (Environment, error) { return fb.env, nil },
					Events: func(what string, e Event) { whats = append(whats, what) },
				},
				Version: v118, Arches: []kernel.Arch{x86}, Force: tc.force,
			}, w.options()...)
			if len(whats) == 0 || whats[0] != "patches 6.12.118" {
				t.Errorf("events about %q", whats)
			}
			if err != nil {
				t.Fatal(err)
			}
			if res.Old.String() != "6.12.117" || len(res.Left) != 2 || res.ConfigsSkipped != tc.skipped {
				t.Errorf("result %+v", res)
			}
			if (res.Failed > 0) != tc.failPatch {
				t.Errorf("%d failed, want failures %v", res.Failed, tc.failPatch)
			}
			var got []string
			for _, c := range res.Changes {
				rel, _ := filepath.Rel(kdir, c.Path)
				got = append(got, filepath.ToSlash(rel))
			}
			if strings.Join(got, " ") != strings.Join(tc.want, " ") {
				t.Fatalf("changes %q, want %q", got, tc.want)
			}
			if err := res.Write(); err != nil {
				t.Fatal(err)
			}
			after, _ := os.ReadFile(filepath.Join(kdir, "6.12.x", "build-args"))
			wantArgs := string(before)
			if len(tc.want) > 0 {
				wantArgs = strings.Replace(wantArgs, "KERNEL_VERSION=6.12.117\n", "KERNEL_VERSION=6.12.118\n", 1)
			}
			if string(after) != wantArgs {
				t.Errorf("build-args:\n%s\nwant:\n%s", after, wantArgs)
			}
			if ents, _ := os.ReadDir(fb.env.Cache.Work()); len(ents) != 0 {
				t.Errorf("scratch left behind: %v", ents)
			}
		})
	}
}
