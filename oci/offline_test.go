package oci

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// TestOffline pulls online once, then uses an offline Registry: what the
// pull recorded is served without a request, and everything else fails
// with ErrOffline, also without a request.
func TestOffline(t *testing.T) {
	rec := &recorder{}
	host := newTestRegistry(t, rec.wrap)
	imgs := map[string]v1.Image{"amd64": randomImage(t, amd64), "arm64": randomImage(t, arm64)}
	ref := host + "/builder:1"
	pushIndex(t, ref, imgs)
	single := randomImage(t, amd64)
	if err := remote.Write(mustParse(t, host+"/single:1"), single); err != nil {
		t.Fatal(err)
	}
	store, err := OpenStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	online := newTestClient(t)
	for _, r := range []string{ref, host + "/single:1"} {
		if _, err := online.Pull(ctx, r, amd64, store, nil); err != nil {
			t.Fatalf("online pull %s: %v", r, err)
		}
	}

	rec.reset()
	off := newTestClient(t, WithOffline(true))
	if !off.Offline() {
		t.Fatal("Offline() is false")
	}
	want, _ := imgs["amd64"].Digest()
	singleDigest, _ := single.Digest()
	for _, tc := range []struct {
		ref  string
		want v1.Hash
	}{
		{ref, want},
		{host + "/single:1", singleDigest},
		// A digest reference needs no record when the manifest is there.
		{host + "/single@" + singleDigest.String(), singleDigest},
	} {
		img, err := off.Pull(ctx, tc.ref, amd64, store, nil)
		if err != nil {
			t.Fatalf("offline pull %s: %v", tc.ref, err)
		}
		if got, _ := img.Digest(); got != tc.want {
			t.Errorf("offline pull %s: got %s, want %s", tc.ref, got, tc.want)
		}
	}

	img := randomImage(t, amd64)
	failures := []struct {
		name, wantIn string
		call         func() error
	}{
		{"pull of a platform never pulled", "never pulled", func() error {
			_, err := off.Pull(ctx, ref, arm64, store, nil)
			return err
		}},
		{"pull of a tag never pulled", "never pulled", func() error {
			_, err := off.Pull(ctx, host+"/builder:2", amd64, store, nil)
			return err
		}},
		{"exists", "registry is needed", func() error { _, err := off.Exists(ctx, ref); return err }},
		{"push", "registry is needed", func() error { _, err := off.Push(ctx, img, host+"/out:1"); return err }},
		{"copy", "registry is needed", func() error { _, err := off.Copy(ctx, ref, host+"/out:2"); return err }},
		{"merge index", "registry is needed", func() error { _, err := off.MergeIndex(ctx, host+"/out:3", img, amd64); return err }},
	}
	for _, f := range failures {
		err := f.call()
		if !errors.Is(err, ErrOffline) || !strings.Contains(err.Error(), f.wantIn) {
			t.Errorf("%s offline: got %v, want ErrOffline saying %q", f.name, err, f.wantIn)
		}
	}
	if len(rec.reqs) != 0 {
		t.Errorf("offline registry made %d requests: %v", len(rec.reqs), rec.reqs)
	}

	// A recorded image whose blobs went (a pruned cache) is named, not
	// fetched.
	layers, _ := imgs["amd64"].Layers()
	d, _ := layers[0].Digest()
	if err := os.Remove(store.BlobPath(d)); err != nil {
		t.Fatal(err)
	}
	if _, err := off.Pull(ctx, ref, amd64, store, nil); !errors.Is(err, ErrOffline) || !strings.Contains(err.Error(), "blobs missing") {
		t.Errorf("offline pull with a missing layer: got %v, want ErrOffline saying blobs missing", err)
	}
	if len(rec.reqs) != 0 {
		t.Errorf("offline registry made %d requests: %v", len(rec.reqs), rec.reqs)
	}
}
