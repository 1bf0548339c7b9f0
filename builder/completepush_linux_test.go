package builder

import (
	"context"
	"io"
	"log"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/lkbuild/lkbuild/kernel"
	"github.com/lkbuild/lkbuild/oci"
	"github.com/lkbuild/lkbuild/toolchain"
)

// A build whose image the registry holds, with --push, finishes what a
// push that stopped part way left: the image's other tags and its index
// entries, next to the other arches' (a CI job killed after the first tag,
// retried). What is in place is left alone.
func TestSkippedPushCompletesTags(t *testing.T) {
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer srv.Close()
	ctx := context.Background()
	reg, err := oci.NewRegistry(oci.WithInsecure(true))
	if err != nil {
		t.Fatal(err)
	}
	x86, _ := kernel.ParseArch("x86_64")
	v, _ := kernel.ParseVersion("6.12.117")
	name := kernel.Name{Org: strings.TrimPrefix(srv.URL, "http://") + "/lk", Version: v}
	tags, err := name.Tags("0123abcd", x86)
	if err != nil {
		t.Fatal(err)
	}
	tags = slices.DeleteFunc(tags, func(tg kernel.Tag) bool { return tg.Kind == kernel.TagBuilder })
	byKind := map[kernel.TagKind]string{}
	for _, tg := range tags {
		byKind[tg.Kind] = tg.String()
	}
	img, arm := platformImage(t, "amd64"), platformImage(t, "arm64")
	// The killed job pushed its first tag; another job merged arm64.
	if _, err := reg.Push(ctx, img, byKind[kernel.TagArchImage]); err != nil {
		t.Fatal(err)
	}
	if _, err := reg.MergeIndex(ctx, byKind[kernel.TagReleaseIndex], arm, v1.Platform{OS: "linux", Architecture: "arm64"}); err != nil {
		t.Fatal(err)
	}
	// A stale image under the release arch tag is replaced.
	if _, err := reg.Push(ctx, platformImage(t, "amd64"), byKind[kernel.TagReleaseArchImage]); err != nil {
		t.Fatal(err)
	}
	complete := func() []string {
		t.Helper()
		b := &build{t: &Target{Tags: tags, Arch: x86}, env: Environment{Registry: reg}, pol: Policy{Push: true}}
		b.res.Ref = byKind[kernel.TagArchImage]
		if err := b.completePush(ctx); err != nil {
			t.Fatal(err)
		}
		if d, _ := img.Digest(); b.res.Digest != d {
			t.Errorf("digest %s, want %s", b.res.Digest, d)
		}
		return b.res.Pushed
	}
	want := []string{byKind[kernel.TagReleaseArchImage], byKind[kernel.TagIndex], byKind[kernel.TagReleaseIndex]}
	if got := complete(); !slices.Equal(got, want) {
		t.Errorf("pushed %q, want %q", got, want)
	}
	d, _ := img.Digest()
	if h, err := reg.Head(ctx, byKind[kernel.TagReleaseArchImage]); err != nil || h.Digest != d {
		t.Errorf("%s: %v %v, want %s", byKind[kernel.TagReleaseArchImage], h.Digest, err, d)
	}
	for _, ix := range []string{byKind[kernel.TagIndex], byKind[kernel.TagReleaseIndex]} {
		if ok, err := reg.IndexHolds(ctx, ix, img, toolchain.Platform(x86)); !ok || err != nil {
			t.Errorf("%s does not hold the amd64 image: %v", ix, err)
		}
	}
	if ok, err := reg.IndexHolds(ctx, byKind[kernel.TagReleaseIndex], arm, v1.Platform{OS: "linux", Architecture: "arm64"}); !ok || err != nil {
		t.Errorf("the merge dropped arm64: %v", err)
	}
	// Retried again: everything is in place.
	if got := complete(); len(got) != 0 {
		t.Errorf("a complete image's tags pushed again: %q", got)
	}
}
