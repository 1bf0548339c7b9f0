package oci

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/lkbuild/lkbuild/internal/testenv"
)

// TestSkopeoReadsLayout: skopeo, an independent reader of OCI layouts,
// finds lkbuild's images by oci:DIR:TAG (the bare tag) and by the full
// name, and not by a tag that names different images in the layout.
func TestSkopeoReadsLayout(t *testing.T) {
	skopeo := testenv.LookPath(t, "skopeo", "skopeo")
	ctx := context.Background()
	s := newTestStore(t)
	imgs := map[string]v1.Image{"amd64": kernelImage(t, amd64, "a"), "arm64": kernelImage(t, arm64, "b")}
	for arch, img := range imgs {
		if err := s.Publish(ctx, kernelEntry(img, linux(arch), "linuxkit/kernel", "6.12.117", "abc")); err != nil {
			t.Fatal(err)
		}
	}
	// Another org's build of another series hash: its V-H-A tags are its
	// own, but 6.12.117-amd64 and 6.12.117 now name two images each.
	other := kernelImage(t, amd64, "other")
	if err := s.Publish(ctx, kernelEntry(other, amd64, "registry.example/other/kernel", "6.12.117", "def")); err != nil {
		t.Fatal(err)
	}
	// run returns skopeo's output, or an error with what it printed.
	run := func(args ...string) ([]byte, error) {
		cmd := exec.Command(skopeo, args...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			return nil, fmt.Errorf("skopeo %v: %w\n%s", args, err, stderr.String())
		}
		return out, nil
	}
	for _, tc := range []struct {
		name string
		want string // "amd64", "arm64", "other", "index" (of both), "" an error
	}{
		{"6.12.117-abc-amd64", "amd64"},
		{"6.12.117-abc-arm64", "arm64"},
		{"6.12.117-arm64", "arm64"},
		{"6.12.117-def-amd64", "other"},
		{"6.12.117-abc", "index"},
		{"docker.io/linuxkit/kernel:6.12.117-amd64", "amd64"},
		{"registry.example/other/kernel:6.12.117-amd64", "other"},
		{"6.12.117-amd64", ""},
		{"6.12.117", ""},
		{"6.12.118-abc-amd64", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			raw, err := run("inspect", "--raw", "oci:"+s.Dir()+":"+tc.name)
			switch {
			case tc.want == "" && err == nil:
				t.Fatalf("skopeo found %s:\n%s", tc.name, raw)
			case tc.want == "":
				return
			case err != nil:
				t.Fatal(err)
			case tc.want == "index":
				var im v1.IndexManifest
				if err := json.Unmarshal(raw, &im); err != nil || len(im.Manifests) != 2 {
					t.Fatalf("%s is not the index of both arches (%v):\n%s", tc.name, err, raw)
				}
				return
			}
			want := other
			if tc.want != "other" {
				want = imgs[tc.want]
			}
			if got := digestOf(raw); got != digest(t, want) {
				t.Errorf("skopeo reads %s as %s, want the %s image %s", tc.name, got, tc.want, digest(t, want))
			}
		})
	}
	// skopeo copy oci:DIR:TAG oci:OTHER:x keeps the image as it is.
	dst := filepath.Join(t.TempDir(), "copy")
	if _, err := run("copy", "oci:"+s.Dir()+":6.12.117-abc-arm64", "oci:"+dst+":x"); err != nil {
		t.Fatal(err)
	}
	copied, err := OpenStore(dst)
	if err != nil {
		t.Fatal(err)
	}
	if _, d, err := copied.ImageByName("x"); err != nil || d.Digest != digest(t, imgs["arm64"]) {
		t.Errorf("skopeo copy gave %s, %v; want %s", d.Digest, err, digest(t, imgs["arm64"]))
	}
}
