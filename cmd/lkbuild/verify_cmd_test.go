package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"

	"github.com/lkbuild/lkbuild/internal/imagediff"
	"github.com/lkbuild/lkbuild/oci"
)

func TestPrintVerify(t *testing.T) {
	h := func(c string) v1.Hash { return v1.Hash{Algorithm: "sha256", Hex: strings.Repeat(c, 64)} }
	when := time.Unix(1700000000, 0)
	members := []imagediff.Member{
		{Path: "kernel", A: &imagediff.Entry{Type: "file", Mode: 0o644, Size: 10, SHA256: strings.Repeat("1", 64), ModTime: when},
			B: &imagediff.Entry{Type: "file", Mode: 0o644, Size: 11, SHA256: strings.Repeat("2", 64), ModTime: when}},
		{Path: "src/linux.tar.xz/linux/init/main.c", A: &imagediff.Entry{Type: "file", Size: 5}, B: &imagediff.Entry{Type: "file", Size: 5},
			Diff: "--- a/x\n+++ b/x\n@@ -1 +1 @@\n-old\n+new\n"},
		{Path: "only-in-rebuild", B: &imagediff.Entry{Type: "file"}},
	}
	for _, tc := range []struct {
		name string
		v    verifyOutput
		show int
		want []string
		not  []string
	}{
		{"identical", verifyOutput{Ref: "r", Identical: true, Image: h("a").String(), Rebuilt: h("a").String(), Seconds: 61, Provenance: "checked"},
			20, []string{"identical: r", "rebuilt in 61 s", "provenance checked"}, []string{"DIFFERENT"}},
		{"different", verifyOutput{Ref: "r", Image: h("a").String(), Rebuilt: h("b").String(), Reused: true, Layout: "/keep",
			Diff: &imagediff.Report{
				Manifest: []imagediff.Field{{Path: "annotations.dev.lkbuild.patches", A: `"x"`, B: `"y"`}},
				Layers:   []imagediff.LayerDiff{{Index: 0, A: &imagediff.LayerInfo{Digest: h("c")}, Members: members}},
			}}, 20,
			[]string{"DIFFERENT", "the rebuild kept in /keep", "manifest annotations.dev.lkbuild.patches", "layer 0: 3 differing members",
				"sha256:" + strings.Repeat("c", 64), "rebuilt " + "no such layer", "size 10 sha256 " + strings.Repeat("1", 64),
				"src/linux.tar.xz/linux/init/main.c", "    +new", "only-in-rebuild\n    image:   absent"}, nil},
		{"capped", verifyOutput{Ref: "r", Diff: &imagediff.Report{Layers: []imagediff.LayerDiff{{Members: members}}}}, 1,
			[]string{"kernel", "... 2 more"}, []string{"main.c"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b strings.Builder
			printVerify(&b, &tc.v, tc.show)
			for _, w := range tc.want {
				if !strings.Contains(b.String(), w) {
					t.Errorf("output lacks %q:\n%s", w, b.String())
				}
			}
			for _, n := range tc.not {
				if strings.Contains(b.String(), n) {
					t.Errorf("output has %q:\n%s", n, b.String())
				}
			}
		})
	}
}

func TestPrintable(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"kernel.tar/lib/x.ko", "kernel.tar/lib/x.ko"},
		{"a\tb", "a\tb"},
		{"evil\x1b[2J\x1b[1;1HIDENTICAL", `evil\x1b[2J\x1b[1;1HIDENTICAL`},
		{"cr\rlf\n", `cr\x0dlf\x0a`},
		{"c1\u009bx", `c1\x9bx`},
		{"über", "über"},
	} {
		if got := printable(tc.in); got != tc.want {
			t.Errorf("printable(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestVerifyExitStatus: 1 means "different"; everything that stops a
// verify before a comparison is 2, with a message naming it.
func TestVerifyExitStatus(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "oci")
	store, err := oci.OpenStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	img, err := random.Image(64, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := store.WriteLayout(context.Background(), img, v1.Platform{OS: "linux", Architecture: "amd64"}, "plain"); err != nil {
		t.Fatal(err)
	}
	cache := t.TempDir()
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no image", []string{"verify"}, "verify needs one image"},
		{"bad flag", []string{"verify", "--jsn", "oci:" + dir + ":plain"}, "jsn"},
		{"not a layout", []string{"verify", "oci:" + t.TempDir() + ":x"}, "no OCI layout"},
		{"no such image", []string{"verify", "oci:" + dir + ":other"}, "other"},
		{"no provenance", []string{"verify", "oci:" + dir + ":plain"}, "records no lkbuild inputs"},
		{"sbom of an image without one", []string{"sbom", "oci:" + dir + ":plain"}, "has no SBOM attached"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, stderr, code := lkbuild(t, append([]string{"--cache-dir", cache}, tc.args...)...)
			want := 2
			if tc.args[0] == "sbom" {
				want = 1
			}
			if code != want || !strings.Contains(stderr, tc.want) {
				t.Errorf("exit %d, want %d with %q:\n%s", code, want, tc.want, stderr)
			}
		})
	}
}
