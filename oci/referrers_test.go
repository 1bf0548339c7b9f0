package oci

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

const (
	inToto = "application/vnd.in-toto+json"
	spdx   = "application/spdx+json"
)

// testAttachments are a provenance statement and an SBOM, as a build
// attaches them.
func testAttachments() []Attachment {
	created := map[string]string{"org.opencontainers.image.created": "2023-11-14T22:13:20Z"}
	return []Attachment{
		{ArtifactType: inToto, Data: []byte(`{"_type":"https://in-toto.io/Statement/v1","predicateType":"https://slsa.dev/provenance/v1"}`), Annotations: created},
		{ArtifactType: spdx, MediaType: spdx, Data: []byte(`{"spdxVersion":"SPDX-2.3","name":"kernel"}`), Annotations: created},
	}
}

// newReferrersRegistry starts go-containerregistry's in-process registry,
// with or without the referrers API, and returns its host:port.
func newReferrersRegistry(t *testing.T, api bool, mw func(http.Handler) http.Handler) string {
	t.Helper()
	var h http.Handler = registry.New(registry.Logger(log.New(io.Discard, "", 0)), registry.WithReferrersSupport(api))
	if mw != nil {
		h = mw(h)
	}
	s := httptest.NewServer(h)
	t.Cleanup(s.Close)
	return strings.TrimPrefix(s.URL, "http://")
}

func TestNewArtifact(t *testing.T) {
	subject := v1.Descriptor{
		MediaType: types.OCIManifestSchema1,
		Size:      1234,
		Digest:    v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("ab", 32)},
	}
	a := testAttachments()[0]
	img, err := NewArtifact(subject, a)
	if err != nil {
		t.Fatal(err)
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	// Pinned: a change here changes every attachment lkbuild writes.
	if want := "sha256:005b618a5f267059b85bc9ef4fba165b052e9d2cded94127e422ce4fbe425f20"; d.String() != want {
		t.Errorf("artifact digest %s, want %s", d, want)
	}

	// What the subject descriptor carries beyond its identity (a layout
	// entry's platform and ref name) does not reach the artifact.
	p := amd64
	noisy := subject
	noisy.Platform = &p
	noisy.Annotations = map[string]string{RefNameAnnotation: "kernel:6.6"}
	again, err := NewArtifact(noisy, a)
	if err != nil {
		t.Fatal(err)
	}
	if d2, _ := again.Digest(); d2 != d {
		t.Errorf("the same attachment gave %s, then %s", d, d2)
	}

	raw, err := img.RawManifest()
	if err != nil {
		t.Fatal(err)
	}
	var m struct {
		MediaType    string            `json:"mediaType"`
		ArtifactType string            `json:"artifactType"`
		Config       map[string]any    `json:"config"`
		Layers       []v1.Descriptor   `json:"layers"`
		Subject      map[string]any    `json:"subject"`
		Annotations  map[string]string `json:"annotations"`
	}
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	if m.MediaType != "application/vnd.oci.image.manifest.v1+json" || m.ArtifactType != inToto {
		t.Errorf("manifest media type %q, artifact type %q", m.MediaType, m.ArtifactType)
	}
	wantConfig := map[string]any{
		"mediaType": "application/vnd.oci.empty.v1+json",
		"digest":    "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",
		"size":      float64(2),
	}
	if !mapsEqual(m.Config, wantConfig) {
		t.Errorf("config %v, want the empty descriptor %v", m.Config, wantConfig)
	}
	if cfg, _ := img.RawConfigFile(); string(cfg) != "{}" {
		t.Errorf("config blob %q, want {}", cfg)
	}
	wantSubject := map[string]any{"mediaType": string(subject.MediaType), "digest": subject.Digest.String(), "size": float64(subject.Size)}
	if !mapsEqual(m.Subject, wantSubject) {
		t.Errorf("subject %v, want only %v", m.Subject, wantSubject)
	}
	if len(m.Layers) != 1 || m.Layers[0].MediaType != inToto || m.Layers[0].Size != int64(len(a.Data)) || m.Layers[0].Digest != digestOf(a.Data) {
		t.Errorf("layers %+v, want the document with media type %s (the artifact type, by default)", m.Layers, inToto)
	}
	if m.Annotations["org.opencontainers.image.created"] != "2023-11-14T22:13:20Z" {
		t.Errorf("annotations %v", m.Annotations)
	}

	for _, tc := range []struct {
		name    string
		subject v1.Descriptor
		a       Attachment
	}{
		{"no artifact type", subject, Attachment{Data: a.Data}},
		{"subject without digest", v1.Descriptor{MediaType: subject.MediaType, Size: 1}, a},
		{"subject without media type", v1.Descriptor{Digest: subject.Digest, Size: 1}, a},
		{"document over the limit", subject, Attachment{ArtifactType: spdx, Data: make([]byte, MaxAttachmentSize+1)}},
	} {
		if _, err := NewArtifact(tc.subject, tc.a); err == nil {
			t.Errorf("%s: no error", tc.name)
		}
	}
}

func mapsEqual(a, b map[string]any) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// checkReferrers checks that what r lists for ref is atts, attached as
// digests, and that each document reads back.
func checkReferrers(t *testing.T, r *Registry, ref string, atts []Attachment, digests map[string]v1.Hash) {
	t.Helper()
	ctx := context.Background()
	all, err := r.Referrers(ctx, ref, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != len(atts) {
		t.Fatalf("%d referrers of %s, want %d: %+v", len(all), ref, len(atts), all)
	}
	if !slices.IsSortedFunc(all, func(a, b Referrer) int {
		return strings.Compare(a.Descriptor.Digest.String(), b.Descriptor.Digest.String())
	}) {
		t.Errorf("referrers not sorted by digest: %+v", all)
	}
	for _, a := range atts {
		got, err := r.Referrers(ctx, ref, a.ArtifactType)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 || got[0].Descriptor.Digest != digests[a.ArtifactType] || got[0].ArtifactType != a.ArtifactType ||
			got[0].Descriptor.MediaType != types.OCIManifestSchema1 || got[0].Annotations["org.opencontainers.image.created"] == "" {
			t.Fatalf("referrers of type %s: %+v, want %s", a.ArtifactType, got, digests[a.ArtifactType])
		}
		data, err := r.ReadAttachment(ctx, ref, got[0])
		if err != nil {
			t.Fatal(err)
		}
		if string(data) != string(a.Data) {
			t.Errorf("%s reads back as %q, want %q", a.ArtifactType, data, a.Data)
		}
	}
	if got, err := r.Referrers(ctx, ref, "application/vnd.example.none"); err != nil || len(got) != 0 {
		t.Errorf("referrers of a type never attached: %+v, %v", got, err)
	}
}

// TestRegistryAttach attaches a provenance statement and an SBOM to an
// image in a registry with the referrers API and in one without, where
// go-containerregistry keeps the referrers tag.
func TestRegistryAttach(t *testing.T) {
	for _, tc := range []struct {
		name string
		api  bool
	}{
		{"referrers API", true},
		{"referrers tag", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			rec := &recorder{}
			host := newReferrersRegistry(t, tc.api, rec.wrap)
			ref := host + "/linuxkit/kernel:6.6.71"
			r := newTestClient(t)
			img := randomImage(t, amd64)
			want, err := r.Push(ctx, img, ref)
			if err != nil {
				t.Fatal(err)
			}
			subject, err := DescriptorOf(img)
			if err != nil {
				t.Fatal(err)
			}
			atts := testAttachments()
			digests := map[string]v1.Hash{}
			rec.reset()
			for _, a := range atts {
				d, err := r.Attach(ctx, ref, a)
				if err != nil {
					t.Fatal(err)
				}
				// The registry and a layout give an attachment one digest.
				art, err := NewArtifact(subject, a)
				if err != nil {
					t.Fatal(err)
				}
				if ad, _ := art.Digest(); ad != d {
					t.Errorf("Attach gave %s, NewArtifact %s", d, ad)
				}
				digests[a.ArtifactType] = d
			}
			// remote.Write asked for the referrers API while pushing the
			// artifacts, and wrote the referrers tag only without it.
			fallback := "sha256-" + want.Hex
			if n := rec.count("GET /v2/linuxkit/kernel/referrers/" + want.String()); n != len(atts) {
				t.Errorf("%d referrers API probes while attaching, want %d: %v", n, len(atts), rec.reqs)
			}
			putTag := rec.count("PUT /v2/linuxkit/kernel/manifests/" + fallback)
			if tc.api && putTag != 0 || !tc.api && putTag != len(atts) {
				t.Errorf("the referrers tag was written %d times: %v", putTag, rec.reqs)
			}

			if d, err := r.Head(ctx, ref); err != nil || d.Digest != want {
				t.Errorf("after attaching, %s is %s (%v), want %s", ref, d.Digest, err, want)
			}
			rec.reset()
			checkReferrers(t, r, ref, atts, digests)
			checkReferrers(t, r, host+"/linuxkit/kernel@"+want.String(), atts, digests)
			if n := rec.count("/manifests/" + fallback); tc.api && n != 0 {
				t.Errorf("a registry with the referrers API had its referrers tag read: %v", rec.reqs)
			}

			// Attaching again changes nothing.
			for _, a := range atts {
				if d, err := r.Attach(ctx, ref, a); err != nil || d != digests[a.ArtifactType] {
					t.Errorf("attaching %s again: %s, %v; want %s", a.ArtifactType, d, err, digests[a.ArtifactType])
				}
			}
			checkReferrers(t, r, ref, atts, digests)

			tags, err := remote.List(mustParse(t, ref).Context())
			if err != nil {
				t.Fatal(err)
			}
			if tc.api {
				if slices.Contains(tags, fallback) {
					t.Errorf("a registry with the referrers API got the referrers tag: %v", tags)
				}
				return
			}
			desc, err := remote.Get(mustParse(t, host+"/linuxkit/kernel:"+fallback))
			if err != nil {
				t.Fatalf("referrers tag: %v (tags %v)", err, tags)
			}
			checkFallbackIndex(t, desc.MediaType, desc.Manifest, digests)
		})
	}
}

// checkFallbackIndex checks a referrers tag's index: an OCI index listing
// exactly the artifacts in digests, by artifact type.
func checkFallbackIndex(t *testing.T, mt types.MediaType, raw []byte, digests map[string]v1.Hash) {
	t.Helper()
	var idx v1.IndexManifest
	if err := json.Unmarshal(raw, &idx); err != nil {
		t.Fatal(err)
	}
	if mt != types.OCIImageIndex || idx.MediaType != types.OCIImageIndex {
		t.Errorf("referrers tag is %s (%s), want an OCI index", mt, idx.MediaType)
	}
	if len(idx.Manifests) != len(digests) {
		t.Fatalf("referrers tag lists %d manifests, want %d: %s", len(idx.Manifests), len(digests), raw)
	}
	for _, m := range idx.Manifests {
		if digests[m.ArtifactType] != m.Digest || m.MediaType != types.OCIManifestSchema1 {
			t.Errorf("referrers tag lists %s %s (%s), want %v", m.MediaType, m.Digest, m.ArtifactType, digests)
		}
	}
}

// TestRegistryReferrersForged lists, under one image's referrers tag, an
// artifact whose subject is another image: Referrers leaves it out.
func TestRegistryReferrersForged(t *testing.T) {
	ctx := context.Background()
	host := newReferrersRegistry(t, false, nil)
	r := newTestClient(t)
	victim, err := r.Push(ctx, randomImage(t, amd64), host+"/kernel:a")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Push(ctx, randomImage(t, amd64), host+"/kernel:b"); err != nil {
		t.Fatal(err)
	}
	other, err := r.Attach(ctx, host+"/kernel:b", testAttachments()[0])
	if err != nil {
		t.Fatal(err)
	}
	otherDesc, err := remote.Head(mustParse(t, host+"/kernel@"+other.String()))
	if err != nil {
		t.Fatal(err)
	}
	forged := v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex, Manifests: []v1.Descriptor{{
		MediaType: otherDesc.MediaType, Size: otherDesc.Size, Digest: other, ArtifactType: inToto,
	}}}
	raw, err := json.Marshal(forged)
	if err != nil {
		t.Fatal(err)
	}
	tag := mustParse(t, host+"/kernel:sha256-"+victim.Hex)
	if err := remote.Put(tag, rawIndex(raw)); err != nil {
		t.Fatal(err)
	}
	got, err := r.Referrers(ctx, host+"/kernel:a", "")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 0 {
		t.Errorf("an artifact of another image was taken for one of this image: %+v", got)
	}
}

// blobTamper serves what serve writes instead of the blob with digest h.
func blobTamper(h v1.Hash, serve func(w http.ResponseWriter)) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			if req.Method == http.MethodGet && strings.HasSuffix(req.URL.Path, "/blobs/"+h.String()) {
				serve(w)
				return
			}
			next.ServeHTTP(w, req)
		})
	}
}

// TestRegistryReadAttachmentHostile reads attachments whose document the
// registry serves wrong.
func TestRegistryReadAttachmentHostile(t *testing.T) {
	a := testAttachments()[1]
	doc := digestOf(a.Data)
	var written atomic.Int64
	endless := func(w http.ResponseWriter) {
		chunk := make([]byte, 32<<10)
		for written.Load() < 1<<30 {
			n, err := w.Write(chunk)
			written.Add(int64(n))
			if err != nil {
				return
			}
		}
	}
	for _, tc := range []struct {
		name  string
		serve func(w http.ResponseWriter)
	}{
		{"other bytes of the same length", func(w http.ResponseWriter) {
			b := slices.Clone(a.Data)
			b[0] ^= 0xff
			w.Write(b)
		}},
		{"a body without end", endless},
		{"a Content-Length of a terabyte", func(w http.ResponseWriter) {
			w.Header().Set("Content-Length", "1099511627776")
			endless(w)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			written.Store(0)
			ctx := context.Background()
			host := newReferrersRegistry(t, true, blobTamper(doc, tc.serve))
			ref := host + "/kernel:1"
			r := newTestClient(t, WithRetry(1, 0))
			if _, err := r.Push(ctx, randomImage(t, amd64), ref); err != nil {
				t.Fatal(err)
			}
			if _, err := r.Attach(ctx, ref, a); err != nil {
				t.Fatal(err)
			}
			refs, err := r.Referrers(ctx, ref, spdx)
			if err != nil || len(refs) != 1 {
				t.Fatalf("referrers: %+v, %v", refs, err)
			}
			data, err := r.ReadAttachment(ctx, ref, refs[0])
			if err == nil {
				t.Fatalf("read %q, want an error", data)
			}
			if !errors.Is(err, ErrDigestMismatch) {
				t.Errorf("got %v, want ErrDigestMismatch", err)
			}
			if n := written.Load(); n > 32<<20 {
				t.Errorf("the client took %d bytes of a %d-byte document", n, len(a.Data))
			}
		})
	}
}

// TestRegistryReadAttachmentRefused reads artifacts that are no
// attachment lkbuild reads: the document is not fetched.
func TestRegistryReadAttachmentRefused(t *testing.T) {
	ctx := context.Background()
	rec := &recorder{}
	host := newReferrersRegistry(t, true, rec.wrap)
	r := newTestClient(t)
	subject, err := r.Push(ctx, randomImage(t, amd64), host+"/kernel:1")
	if err != nil {
		t.Fatal(err)
	}
	fake := v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("cd", 32)}
	empty := v1.Descriptor{MediaType: types.OCIEmptyJSON, Size: 2, Digest: digestOf([]byte(emptyJSON))}
	for _, tc := range []struct {
		name   string
		layers []v1.Descriptor
	}{
		{"a document of a terabyte", []v1.Descriptor{{MediaType: spdx, Size: 1 << 40, Digest: fake}}},
		{"a negative size", []v1.Descriptor{{MediaType: spdx, Size: -1, Digest: fake}}},
		{"two documents", []v1.Descriptor{{MediaType: spdx, Size: 10, Digest: fake}, {MediaType: spdx, Size: 10, Digest: fake}}},
		{"no document", []v1.Descriptor{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			raw, err := json.Marshal(v1.Manifest{
				SchemaVersion: 2, MediaType: types.OCIManifestSchema1, ArtifactType: spdx,
				Config: empty, Layers: tc.layers,
				Subject: &v1.Descriptor{MediaType: types.DockerManifestSchema2, Digest: subject, Size: 100},
			})
			if err != nil {
				t.Fatal(err)
			}
			d := digestOf(raw)
			if err := remote.Put(mustParse(t, host+"/kernel@"+d.String()), rawManifest(raw)); err != nil {
				t.Fatal(err)
			}
			rec.reset()
			ref := Referrer{Descriptor: v1.Descriptor{MediaType: types.OCIManifestSchema1, Digest: d, Size: int64(len(raw))}, ArtifactType: spdx}
			if data, err := r.ReadAttachment(ctx, host+"/kernel", ref); err == nil {
				t.Errorf("read %d bytes, want an error", len(data))
			}
			if n := rec.count("/blobs/"); n != 0 {
				t.Errorf("the document was asked for: %v", rec.reqs)
			}
		})
	}
}

// rawManifest is an OCI image manifest given as its exact bytes.
type rawManifest []byte

func (r rawManifest) RawManifest() ([]byte, error)        { return r, nil }
func (r rawManifest) MediaType() (types.MediaType, error) { return types.OCIManifestSchema1, nil }

// TestReferrersOffline: an offline Registry refuses to attach, list and
// read before any request.
func TestReferrersOffline(t *testing.T) {
	ctx := context.Background()
	rec := &recorder{}
	host := newReferrersRegistry(t, true, rec.wrap)
	off := newTestClient(t, WithOffline(true))
	ref := host + "/kernel:1"
	for _, tc := range []struct {
		name string
		call func() error
	}{
		{"attach", func() error { _, err := off.Attach(ctx, ref, testAttachments()[0]); return err }},
		{"referrers", func() error { _, err := off.Referrers(ctx, ref, ""); return err }},
		{"referrers by digest", func() error {
			_, err := off.Referrers(ctx, host+"/kernel@sha256:"+strings.Repeat("ab", 32), "")
			return err
		}},
		{"read attachment", func() error {
			_, err := off.ReadAttachment(ctx, ref, Referrer{Descriptor: v1.Descriptor{Digest: v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("ab", 32)}}})
			return err
		}},
	} {
		if err := tc.call(); !errors.Is(err, ErrOffline) {
			t.Errorf("%s offline: got %v, want ErrOffline", tc.name, err)
		}
	}
	if len(rec.reqs) != 0 {
		t.Errorf("offline registry made %d requests: %v", len(rec.reqs), rec.reqs)
	}
}

// layoutIndex reads the layout's index.json as it is on disk.
func layoutIndex(t *testing.T, s *Store) v1.IndexManifest {
	t.Helper()
	data, err := os.ReadFile(s.Dir() + "/index.json")
	if err != nil {
		t.Fatal(err)
	}
	var idx v1.IndexManifest
	if err := json.Unmarshal(data, &idx); err != nil {
		t.Fatal(err)
	}
	return idx
}

func TestStoreAttach(t *testing.T) {
	ctx := context.Background()
	s := newTestStore(t)
	img := randomImage(t, amd64)
	names := []string{"linuxkit/kernel:6.6.71", "linuxkit/kernel:6.6.71-amd64"}
	if err := s.WriteLayout(ctx, img, amd64, names...); err != nil {
		t.Fatal(err)
	}
	_, named, err := s.ImageByName(names[0])
	if err != nil {
		t.Fatal(err)
	}
	subject, err := DescriptorOf(img)
	if err != nil {
		t.Fatal(err)
	}
	if subject.Digest != named.Digest || subject.Size != named.Size || subject.MediaType != named.MediaType {
		t.Fatalf("DescriptorOf gives %+v, the layout names %+v", subject, named)
	}
	atts := testAttachments()
	digests := map[string]v1.Hash{}
	for _, a := range atts {
		d, err := s.Attach(ctx, subject, a)
		if err != nil {
			t.Fatal(err)
		}
		art, err := NewArtifact(v1.Descriptor{MediaType: subject.MediaType, Size: subject.Size, Digest: subject.Digest}, a)
		if err != nil {
			t.Fatal(err)
		}
		if ad, _ := art.Digest(); ad != d {
			t.Errorf("Store.Attach gave %s, NewArtifact %s", d, ad)
		}
		digests[a.ArtifactType] = d
		if _, ok := s.Image(d); ok {
			t.Errorf("the store takes artifact %s for an image", d)
		}
	}

	check := func(t *testing.T, what string) {
		t.Helper()
		all, err := s.Referrers(subject.Digest, "")
		if err != nil {
			t.Fatal(err)
		}
		if len(all) != len(atts) {
			t.Fatalf("%s: %d referrers, want %d: %+v", what, len(all), len(atts), all)
		}
		for _, a := range atts {
			got, err := s.Referrers(subject.Digest, a.ArtifactType)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 1 || got[0].Descriptor.Digest != digests[a.ArtifactType] || got[0].ArtifactType != a.ArtifactType ||
				got[0].Annotations["org.opencontainers.image.created"] == "" {
				t.Fatalf("%s: referrers of type %s: %+v", what, a.ArtifactType, got)
			}
			data, err := s.ReadAttachment(got[0])
			if err != nil {
				t.Fatal(err)
			}
			if string(data) != string(a.Data) {
				t.Errorf("%s: %s reads back as %q", what, a.ArtifactType, data)
			}
		}
		// index.json: the names and one entry per artifact, which has
		// its artifact type and no name.
		idx := layoutIndex(t, s)
		if len(idx.Manifests) != len(names)+len(atts) {
			t.Errorf("%s: index.json has %d entries, want %d: %+v", what, len(idx.Manifests), len(names)+len(atts), idx.Manifests)
		}
		for _, m := range idx.Manifests {
			if m.Digest == subject.Digest {
				continue
			}
			if digests[m.ArtifactType] != m.Digest || m.MediaType != types.OCIManifestSchema1 || len(m.Annotations) != 0 || m.Platform != nil {
				t.Errorf("%s: index.json entry %+v, want an artifact with no name", what, m)
			}
		}
		for _, n := range names {
			if _, d, err := s.ImageByName(n); err != nil || d.Digest != subject.Digest {
				t.Errorf("%s: ImageByName(%s) = %s, %v; want %s", what, n, d.Digest, err, subject.Digest)
			}
		}
	}
	check(t, "attached")

	for _, a := range atts {
		if d, err := s.Attach(ctx, subject, a); err != nil || d != digests[a.ArtifactType] {
			t.Errorf("attaching %s again: %s, %v", a.ArtifactType, d, err)
		}
	}
	check(t, "attached twice")

	// A later build writes the same image under its names again.
	if err := s.WriteLayout(ctx, img, amd64, names...); err != nil {
		t.Fatal(err)
	}
	check(t, "written again")

	// A rebuild's document of the same type replaces the last one.
	newer := atts[0]
	newer.Data = append(slices.Clone(newer.Data), ' ')
	d, err := s.Attach(ctx, subject, newer)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := s.Referrers(subject.Digest, newer.ArtifactType); err != nil || len(got) != 1 || got[0].Descriptor.Digest != d {
		t.Errorf("after a newer %s: %+v, %v; want only %s", newer.ArtifactType, got, err, d)
	}
	if all, err := s.Referrers(subject.Digest, ""); err != nil || len(all) != len(atts) {
		t.Errorf("after a newer %s: %d referrers, %v; want %d", newer.ArtifactType, len(all), err, len(atts))
	}

	if got, err := s.Referrers(digestOf([]byte("another")), ""); err != nil || len(got) != 0 {
		t.Errorf("referrers of an image with none: %+v, %v", got, err)
	}

	// A document changed in the layout is refused.
	refs, err := s.Referrers(subject.Digest, spdx)
	if err != nil || len(refs) != 1 {
		t.Fatalf("referrers: %+v, %v", refs, err)
	}
	blob := s.BlobPath(digestOf(atts[1].Data))
	changed := slices.Clone(atts[1].Data)
	changed[0] ^= 0xff
	if err := os.WriteFile(blob, changed, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ReadAttachment(refs[0]); !errors.Is(err, ErrDigestMismatch) {
		t.Errorf("changed document: got %v, want ErrDigestMismatch", err)
	}
}

// TestDistributionReferrers attaches to an image in Distribution 2.8,
// which has no referrers API: go-containerregistry keeps the referrers
// tag, and skopeo reads it and the artifacts back.
func TestDistributionReferrers(t *testing.T) {
	d := needDistribution(t)
	ctx := context.Background()
	path := "linuxkit/" + uniqueRepo(t, "attach")
	repo := d.host + "/" + path
	rl := &requestLog{base: http.DefaultTransport}
	r := newTestClient(t, WithKeychain(authn.DefaultKeychain), WithTransport(rl))
	want, err := r.Push(ctx, randomImage(t, amd64), repo+":6.6.71")
	if err != nil {
		t.Fatal(err)
	}
	atts := testAttachments()
	digests := map[string]v1.Hash{}
	for _, a := range atts {
		got, err := r.Attach(ctx, repo+":6.6.71", a)
		if err != nil {
			t.Fatal(err)
		}
		digests[a.ArtifactType] = got
	}
	fallback := "sha256-" + want.Hex
	// remote.Write of an image with a subject probed the referrers API,
	// found none and wrote the referrers tag.
	for _, probe := range rl.find("/referrers/" + want.String()) {
		if !strings.HasSuffix(probe, " 404") {
			t.Errorf("Distribution answered the referrers API: %s", probe)
		}
	}
	if n := len(rl.find("GET /v2/" + path + "/referrers/")); n != len(atts) {
		t.Errorf("%d referrers API probes, want %d: %v", n, len(atts), rl.log)
	}
	if puts := rl.find("PUT /v2/" + path + "/manifests/" + fallback); len(puts) != len(atts) {
		t.Errorf("referrers tag written %d times, want %d: %v", len(puts), len(atts), rl.log)
	}

	if got := d.inspect(t, repo+":6.6.71"); got["Digest"] != want.String() {
		t.Errorf("after attaching, the image is %v, want %s", got["Digest"], want)
	}
	checkReferrers(t, r, repo+":6.6.71", atts, digests)

	checkFallbackIndex(t, types.OCIImageIndex, d.inspectRaw(t, repo+":"+fallback, "--raw"), digests)
	for at, dg := range digests {
		var m v1.Manifest
		if err := json.Unmarshal(d.inspectRaw(t, repo+"@"+dg.String(), "--raw"), &m); err != nil {
			t.Fatal(err)
		}
		if m.MediaType != types.OCIManifestSchema1 || m.ArtifactType != at || m.Subject == nil || m.Subject.Digest != want ||
			m.Config.MediaType != types.OCIEmptyJSON || len(m.Layers) != 1 {
			t.Errorf("skopeo reads artifact %s as %+v", dg, m)
		}
	}
}
