package oci

import (
	"context"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/google/go-containerregistry/pkg/v1/validate"
)

var (
	amd64   = v1.Platform{OS: "linux", Architecture: "amd64"}
	arm64   = v1.Platform{OS: "linux", Architecture: "arm64"}
	riscv64 = v1.Platform{OS: "linux", Architecture: "riscv64"}
)

func linux(arch string) v1.Platform { return v1.Platform{OS: "linux", Architecture: arch} }

// recorder counts the requests a test registry receives, by kind.
type recorder struct {
	mu   sync.Mutex
	reqs []string
}

func (r *recorder) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		r.reqs = append(r.reqs, req.Method+" "+req.URL.RequestURI())
		r.mu.Unlock()
		h.ServeHTTP(w, req)
	})
}

func (r *recorder) count(sub string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, q := range r.reqs {
		if strings.Contains(q, sub) {
			n++
		}
	}
	return n
}

func (r *recorder) reset() {
	r.mu.Lock()
	r.reqs = nil
	r.mu.Unlock()
}

// newTestRegistry starts go-containerregistry's in-process registry on
// 127.0.0.1, with mw wrapped around it, and returns its host:port.
func newTestRegistry(t *testing.T, mw func(http.Handler) http.Handler) string {
	t.Helper()
	var h http.Handler = registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	if mw != nil {
		h = mw(h)
	}
	s := httptest.NewServer(h)
	t.Cleanup(s.Close)
	return strings.TrimPrefix(s.URL, "http://")
}

func newTestClient(t *testing.T, opts ...RegistryOption) *Registry {
	t.Helper()
	opts = append([]RegistryOption{
		WithKeychain(authn.NewMultiKeychain()),
		WithRetry(6, 5*time.Millisecond),
		WithMergeSettle(20 * time.Millisecond),
	}, opts...)
	r, err := NewRegistry(opts...)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func randomImage(t *testing.T, p v1.Platform) v1.Image {
	t.Helper()
	img, err := random.Image(1024, 2)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Variant = p.OS, p.Architecture, p.Variant
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func pushIndex(t *testing.T, ref string, imgs map[string]v1.Image) {
	t.Helper()
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for arch, img := range imgs {
		p := linux(arch)
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &p}})
	}
	if err := remote.WriteIndex(mustParse(t, ref), idx); err != nil {
		t.Fatal(err)
	}
}

func TestPullPlatformFromIndexAndCache(t *testing.T) {
	rec := &recorder{}
	host := newTestRegistry(t, rec.wrap)
	imgs := map[string]v1.Image{
		"amd64": randomImage(t, amd64), "arm64": randomImage(t, arm64), "riscv64": randomImage(t, riscv64),
	}
	ref := host + "/builder:1"
	pushIndex(t, ref, imgs)

	store, err := OpenStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	r := newTestClient(t)
	ctx := context.Background()
	for _, p := range []v1.Platform{amd64, arm64, riscv64} {
		rec.reset()
		img, err := r.Pull(ctx, ref, p, store, nil)
		if err != nil {
			t.Fatalf("pull %s: %v", p, err)
		}
		if err := validate.Image(img); err != nil {
			t.Fatalf("pulled image invalid: %v", err)
		}
		want, _ := imgs[p.Architecture].Digest()
		if got, _ := img.Digest(); got != want {
			t.Errorf("pull %s: got %s, want %s", p, got, want)
		}
		if n := rec.count("/blobs/"); n == 0 {
			t.Errorf("first pull of %s made no blob request", p)
		}

		rec.reset()
		if _, err := r.Pull(ctx, ref, p, store, nil); err != nil {
			t.Fatal(err)
		}
		if n := rec.count("/blobs/"); n != 0 {
			t.Errorf("second pull of %s made %d blob requests: %v", p, n, rec.reqs)
		}
	}

	if _, err := r.Pull(ctx, ref, v1.Platform{OS: "linux", Architecture: "s390x"}, store, nil); !errors.Is(err, ErrNoPlatform) {
		t.Errorf("pull of missing platform: got %v, want ErrNoPlatform", err)
	}
	if _, err := r.Pull(ctx, host+"/builder:nope", amd64, store, nil); !errors.Is(err, ErrNotFound) {
		t.Errorf("pull of missing tag: got %v, want ErrNotFound", err)
	}
}

func TestPullSingleManifest(t *testing.T) {
	host := newTestRegistry(t, nil)
	img := randomImage(t, arm64)
	ref := host + "/single:1"
	if err := remote.Write(mustParse(t, ref), img); err != nil {
		t.Fatal(err)
	}
	store, err := OpenStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	r := newTestClient(t)
	got, err := r.Pull(context.Background(), ref, arm64, store, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := validate.Image(got); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Pull(context.Background(), ref, amd64, store, nil); !errors.Is(err, ErrNoPlatform) {
		t.Errorf("pull arm64-only image as amd64: got %v, want ErrNoPlatform", err)
	}
}

// TestStoreRejectsCorruptBlob checks that a blob whose bytes do not match
// its digest is refused and leaves nothing behind.
func TestStoreRejectsCorruptBlob(t *testing.T) {
	store, err := OpenStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	want := digestOf([]byte("hello"))
	err = store.WriteBlob(want, 5, strings.NewReader("jello"))
	if !errors.Is(err, ErrDigestMismatch) {
		t.Fatalf("got %v, want ErrDigestMismatch", err)
	}
	if store.HasBlob(want, -1) {
		t.Error("corrupt blob left in store")
	}
	assertNoTempFiles(t, store)
}

func TestPushTagsOnlyComplete(t *testing.T) {
	// A registry that refuses every blob upload: the push must fail and the
	// tag must not appear.
	failBlobs := func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			if strings.Contains(req.URL.Path, "/blobs/uploads") {
				http.Error(w, "no", http.StatusForbidden)
				return
			}
			h.ServeHTTP(w, req)
		})
	}
	host := newTestRegistry(t, failBlobs)
	r := newTestClient(t)
	ref := host + "/kernel:6.6.71-abc-amd64"
	if _, err := r.Push(context.Background(), randomImage(t, amd64), ref); err == nil {
		t.Fatal("push succeeded against a registry that refuses uploads")
	}
	ok, err := r.Exists(context.Background(), ref)
	if err != nil {
		t.Fatal(err)
	}
	if ok {
		t.Error("tag exists after a failed push")
	}
}

// flaky injects faults in front of a registry: each request kind listed
// fails the first n times it is seen.
type flaky struct {
	mu      sync.Mutex
	seen    map[string]int
	n       int
	kind    func(*http.Request) string
	fault   string // "429", "503" or "drop"
	injects atomic.Int32
	off     atomic.Bool
}

func (f *flaky) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		k := f.kind(req)
		f.mu.Lock()
		f.seen[k]++
		fail := k != "" && f.seen[k] <= f.n && !f.off.Load()
		f.mu.Unlock()
		if !fail {
			h.ServeHTTP(w, req)
			return
		}
		f.injects.Add(1)
		switch f.fault {
		case "429":
			w.Header().Set("Retry-After", "0")
			w.WriteHeader(http.StatusTooManyRequests)
		case "503":
			w.WriteHeader(http.StatusServiceUnavailable)
		case "drop":
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				conn.(*net.TCPConn).SetLinger(0) // close with RST: a connection reset
				conn.Close()
			}
		}
	})
}

func TestPushSurvivesFaults(t *testing.T) {
	// One key per kind of request: upload sessions get a new URL each time,
	// so their IDs are cut off.
	everything := func(req *http.Request) string {
		p := req.URL.Path
		if i := strings.Index(p, "/blobs/uploads/"); i >= 0 {
			p = p[:i+len("/blobs/uploads/")]
		}
		return req.Method + " " + p
	}
	tests := []struct {
		fault string
		n     int
	}{
		{"429", 2},
		{"503", 2},
		{"drop", 2},
	}
	for _, tt := range tests {
		t.Run(tt.fault, func(t *testing.T) {
			f := &flaky{seen: map[string]int{}, n: tt.n, kind: everything, fault: tt.fault}
			host := newTestRegistry(t, f.wrap)
			r := newTestClient(t)
			img := randomImage(t, amd64)
			ref := host + "/kernel:x"
			d, err := r.Push(context.Background(), img, ref)
			if err != nil {
				t.Fatalf("push with %s faults: %v", tt.fault, err)
			}
			if f.injects.Load() == 0 {
				t.Fatal("no fault was injected")
			}
			f.off.Store(true)
			got, err := remote.Image(mustParse(t, ref))
			if err != nil {
				t.Fatal(err)
			}
			if gd, _ := got.Digest(); gd != d {
				t.Errorf("tag holds %s, pushed %s", gd, d)
			}
			if err := validate.Image(got); err != nil {
				t.Error(err)
			}
		})
	}
}

func TestMergeIndexKeepsOtherArches(t *testing.T) {
	host := newTestRegistry(t, nil)
	r := newTestClient(t)
	ctx := context.Background()
	ref := host + "/kernel:6.6.71"
	imgs := map[string]v1.Image{"amd64": randomImage(t, amd64), "arm64": randomImage(t, arm64)}

	for _, p := range []v1.Platform{amd64, arm64} {
		if _, err := r.MergeIndex(ctx, ref, imgs[p.Architecture], p); err != nil {
			t.Fatal(err)
		}
	}
	assertIndex(t, ref, imgs)

	// Rebuilding amd64 replaces its entry and keeps arm64.
	imgs["amd64"] = randomImage(t, amd64)
	if _, err := r.MergeIndex(ctx, ref, imgs["amd64"], amd64); err != nil {
		t.Fatal(err)
	}
	assertIndex(t, ref, imgs)
}

func TestMergeIndexConcurrent(t *testing.T) {
	host := newTestRegistry(t, nil)
	r := newTestClient(t)
	ctx := context.Background()
	for round := 0; round < 5; round++ {
		ref := host + "/kernel:round" + string(rune('a'+round))
		imgs := map[string]v1.Image{
			"amd64": randomImage(t, amd64), "arm64": randomImage(t, arm64), "riscv64": randomImage(t, riscv64),
		}
		var wg sync.WaitGroup
		errs := make(chan error, len(imgs))
		for arch, img := range imgs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := r.MergeIndex(ctx, ref, img, linux(arch))
				errs <- err
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		assertIndex(t, ref, imgs)
	}
}

func TestMergeIndexOverSingleImage(t *testing.T) {
	host := newTestRegistry(t, nil)
	r := newTestClient(t)
	ref := host + "/kernel:plain"
	old := randomImage(t, arm64)
	if err := remote.Write(mustParse(t, ref), old); err != nil {
		t.Fatal(err)
	}
	img := randomImage(t, amd64)
	if _, err := r.MergeIndex(context.Background(), ref, img, amd64); err != nil {
		t.Fatal(err)
	}
	assertIndex(t, ref, map[string]v1.Image{"amd64": img, "arm64": old})
}

func assertIndex(t *testing.T, ref string, want map[string]v1.Image) {
	t.Helper()
	idx, err := remote.Index(mustParse(t, ref))
	if err != nil {
		t.Fatal(err)
	}
	if err := validate.Index(idx); err != nil {
		t.Fatalf("index invalid: %v", err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(im.Manifests) != len(want) {
		t.Fatalf("index has %d entries, want %d: %+v", len(im.Manifests), len(want), im.Manifests)
	}
	for arch, img := range want {
		p := linux(arch)
		d, _ := img.Digest()
		found := false
		for _, m := range im.Manifests {
			if m.Platform != nil && m.Platform.Equals(p) {
				found = m.Digest == d
			}
		}
		if !found {
			t.Errorf("index lacks %s -> %s", p, d)
		}
	}
}

func TestCopyMountsAcrossRepos(t *testing.T) {
	rec := &recorder{}
	host := newTestRegistry(t, rec.wrap)
	r := newTestClient(t)
	src := host + "/linuxkit/alpine:abc"
	img := randomImage(t, amd64)
	if err := remote.Write(mustParse(t, src), img); err != nil {
		t.Fatal(err)
	}
	rec.reset()
	dst := host + "/linuxkit/kernel:6.6.71-builder"
	d, err := r.Copy(context.Background(), src, dst)
	if err != nil {
		t.Fatal(err)
	}
	if want, _ := img.Digest(); d != want {
		t.Errorf("copied %s, want %s", d, want)
	}
	// go-containerregistry's test registry shares blobs across
	// repositories, so it never needs a mount; the integration test checks
	// mounts against a real Distribution registry.
	if n := rec.count("GET /v2/linuxkit/alpine/blobs/"); n != 0 {
		t.Errorf("copy downloaded %d blobs instead of mounting", n)
	}
	got, err := remote.Image(mustParse(t, dst))
	if err != nil {
		t.Fatal(err)
	}
	if err := validate.Image(got); err != nil {
		t.Error(err)
	}
	if _, err := r.Copy(context.Background(), host+"/nothing:here", dst); !errors.Is(err, ErrNotFound) {
		t.Errorf("copy of missing source: got %v, want ErrNotFound", err)
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"", 0, false},
		{"3", 3 * time.Second, true},
		{"0", 0, true},
		{"-1", 0, false},
		{"soon", 0, false},
		{now.Add(5 * time.Second).Format(http.TimeFormat), 5 * time.Second, true},
		{now.Add(-time.Hour).Format(http.TimeFormat), 0, true},
	}
	for _, tt := range tests {
		got, ok := parseRetryAfter(tt.in, now)
		if got != tt.want || ok != tt.ok {
			t.Errorf("parseRetryAfter(%q) = %v, %v; want %v, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

func TestRetryTransportHonoursRetryAfter(t *testing.T) {
	var calls atomic.Int32
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	defer s.Close()
	rt := &retryTransport{base: http.DefaultTransport, attempts: 3, backoff: time.Millisecond, maxWait: 10 * time.Second, now: time.Now}
	req, _ := http.NewRequest(http.MethodGet, s.URL, nil)
	start := time.Now()
	resp, err := rt.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || calls.Load() != 2 {
		t.Fatalf("status %d after %d calls", resp.StatusCode, calls.Load())
	}
	if waited := time.Since(start); waited < 900*time.Millisecond {
		t.Errorf("retried after %v, Retry-After asked for 1s", waited)
	}
}

func TestRetryTransportRereadsCutBody(t *testing.T) {
	var calls atomic.Int32
	body := strings.Repeat("m", 100)
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "100")
		if calls.Add(1) == 1 {
			// Half the body, then the connection goes away.
			w.Write([]byte(body[:50]))
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				conn.Close()
			}
			return
		}
		w.Write([]byte(body))
	}))
	defer s.Close()
	rt := &retryTransport{base: http.DefaultTransport, attempts: 3, backoff: time.Millisecond, maxWait: time.Second, now: time.Now}
	req, _ := http.NewRequest(http.MethodGet, s.URL+"/v2/x/manifests/1", nil)
	resp, err := rt.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	if err != nil || string(got) != body || calls.Load() != 2 {
		t.Errorf("body %d bytes, err %v, after %d calls", len(got), err, calls.Load())
	}
}
