package oci

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// ErrNotFound is returned when a reference names nothing in the registry.
var ErrNotFound = errors.New("not found")

// ErrNoPlatform is returned when an image has no manifest for the platform
// asked for.
var ErrNoPlatform = errors.New("no manifest for platform")

// Registry talks to container registries: pull, push, index merge and
// registry-side copies. It is safe for concurrent use.
type Registry struct {
	o registryOptions
}

type registryOptions struct {
	insecure   bool
	keychain   authn.Keychain
	transport  http.RoundTripper
	attempts   int
	backoff    time.Duration
	maxWait    time.Duration
	settle     time.Duration
	mergeTries int
	userAgent  string
	jobs       int
	offline    bool
	// mirrors maps a registry (name.Registry's RegistryStr, so docker.io
	// is index.docker.io) to the mirror that serves its pulls.
	mirrors map[string]mirror
}

// mirror is where a registry's pulls go instead.
type mirror struct {
	host     string
	insecure bool // plain http
}

// RegistryOption configures a Registry.
type RegistryOption func(*registryOptions) error

// WithInsecure allows plain-HTTP registries (and self-signed TLS). The
// default is false; go-containerregistry always allows plain HTTP for
// localhost and 127.0.0.1.
func WithInsecure(insecure bool) RegistryOption {
	return func(o *registryOptions) error {
		o.insecure = insecure
		return nil
	}
}

// WithKeychain sets where credentials come from. The default is
// authn.DefaultKeychain: the docker config ($DOCKER_CONFIG/config.json)
// and its credential helpers.
func WithKeychain(k authn.Keychain) RegistryOption {
	return func(o *registryOptions) error {
		if k == nil {
			return errors.New("nil keychain")
		}
		o.keychain = k
		return nil
	}
}

// WithTransport sets the HTTP transport under the retry layer. The default
// is a clone of http.DefaultTransport.
func WithTransport(t http.RoundTripper) RegistryOption {
	return func(o *registryOptions) error {
		if t == nil {
			return errors.New("nil transport")
		}
		o.transport = t
		return nil
	}
}

// WithRetry sets how often a failed request or blob upload is tried in all
// and the first wait between tries, which doubles each time. The default is
// 6 tries starting at 500ms; no single wait exceeds 30s, Retry-After
// included.
func WithRetry(attempts int, backoff time.Duration) RegistryOption {
	return func(o *registryOptions) error {
		if attempts < 1 {
			return fmt.Errorf("retry attempts %d: must be at least 1", attempts)
		}
		if backoff < 0 {
			return fmt.Errorf("retry backoff %v: must not be negative", backoff)
		}
		o.attempts, o.backoff = attempts, backoff
		return nil
	}
}

// WithMergeSettle sets how long MergeIndex waits before its second
// read-back of an index it wrote, to catch a concurrent writer that read
// the index before our write and wrote after it. The default is 1s.
func WithMergeSettle(d time.Duration) RegistryOption {
	return func(o *registryOptions) error {
		if d < 0 {
			return fmt.Errorf("merge settle %v: must not be negative", d)
		}
		o.settle = d
		return nil
	}
}

// WithOffline makes a Registry that never uses the network: Pull serves
// only what an earlier pull recorded in the store (Store.Resolved), and
// everything else fails with an error wrapping ErrOffline.
func WithOffline(offline bool) RegistryOption {
	return func(o *registryOptions) error {
		o.offline = offline
		return nil
	}
}

// WithMirrors sends pulls (Pull and Head, so Exists) for the registries
// in mirrors (keyed by registry host as references name it: "docker.io",
// "ghcr.io", "127.0.0.1:5000") to a mirror URL, http:// or https:// and a
// host with an optional port, LinuxKit's --mirror. Pushes, copies and
// index merges go to the registry itself, and what Pull records (and so a
// build's provenance) is the reference as given, not the mirror.
func WithMirrors(mirrors map[string]string) RegistryOption {
	return func(o *registryOptions) error {
		for reg, u := range mirrors {
			r, err := name.NewRegistry(reg)
			if err != nil {
				return fmt.Errorf("mirror for %q: %w", reg, err)
			}
			m, err := parseMirror(u)
			if err != nil {
				return fmt.Errorf("mirror for %s: %w", reg, err)
			}
			if o.mirrors == nil {
				o.mirrors = map[string]mirror{}
			}
			o.mirrors[r.RegistryStr()] = m
		}
		return nil
	}
}

func parseMirror(s string) (mirror, error) {
	u, err := url.Parse(s)
	if err != nil {
		return mirror{}, fmt.Errorf("%q: %w", s, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return mirror{}, fmt.Errorf("%q: want an http:// or https:// URL", s)
	}
	if u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return mirror{}, fmt.Errorf("%q: want scheme://host[:port] and nothing else", s)
	}
	return mirror{host: u.Host, insecure: u.Scheme == "http"}, nil
}

// viaMirror is where a pull of n goes: n itself, or the same repository
// and tag or digest at n's registry's mirror.
func (r *Registry) viaMirror(n name.Reference) (name.Reference, error) {
	m, ok := r.o.mirrors[n.Context().RegistryStr()]
	if !ok {
		return n, nil
	}
	var opts []name.Option
	if m.insecure || r.o.insecure {
		opts = append(opts, name.Insecure)
	}
	s := m.host + "/" + n.Context().RepositoryStr()
	if d, ok := n.(name.Digest); ok {
		s += "@" + d.DigestStr()
	} else {
		s += ":" + n.Identifier()
	}
	return name.ParseReference(s, opts...)
}

// Offline reports whether the Registry was made WithOffline.
func (r *Registry) Offline() bool { return r.o.offline }

// WithoutNetwork returns a copy of r made WithOffline: for a cache-first
// pull that falls back to r.
func (r *Registry) WithoutNetwork() *Registry {
	c := *r
	c.o.offline = true
	return &c
}

// online fails for an operation on ref that needs the network when the
// Registry is offline.
func (r *Registry) online(op, ref string) error {
	if r.o.offline {
		return fmt.Errorf("%s %s: the registry is needed: %w", op, ref, ErrOffline)
	}
	return nil
}

// offlineTransport fails every request: an offline Registry's transport.
type offlineTransport struct{}

func (offlineTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	return nil, fmt.Errorf("%s %s: %w", req.Method, req.URL.Redacted(), ErrOffline)
}

// WithUserAgent sets the User-Agent sent to registries. The default is
// "lkbuild".
func WithUserAgent(ua string) RegistryOption {
	return func(o *registryOptions) error {
		o.userAgent = ua
		return nil
	}
}

// NewRegistry returns a Registry with the given options.
func NewRegistry(opts ...RegistryOption) (*Registry, error) {
	o := registryOptions{
		keychain:   authn.DefaultKeychain,
		attempts:   6,
		backoff:    500 * time.Millisecond,
		maxWait:    30 * time.Second,
		settle:     time.Second,
		mergeTries: 10,
		userAgent:  "lkbuild",
		jobs:       4,
	}
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, fmt.Errorf("registry option: %w", err)
		}
	}
	if o.transport == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		if o.insecure {
			t.TLSClientConfig.InsecureSkipVerify = true //nolint:gosec // asked for with --insecure-registry
		}
		o.transport = t
	}
	return &Registry{o: o}, nil
}

func (r *Registry) parse(ref string) (name.Reference, error) {
	var opts []name.Option
	if r.o.insecure {
		opts = append(opts, name.Insecure)
	}
	n, err := name.ParseReference(ref, opts...)
	if err != nil {
		return nil, fmt.Errorf("parse reference %q: %w", ref, err)
	}
	return n, nil
}

func (r *Registry) remoteOptions(ctx context.Context) []remote.Option {
	base := r.o.transport
	if r.o.offline {
		// The net under the checks of each operation: no request leaves.
		base = offlineTransport{}
	}
	rt := &retryTransport{
		base:     redactTransport{base: base},
		attempts: r.o.attempts,
		backoff:  r.o.backoff,
		maxWait:  r.o.maxWait,
		now:      time.Now,
	}
	return []remote.Option{
		remote.WithContext(ctx),
		remote.WithAuthFromKeychain(r.o.keychain),
		remote.WithTransport(rt),
		remote.WithUserAgent(r.o.userAgent),
		remote.WithJobs(r.o.jobs),
		// Whole-request retries above our transport: these restart blob
		// uploads whose streamed bodies the transport cannot replay.
		remote.WithRetryBackoff(remote.Backoff{
			Duration: r.o.backoff,
			Factor:   2,
			Jitter:   0.5,
			Steps:    r.o.attempts,
			Cap:      r.o.maxWait,
		}),
		remote.WithRetryPredicate(retryable),
	}
}

// blobRetry is how a blob download that breaks off is tried again.
func (r *Registry) blobRetry() retryPolicy {
	return retryPolicy{attempts: r.o.attempts, backoff: r.o.backoff, maxWait: r.o.maxWait, retryable: retryable}
}

// retryable decides which errors from go-containerregistry restart a
// whole operation (such as a blob upload).
func retryable(err error) bool {
	if errors.Is(err, syscall.ECONNREFUSED) {
		// Nothing listens there: the transport has tried enough.
		return false
	}
	var te *transport.Error
	if errors.As(err, &te) {
		for _, d := range te.Errors {
			// An upload session lost with a dropped connection: start over.
			if d.Code == transport.BlobUploadUnknownErrorCode {
				return true
			}
		}
		return te.StatusCode == http.StatusTooManyRequests || te.StatusCode == http.StatusRequestTimeout ||
			(te.StatusCode >= 500 && te.StatusCode != http.StatusNotImplemented) || te.Temporary()
	}
	return isConnectionDrop(err) || errors.Is(err, net.ErrClosed)
}

// isNotFound reports a registry's "no such manifest" answer.
func isNotFound(err error) bool {
	var te *transport.Error
	if !errors.As(err, &te) {
		return false
	}
	if te.StatusCode == http.StatusNotFound {
		return true
	}
	for _, d := range te.Errors {
		if d.Code == transport.ManifestUnknownErrorCode || d.Code == transport.NameUnknownErrorCode {
			return true
		}
	}
	return false
}

// Head returns the descriptor that ref points to, or an error wrapping
// ErrNotFound.
func (r *Registry) Head(ctx context.Context, ref string) (v1.Descriptor, error) {
	n, err := r.parse(ref)
	if err != nil {
		return v1.Descriptor{}, err
	}
	if err := r.online("head", ref); err != nil {
		return v1.Descriptor{}, err
	}
	if n, err = r.viaMirror(n); err != nil {
		return v1.Descriptor{}, err
	}
	d, err := remote.Head(n, r.remoteOptions(ctx)...)
	if err != nil {
		if isNotFound(err) {
			return v1.Descriptor{}, fmt.Errorf("head %s: %w", ref, ErrNotFound)
		}
		return v1.Descriptor{}, fmt.Errorf("head %s: %w", ref, err)
	}
	return *d, nil
}

// Exists reports whether ref names a manifest or index in the registry.
func (r *Registry) Exists(ctx context.Context, ref string) (bool, error) {
	_, err := r.Head(ctx, ref)
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// Image is the single image ref names in the registry, read lazily: its
// manifest now, its config and layers only if asked for (a push of it to
// its own repository checks its blobs and moves none).
func (r *Registry) Image(ctx context.Context, ref string) (v1.Image, error) {
	n, err := r.parse(ref)
	if err != nil {
		return nil, err
	}
	if err := r.online("read", ref); err != nil {
		return nil, err
	}
	img, err := remote.Image(n, r.remoteOptions(ctx)...)
	if err != nil {
		if isNotFound(err) {
			return nil, fmt.Errorf("read %s: %w", ref, ErrNotFound)
		}
		return nil, fmt.Errorf("read %s: %w", ref, err)
	}
	return img, nil
}

// Pull resolves ref for platform and makes sure the image's manifest,
// config and layers are in store, fetching only the blobs that are not
// there yet. The image returned is read from the store. A second pull of
// the same image asks the registry for the manifest only.
func (r *Registry) Pull(ctx context.Context, ref string, platform v1.Platform, store *Store, progress func(Progress)) (v1.Image, error) {
	n, err := r.parse(ref)
	if err != nil {
		return nil, err
	}
	if r.o.offline {
		if d, ok := n.(name.Digest); ok {
			if h, err := v1.NewHash(d.DigestStr()); err == nil {
				if img, ok := store.Image(h); ok {
					return checkPlatform(ref, img, platform)
				}
			}
		}
		img, err := store.Resolved(n.Name(), platform)
		if err != nil {
			return nil, fmt.Errorf("pull %s: %w", ref, err)
		}
		return checkPlatform(ref, img, platform)
	}
	opts := r.remoteOptions(ctx)
	from, err := r.viaMirror(n)
	if err != nil {
		return nil, err
	}
	desc, err := remote.Get(from, opts...)
	if err != nil {
		if isNotFound(err) {
			return nil, fmt.Errorf("pull %s: %w", ref, ErrNotFound)
		}
		return nil, fmt.Errorf("pull %s: %w", ref, err)
	}
	if desc.MediaType.IsIndex() {
		idx, err := desc.ImageIndex()
		if err != nil {
			return nil, fmt.Errorf("pull %s: %w", ref, err)
		}
		im, err := idx.IndexManifest()
		if err != nil {
			return nil, fmt.Errorf("pull %s: read index: %w", ref, err)
		}
		child, err := pickPlatform(im, platform)
		if err != nil {
			return nil, fmt.Errorf("pull %s: %w", ref, err)
		}
		if img, ok := store.Image(child.Digest); ok {
			store.RecordResolved(n.Name(), platform, child.Digest)
			return img, nil
		}
		desc, err = remote.Get(from.Context().Digest(child.Digest.String()), opts...)
		if err != nil {
			return nil, fmt.Errorf("pull %s@%s: %w", ref, child.Digest, err)
		}
	}
	if img, ok := store.Image(desc.Digest); ok {
		if _, err := checkPlatform(ref, img, platform); err != nil {
			return nil, err
		}
		store.RecordResolved(n.Name(), platform, desc.Digest)
		return img, nil
	}
	if !desc.MediaType.IsImage() {
		return nil, fmt.Errorf("pull %s: unsupported media type %s", ref, desc.MediaType)
	}
	rimg, err := desc.Image()
	if err != nil {
		return nil, fmt.Errorf("pull %s: %w", ref, err)
	}
	if _, err := checkPlatform(ref, rimg, platform); err != nil {
		return nil, err
	}
	if err := store.writeImage(ctx, rimg, progress, r.blobRetry()); err != nil {
		return nil, fmt.Errorf("pull %s: %w", ref, err)
	}
	img, ok := store.Image(desc.Digest)
	if !ok {
		return nil, fmt.Errorf("pull %s: image %s incomplete in store after fetch", ref, desc.Digest)
	}
	store.RecordResolved(n.Name(), platform, desc.Digest)
	return img, nil
}

func pickPlatform(im *v1.IndexManifest, want v1.Platform) (v1.Descriptor, error) {
	var have []string
	for _, m := range im.Manifests {
		if m.Platform == nil {
			continue
		}
		if m.Platform.Satisfies(want) {
			return m, nil
		}
		have = append(have, m.Platform.String())
	}
	return v1.Descriptor{}, fmt.Errorf("%w %s (index has %v)", ErrNoPlatform, want.String(), have)
}

// checkPlatform refuses a single-platform image built for another platform.
func checkPlatform(ref string, img v1.Image, want v1.Platform) (v1.Image, error) {
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("pull %s: read config: %w", ref, err)
	}
	got := v1.Platform{OS: cf.OS, Architecture: cf.Architecture, Variant: cf.Variant}
	if got.OS == "" && got.Architecture == "" {
		return img, nil // no platform recorded: take it as asked
	}
	if !got.Satisfies(want) {
		return nil, fmt.Errorf("pull %s: image is %s: %w %s", ref, got.String(), ErrNoPlatform, want.String())
	}
	return img, nil
}
