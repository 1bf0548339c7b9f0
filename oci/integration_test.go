package oci

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/validate"

	"github.com/lkbuild/lkbuild/internal/faultproxy"
	"github.com/lkbuild/lkbuild/internal/testenv"
)

// distribution is a real Distribution registry (Debian's docker-registry)
// with basic auth, started by scripts/registry.sh, and skopeo, an
// independent client to read back what lkbuild wrote.
type distribution struct {
	host     string
	authFile string
	skopeo   string
}

func needDistribution(t *testing.T) distribution {
	t.Helper()
	d := distribution{
		host:   testenv.Getenv(t, "LKBUILD_TEST_REGISTRY", "run scripts/registry.sh start ENVFILE and source ENVFILE"),
		skopeo: testenv.LookPath(t, "skopeo", "skopeo"),
	}
	d.authFile = filepath.Join(testenv.Getenv(t, "DOCKER_CONFIG", "scripts/registry.sh writes a docker config"), "config.json")
	return d
}

// inspect runs skopeo inspect on ref and decodes its JSON output.
func (d distribution) inspect(t *testing.T, ref string, args ...string) map[string]any {
	t.Helper()
	raw := d.inspectRaw(t, ref, args...)
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("skopeo inspect %s: %v\n%s", ref, err, raw)
	}
	return out
}

func (d distribution) inspectRaw(t *testing.T, ref string, args ...string) []byte {
	t.Helper()
	argv := append([]string{"inspect", "--tls-verify=false", "--authfile", d.authFile}, args...)
	argv = append(argv, "docker://"+ref)
	cmd := exec.Command(d.skopeo, argv...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("skopeo %s: %v\n%s", strings.Join(argv, " "), err, stderr.String())
	}
	return out
}

// uniqueRepo keeps runs against a long-lived registry apart.
func uniqueRepo(t *testing.T, base string) string {
	return fmt.Sprintf("%s-%d", base, time.Now().UnixNano())
}

func TestDistributionAuthRequired(t *testing.T) {
	d := needDistribution(t)
	anon := newTestClient(t, WithKeychain(authn.NewMultiKeychain()))
	_, err := anon.Push(context.Background(), randomImage(t, amd64), d.host+"/"+uniqueRepo(t, "anon")+":x")
	if err == nil {
		t.Fatal("anonymous push to a registry with auth succeeded: is auth configured?")
	}
}

func TestDistributionPushMergeAndRead(t *testing.T) {
	d := needDistribution(t)
	ctx := context.Background()
	repo := d.host + "/linuxkit/" + uniqueRepo(t, "kernel")
	imgs := map[string]v1.Image{"amd64": randomImage(t, amd64), "arm64": randomImage(t, arm64)}

	// Two separate runs, each with its own client, as two CI jobs would.
	for _, arch := range []string{"amd64", "arm64"} {
		r := newTestClient(t, WithKeychain(authn.DefaultKeychain))
		if _, err := r.Push(ctx, imgs[arch], repo+":6.6.71-abc-"+arch); err != nil {
			t.Fatal(err)
		}
		if _, err := r.MergeIndex(ctx, repo+":6.6.71-abc", imgs[arch], linux(arch)); err != nil {
			t.Fatal(err)
		}
	}

	var idx v1.IndexManifest
	if err := json.Unmarshal(d.inspectRaw(t, repo+":6.6.71-abc", "--raw"), &idx); err != nil {
		t.Fatal(err)
	}
	if len(idx.Manifests) != 2 {
		t.Fatalf("skopeo sees %d manifests in the index, want 2: %+v", len(idx.Manifests), idx)
	}
	for arch, img := range imgs {
		want, _ := img.Digest()
		// skopeo reports the index digest as "Digest"; the platform's
		// image shows in its architecture and layers.
		got := d.inspect(t, repo+":6.6.71-abc", "--override-arch", arch, "--override-os", "linux")
		m, _ := img.Manifest()
		layers, _ := got["Layers"].([]any)
		if got["Architecture"] != arch || len(layers) != len(m.Layers) || layers[0] != m.Layers[0].Digest.String() {
			t.Errorf("skopeo resolves %s to %v with layers %v, want %v", arch, got["Architecture"], layers, m.Layers)
		}
		single := d.inspect(t, repo+":6.6.71-abc-"+arch)
		if single["Digest"] != want.String() {
			t.Errorf("tag 6.6.71-abc-%s is %v, want %s", arch, single["Digest"], want)
		}
	}
}

func TestDistributionConcurrentMerge(t *testing.T) {
	d := needDistribution(t)
	ctx := context.Background()
	ref := d.host + "/linuxkit/" + uniqueRepo(t, "kernel") + ":6.6.71"
	imgs := map[string]v1.Image{
		"amd64": randomImage(t, amd64), "arm64": randomImage(t, arm64), "riscv64": randomImage(t, riscv64),
	}
	var wg sync.WaitGroup
	errs := make(chan error, len(imgs))
	for arch, img := range imgs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := NewRegistry(WithMergeSettle(200 * time.Millisecond))
			if err == nil {
				_, err = r.MergeIndex(ctx, ref, img, linux(arch))
			}
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
	var idx v1.IndexManifest
	if err := json.Unmarshal(d.inspectRaw(t, ref, "--raw"), &idx); err != nil {
		t.Fatal(err)
	}
	if len(idx.Manifests) != len(imgs) {
		t.Fatalf("index has %d arches after concurrent merges, want %d", len(idx.Manifests), len(imgs))
	}
}

// requestLog records the requests that go through a transport.
type requestLog struct {
	base http.RoundTripper
	mu   sync.Mutex
	log  []string
}

func (l *requestLog) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := l.base.RoundTrip(req)
	status := 0
	if resp != nil {
		status = resp.StatusCode
	}
	l.mu.Lock()
	l.log = append(l.log, fmt.Sprintf("%s %s %d", req.Method, req.URL.RequestURI(), status))
	l.mu.Unlock()
	return resp, err
}

func (l *requestLog) find(sub string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, s := range l.log {
		if strings.Contains(s, sub) {
			out = append(out, s)
		}
	}
	return out
}

func TestDistributionCopyMounts(t *testing.T) {
	d := needDistribution(t)
	ctx := context.Background()
	src := d.host + "/linuxkit/" + uniqueRepo(t, "alpine") + ":abc"
	dst := d.host + "/linuxkit/" + uniqueRepo(t, "kernel") + ":6.6.71-builder"
	img := randomImage(t, amd64)
	r := newTestClient(t, WithKeychain(authn.DefaultKeychain))
	if _, err := r.Push(ctx, img, src); err != nil {
		t.Fatal(err)
	}
	rl := &requestLog{base: http.DefaultTransport}
	rc := newTestClient(t, WithKeychain(authn.DefaultKeychain), WithTransport(rl))
	if _, err := rc.Copy(ctx, src, dst); err != nil {
		t.Fatal(err)
	}
	mounts := rl.find("mount=")
	if len(mounts) == 0 {
		t.Fatalf("no cross-repo mount was tried: %v", rl.log)
	}
	for _, m := range mounts {
		if !strings.HasSuffix(m, " 201") {
			t.Errorf("mount not accepted: %s", m)
		}
	}
	if gets := rl.find("GET /v2/linuxkit/alpine"); len(gets) > 0 {
		for _, g := range gets {
			if strings.Contains(g, "/blobs/") {
				t.Errorf("copy downloaded a blob: %s", g)
			}
		}
	}
	want, _ := img.Digest()
	if got := d.inspect(t, dst); got["Digest"] != want.String() {
		t.Errorf("copied tag is %v, want %s", got["Digest"], want)
	}
}

func TestDistributionPushThroughFaults(t *testing.T) {
	d := needDistribution(t)
	ctx := context.Background()
	target, err := url.Parse("http://" + d.host)
	if err != nil {
		t.Fatal(err)
	}
	p, err := faultproxy.New(target, faultproxy.WithRate(0.25), faultproxy.WithSeed(7), faultproxy.WithMaxFaults(40),
		faultproxy.WithRetryAfter(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	addr, err := p.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()

	img, err := random.Image(512<<10, 5)
	if err != nil {
		t.Fatal(err)
	}
	repo := "linuxkit/" + uniqueRepo(t, "faults")
	// The proxy listens on another port: give it the registry's credentials.
	kc := staticKeychain{authn.FromConfig(authn.AuthConfig{
		Username: testenv.Getenv(t, "LKBUILD_TEST_REGISTRY_USER", "registry.sh sets it"),
		Password: testenv.Getenv(t, "LKBUILD_TEST_REGISTRY_PASSWORD", "registry.sh sets it"),
	})}
	r := newTestClient(t, WithKeychain(kc), WithRetry(8, 50*time.Millisecond))
	dgst, err := r.Push(ctx, img, addr+"/"+repo+":x")
	if err != nil {
		t.Fatalf("push through faults: %v (stats %+v)", err, p.Stats())
	}
	if _, err := r.MergeIndex(ctx, addr+"/"+repo+":index", img, amd64); err != nil {
		t.Fatalf("merge through faults: %v (stats %+v)", err, p.Stats())
	}
	st := p.Stats()
	t.Logf("fault proxy: %d requests, faults %v", st.Requests, st.Faults)
	if len(st.Faults) < 3 {
		t.Errorf("only %d kinds of fault were injected (%v); the test proves little", len(st.Faults), st.Faults)
	}

	// Read back directly, with skopeo and with a full pull that checks
	// every blob's digest.
	if got := d.inspect(t, d.host+"/"+repo+":x"); got["Digest"] != dgst.String() {
		t.Errorf("skopeo sees %v, pushed %s", got["Digest"], dgst)
	}
	store, err := OpenStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	direct := newTestClient(t, WithKeychain(authn.DefaultKeychain))
	pulled, err := direct.Pull(ctx, d.host+"/"+repo+":index", amd64, store, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := validate.Image(pulled); err != nil {
		t.Fatal(err)
	}
}

func TestDistributionPullThroughFaults(t *testing.T) {
	d := needDistribution(t)
	ctx := context.Background()
	ref := d.host + "/linuxkit/" + uniqueRepo(t, "pull") + ":x"
	img, err := random.Image(1<<20, 3)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(mustParse(t, ref), img, remote.WithAuthFromKeychain(authn.DefaultKeychain)); err != nil {
		t.Fatal(err)
	}
	target, _ := url.Parse("http://" + d.host)
	p, err := faultproxy.New(target, faultproxy.WithMethods("GET", "HEAD"), faultproxy.WithEveryNth(2),
		faultproxy.WithMaxFaults(10), faultproxy.WithRetryAfter(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	addr, err := p.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	kc := staticKeychain{authn.FromConfig(authn.AuthConfig{
		Username: os.Getenv("LKBUILD_TEST_REGISTRY_USER"),
		Password: os.Getenv("LKBUILD_TEST_REGISTRY_PASSWORD"),
	})}
	store, err := OpenStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	r := newTestClient(t, WithKeychain(kc), WithRetry(8, 50*time.Millisecond))
	got, err := r.Pull(ctx, addr+strings.TrimPrefix(ref, d.host), amd64, store, nil)
	if err != nil {
		t.Fatalf("pull through faults: %v (stats %+v)", err, p.Stats())
	}
	if p.Stats().TotalFaults() == 0 {
		t.Error("no fault was injected")
	}
	if err := validate.Image(got); err != nil {
		t.Fatal(err)
	}
	assertNoTempFiles(t, store)
}

// staticKeychain gives the same credentials for every registry.
type staticKeychain struct{ a authn.Authenticator }

func (k staticKeychain) Resolve(authn.Resource) (authn.Authenticator, error) { return k.a, nil }
