package oci

import (
	"context"
	"errors"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// TestMirrors: pulls and Exists of a mirrored registry go to the mirror
// only, the recorded reference stays the canonical one, pushes go to the
// registry itself, and a mirror without the image is an error, not a
// fallback.
func TestMirrors(t *testing.T) {
	var canonReqs, mirrorReqs recorder
	canon := newTestRegistry(t, canonReqs.wrap)
	mirrorHost := newTestRegistry(t, mirrorReqs.wrap)
	idx := map[string]v1.Image{"amd64": randomImage(t, amd64), "arm64": randomImage(t, arm64)}
	pushIndex(t, canon+"/linuxkit/builder:1", idx)
	pushIndex(t, mirrorHost+"/linuxkit/builder:1", idx)
	canonReqs.reset()
	mirrorReqs.reset()

	r := newTestClient(t, WithMirrors(map[string]string{canon: "http://" + mirrorHost}))
	store, err := OpenStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	ref := canon + "/linuxkit/builder:1"
	img, err := r.Pull(ctx, ref, arm64, store, nil)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := idx["arm64"].Digest()
	if got, _ := img.Digest(); got != want {
		t.Errorf("pull through the mirror: %s, want %s", got, want)
	}
	if ok, err := r.Exists(ctx, ref); !ok || err != nil {
		t.Errorf("exists through the mirror: %v, %v", ok, err)
	}
	d := ref[:strings.LastIndex(ref, ":")] + "@" + want.String()
	if _, err := r.Pull(ctx, d, arm64, newTestStore(t), nil); err != nil {
		t.Errorf("pull by digest through the mirror: %v", err)
	}
	if len(canonReqs.reqs) != 0 || len(mirrorReqs.reqs) == 0 {
		t.Errorf("requests: registry %v, mirror %v; want all at the mirror", canonReqs.reqs, mirrorReqs.reqs)
	}
	// What the pull recorded is the canonical reference.
	if _, err := store.Resolved(mustParse(t, ref).Name(), arm64); err != nil {
		t.Errorf("the pull did not record %s: %v", ref, err)
	}

	// Pushes go to the registry.
	mirrorReqs.reset()
	if _, err := r.Push(ctx, img, canon+"/linuxkit/out:1"); err != nil {
		t.Fatal(err)
	}
	if len(mirrorReqs.reqs) != 0 || canonReqs.count("/v2/linuxkit/out/") == 0 {
		t.Errorf("push requests: registry %v, mirror %v; want all at the registry", canonReqs.reqs, mirrorReqs.reqs)
	}

	// The mirror lacks it: not found, and the registry is not asked.
	if err := remote.Write(mustParse(t, canon+"/linuxkit/only:1"), randomImage(t, amd64)); err != nil {
		t.Fatal(err)
	}
	canonReqs.reset()
	if _, err := r.Pull(ctx, canon+"/linuxkit/only:1", amd64, store, nil); !errors.Is(err, ErrNotFound) {
		t.Errorf("pull of what the mirror lacks: %v, want ErrNotFound", err)
	}
	if len(canonReqs.reqs) != 0 {
		t.Errorf("the registry was asked: %v", canonReqs.reqs)
	}
}

func newTestStore(t *testing.T) *Store {
	t.Helper()
	s, err := OpenStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestBadMirrors(t *testing.T) {
	for _, tc := range []struct{ reg, url, want string }{
		{"docker.io", "mirror.local", "http:// or https://"},
		{"docker.io", "ftp://mirror.local", "http:// or https://"},
		{"docker.io", "http://", "scheme://host[:port]"},
		{"docker.io", "http://mirror.local/v2/", "scheme://host[:port]"},
		{"docker.io", "http://user:pw@mirror.local", "scheme://host[:port]"},
		{"docker.io", "http://mirror.local?x=1", "scheme://host[:port]"},
		{"not a registry!", "http://mirror.local", "mirror for"},
	} {
		if _, err := NewRegistry(WithMirrors(map[string]string{tc.reg: tc.url})); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("mirror %s=%s: got %v, want an error saying %q", tc.reg, tc.url, err, tc.want)
		}
	}
	// docker.io and index.docker.io are one registry.
	r, err := NewRegistry(WithMirrors(map[string]string{"docker.io": "https://mirror.local:5000"}))
	if err != nil {
		t.Fatal(err)
	}
	n, err := r.viaMirror(mustParse(t, "linuxkit/alpine:3"))
	if err != nil || n.String() != "mirror.local:5000/linuxkit/alpine:3" {
		t.Errorf("docker.io's linuxkit/alpine:3 via the mirror: %v, %v", n, err)
	}
}
