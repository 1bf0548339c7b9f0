package e2e

import (
	"bytes"
	"encoding/json"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	spdxjson "github.com/spdx/tools-golang/json"

	"github.com/lkbuild/lkbuild/internal/testenv"
)

// The attachments' artifact types (builder.ArtifactProvenance and
// ArtifactSBOM), spelled out: the suite checks the binary, not the
// library.
const (
	provenanceType = "application/vnd.in-toto+json"
	sbomType       = "application/spdx+json"
)

// statement is what the suite reads of a provenance attachment.
type statement struct {
	Type          string `json:"_type"`
	PredicateType string `json:"predicateType"`
	Subject       []struct {
		Name   string            `json:"name"`
		Digest map[string]string `json:"digest"`
	} `json:"subject"`
	Predicate struct {
		BuildDefinition struct {
			ExternalParameters map[string]any `json:"externalParameters"`
			InternalParameters struct {
				BuilderInstall *struct {
					Manager string   `json:"manager"`
					Missing []string `json:"missing"`
					Command string   `json:"command"`
				} `json:"builderInstall"`
			} `json:"internalParameters"`
			ResolvedDependencies []struct {
				Name   string            `json:"name"`
				URI    string            `json:"uri"`
				Digest map[string]string `json:"digest"`
			} `json:"resolvedDependencies"`
		} `json:"buildDefinition"`
	} `json:"predicate"`
}

// checkAttachments reads the provenance and SBOM of the image digest back
// with lkbuild sbom from ref (a registry reference or oci:DIR:NAME) and
// checks what they say about the image.
func (e *env) checkAttachments(t *testing.T, ref, digest string, img *image) {
	t.Helper()
	r := e.lkbuild(t, nil, "sbom", "--insecure-registry", ref)
	if r.code != 0 {
		t.Fatalf("lkbuild sbom %s: exit %d\n%s", ref, r.code, r.stderr)
	}
	doc, err := spdxjson.Read(strings.NewReader(r.stdout))
	if err != nil {
		t.Fatalf("the SBOM of %s does not parse as SPDX JSON: %v\n%s", ref, err, tailString(r.stdout, 20))
	}
	if doc.SPDXVersion != "SPDX-2.3" || doc.DataLicense != "CC0-1.0" || doc.CreationInfo == nil {
		t.Errorf("SBOM: version %q, data license %q, creation info %v", doc.SPDXVersion, doc.DataLicense, doc.CreationInfo)
	}
	var kernelPkg bool
	for _, p := range doc.Packages {
		if p.PackageName == "linux" && p.PackageVersion == version {
			kernelPkg = true
		}
	}
	if !kernelPkg {
		t.Errorf("the SBOM of %s has no kernel package of version %s", ref, version)
	}
	// Every loadable module of kernel.tar is in the SBOM.
	for name := range img.tarEntries(t, "kernel.tar") {
		if strings.HasSuffix(name, ".ko") || strings.HasSuffix(name, ".ko.xz") {
			if !strings.Contains(r.stdout, filepath.Base(strings.TrimSuffix(name, ".xz"))) {
				t.Errorf("the SBOM does not name the module %s", name)
			}
		}
	}
	if !strings.Contains(r.stdout, "pkg:deb/debian/gcc-12@") {
		t.Errorf("the SBOM does not list the builder's gcc-12 package with a purl")
	}

	r = e.lkbuild(t, nil, "sbom", "--provenance", "--insecure-registry", ref)
	if r.code != 0 {
		t.Fatalf("lkbuild sbom --provenance %s: exit %d\n%s", ref, r.code, r.stderr)
	}
	var st statement
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil {
		t.Fatalf("provenance of %s: %v", ref, err)
	}
	if st.Type != "https://in-toto.io/Statement/v1" || st.PredicateType != "https://slsa.dev/provenance/v1" ||
		len(st.Subject) != 1 || "sha256:"+st.Subject[0].Digest["sha256"] != digest {
		t.Errorf("provenance of %s: type %q, predicate %q, subject %+v; want the image %s", ref, st.Type, st.PredicateType, st.Subject, digest)
	}
	// The builder is of LinuxKit's shape: the provenance says what the
	// build installed into it.
	if in := st.Predicate.BuildDefinition.InternalParameters.BuilderInstall; in == nil || in.Manager != "apt" ||
		!slices.Contains(in.Missing, "build-essential") || !strings.Contains(in.Command, "apt-get") {
		t.Errorf("the provenance of %s does not record the packages installed into the builder: %+v", ref, in)
	}
	deps := map[string]map[string]string{}
	for _, d := range st.Predicate.BuildDefinition.ResolvedDependencies {
		deps[d.Name] = d.Digest
	}
	ann := img.manifest.Annotations
	for dep, want := range map[string]string{
		"source":      ann["dev.lkbuild.source.sha256"],
		"builder":     strings.TrimPrefix(ann["dev.lkbuild.builder.digest"], "sha256:"),
		"config":      ann["dev.lkbuild.config.sha256"],
		"intel-ucode": ann["dev.lkbuild.ucode.commit"],
	} {
		got := deps[dep]["sha256"]
		if dep == "intel-ucode" {
			got = deps[dep]["gitCommit"]
		}
		if want == "" || got != want {
			t.Errorf("provenance dependency %s = %q, the image records %q", dep, got, want)
		}
	}
	if inv, _ := st.Predicate.BuildDefinition.ExternalParameters["invocation"].([]any); len(inv) == 0 {
		t.Errorf("the provenance does not record the invocation: %v", st.Predicate.BuildDefinition.ExternalParameters)
	}
}

// referrersRegistry is go-containerregistry's registry with the OCI 1.1
// referrers API, on 127.0.0.1; it returns its host and a log of the
// request paths it served.
func referrersRegistry(t *testing.T) (string, func() []string) {
	t.Helper()
	var mu syncBuffer
	h := registry.New(registry.WithReferrersSupport(true), registry.Logger(log.New(io.Discard, "", 0)))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Write([]byte(r.Method + " " + r.URL.Path + "\n"))
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://"), func() []string { return strings.Split(mu.String(), "\n") }
}

// attachments checks the provenance and SBOM of the first build: in the
// layout, in the Distribution registry it was pushed to (no referrers API:
// the sha256-<hex> tag, read back with skopeo too), and in a registry with
// the referrers API that lkbuild push sends the layout's image to.
func (e *env) attachments(t *testing.T, img *image, out, kdir, archTag, digest string) {
	hex := strings.TrimPrefix(digest, "sha256:")
	t.Run("layout", func(t *testing.T) {
		e.checkAttachments(t, "oci:"+out+":"+archTag, digest, img)
	})
	t.Run("distribution", func(t *testing.T) {
		e.checkAttachments(t, archTag, digest, img)
		// The fallback tag, read by an independent client.
		repo := archTag[:strings.LastIndex(archTag, ":")]
		var idx struct {
			MediaType string `json:"mediaType"`
			Manifests []struct {
				Digest       string `json:"digest"`
				ArtifactType string `json:"artifactType"`
			} `json:"manifests"`
		}
		raw := e.skopeo(t, "inspect", "--raw", e.tlsCreds(), "docker://"+repo+":sha256-"+hex)
		if err := json.Unmarshal([]byte(raw), &idx); err != nil {
			t.Fatal(err)
		}
		var types []string
		for _, m := range idx.Manifests {
			types = append(types, m.ArtifactType)
			var art struct {
				ArtifactType string                  `json:"artifactType"`
				Subject      struct{ Digest string } `json:"subject"`
			}
			if err := json.Unmarshal([]byte(e.skopeo(t, "inspect", "--raw", e.tlsCreds(), "docker://"+repo+"@"+m.Digest)), &art); err != nil {
				t.Fatal(err)
			}
			if art.Subject.Digest != digest || art.ArtifactType != m.ArtifactType {
				t.Errorf("artifact %s: type %q, subject %s; want the image %s", m.Digest, art.ArtifactType, art.Subject.Digest, digest)
			}
		}
		slices.Sort(types)
		if want := []string{sbomType, provenanceType}; !slices.Equal(types, want) { // sorted
			t.Errorf("the referrers tag sha256-%s lists %v (%s), want the provenance and the SBOM", hex, types, idx.MediaType)
		}
		if d := e.digest(t, archTag); d != digest {
			t.Errorf("attaching changed the image: %s is %s, want %s", archTag, d, digest)
		}
	})
	t.Run("referrers-api", func(t *testing.T) {
		host, requests := referrersRegistry(t)
		org := host + "/e2e"
		r := e.lkbuild(t, nil, "push", "--kernel-dir", kdir, "--series", series, "--arch", "x86_64", "--org", org, "--output", out, "--insecure-registry")
		if r.code != 0 {
			t.Fatalf("lkbuild push to a registry with the referrers API: exit %d\n%s", r.code, r.stderr)
		}
		ref := strings.Replace(archTag, e.registry+"/e2e", org, 1)
		e.checkAttachments(t, ref, digest, img)
		var api, fallback bool
		for _, p := range requests() {
			api = api || strings.Contains(p, "/referrers/sha256:"+hex)
			fallback = fallback || strings.Contains(p, "/manifests/sha256-"+hex)
		}
		if !api || fallback {
			t.Errorf("referrers API used %v, fallback tag used %v: want the API only", api, fallback)
		}
	})
}

// changedImage builds the first build's checkout with one byte of its
// patch changed (an uncommitted change, on the object tree cache keeps:
// incremental), and writes that image into a new layout under the first
// build's tag with the first build's series hash: an image that claims
// inputs it was not built from. It returns the layout; the checkout is
// clean again.
func (e *env) changedImage(t *testing.T, kdir, cache, org, archTag, hash string) string {
	t.Helper()
	m, _ := filepath.Glob(filepath.Join(kdir, series, "patches", "0001-*.patch"))
	orig, err := os.ReadFile(m[0])
	if err != nil {
		t.Fatal(err)
	}
	changed := bytes.Replace(orig, []byte(`patch 0001 applied`), []byte(`patch 0001 applieD`), 1)
	if bytes.Equal(changed, orig) {
		t.Fatal("the patch's marker line is not where the test expects it")
	}
	if err := os.WriteFile(m[0], changed, 0o644); err != nil {
		t.Fatal(err)
	}
	// Under the suite's work dir: TestKernelBuild keeps the layout after
	// this subtest ends (a subtest's TempDir goes with it).
	out := filepath.Join(e.work, "changed-build")
	r := e.lkbuild(t, nil, e.buildArgs(cache, out, kdir, org)...)
	if err := os.WriteFile(m[0], orig, 0o644); err != nil {
		t.Fatal(err)
	}
	if r.code != 0 {
		t.Fatalf("build with a changed patch failed (exit %d):\n%s\n%s", r.code, r.stderr, tailString(r.stdout, 40))
	}
	res := r.final()
	t.Logf("build with one byte of the patch changed: %s in %s (incremental %v)", res.Digest, r.elapsed.Round(time.Second), res.Incremental)
	p, err := layout.FromPath(out)
	if err != nil {
		t.Fatal(err)
	}
	h, err := v1.NewHash(res.Digest)
	if err != nil {
		t.Fatal(err)
	}
	img, err := p.Image(h)
	if err != nil {
		t.Fatal(err)
	}
	forged := mutate.Annotations(img, map[string]string{"dev.lkbuild.series.hash": hash}).(v1.Image)
	dir := filepath.Join(e.work, "changed")
	lp, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := lp.AppendImage(forged, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": archTag})); err != nil {
		t.Fatal(err)
	}
	return dir
}

// verifyState is what TestKernelBuild leaves for TestVerifyElsewhere, in
// $LKBUILD_E2E_OFFLINE_STATE.
type verifyState struct {
	// Build is the first build's arguments (no --push) from the bundle,
	// into an empty cache: for the offline check of a missing piece.
	Build []string `json:"build"`
	// Verify are the flags of lkbuild verify from the bundle (REF comes
	// last).
	Verify []string `json:"verify"`
	// Image is the incremental build's image in a layout (oci:DIR:NAME),
	// Digest its digest; Changed the same tag with one byte of the patch
	// changed.
	Image, Digest, Changed string
	// BuildSeconds is how long the first build took.
	BuildSeconds float64 `json:"buildSeconds"`
	// Where the first build ran: the user, umask, host name, TZ.
	UID      int    `json:"uid"`
	Hostname string `json:"hostname"`
	TZ       string `json:"tz"`
}

// verifyOutput is lkbuild verify --json's output.
type verifyOutput struct {
	Identical  bool    `json:"identical"`
	Image      string  `json:"image"`
	Rebuilt    string  `json:"rebuilt"`
	Reused     bool    `json:"reused"`
	Seconds    float64 `json:"seconds"`
	Provenance string  `json:"provenance"`
	Diff       *struct {
		Manifest []struct{ Path, A, B string } `json:"manifest"`
		Layers   []struct {
			Members []struct {
				Path string `json:"path"`
				Diff string `json:"diff"`
				A, B *struct {
					Size   int64  `json:"size"`
					SHA256 string `json:"sha256"`
				}
			} `json:"members"`
		} `json:"layers"`
	} `json:"diff"`
}

// TestVerifyElsewhere verifies TestKernelBuild's incremental image (built
// on the object tree of earlier builds) as a third party would on another
// machine, from scratch: another user, umask 077, another time
// zone, locale and host name, another cache and work path, make -j3, in a
// network namespace without a network, from the bundle TestKernelBuild's
// fetch wrote (scripts/test.sh runs it there, after TestKernelBuild left
// its state in $LKBUILD_E2E_OFFLINE_STATE). The rebuild must be the image.
// The same tag with one byte of the patch changed must be found
// different, with the changed source file named and diffed. An --offline
// build with no bundle and an empty cache must name what is missing.
func TestVerifyElsewhere(t *testing.T) {
	dir := testenv.Getenv(t, "LKBUILD_E2E_OFFLINE_STATE", "scripts/test.sh runs this test in a network namespace after TestKernelBuild")
	bin := testenv.Getenv(t, "LKBUILD_E2E_BIN", "scripts/test.sh builds lkbuild")
	data, err := os.ReadFile(filepath.Join(dir, "state.json"))
	if err != nil {
		t.Fatalf("TestKernelBuild left no state: %v", err)
	}
	var st verifyState
	if err := json.Unmarshal(data, &st); err != nil {
		t.Fatal(err)
	}
	// Elsewhere: no network (the interfaces of this process's network
	// namespace; /sys/class/net would show sysfs's), and everything else
	// a second machine would change.
	ifaces, err := net.Interfaces()
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range ifaces {
		if i.Name != "lo" || i.Flags&net.FlagUp != 0 {
			t.Fatalf("not in a network namespace without a network: %s is here (%v)", i.Name, i.Flags)
		}
	}
	host, _ := os.Hostname()
	mask := syscall.Umask(0o077)
	syscall.Umask(mask)
	if os.Getuid() == st.UID || host == st.Hostname || mask != 0o077 || os.Getenv("TZ") == st.TZ || os.Getenv("TZ") == "" {
		t.Fatalf("not elsewhere: uid %d (build %d), host %q (build %q), umask %03o (want 077), TZ %q (build %q)",
			os.Getuid(), st.UID, host, st.Hostname, mask, os.Getenv("TZ"), st.TZ)
	}
	e := &env{bin: bin}
	// Another cache and work path than the build's.
	cache, rebuilt := filepath.Join(t.TempDir(), "cache"), filepath.Join(t.TempDir(), "rebuilt")
	verify := func(ref string, extra ...string) (result, verifyOutput) {
		args := append(append(append([]string{"--cache-dir", cache}, st.Verify...), "--output", rebuilt), extra...)
		r := e.lkbuild(t, nil, append(args, ref)...)
		var v verifyOutput
		if slices.Contains(extra, "--json") {
			if err := json.Unmarshal([]byte(r.stdout), &v); err != nil {
				t.Fatalf("lkbuild verify --json %s: exit %d, %v\n%s\n%s", ref, r.code, err, r.stderr, tailString(r.stdout, 20))
			}
		}
		return r, v
	}

	r, v := verify(st.Image, "--json")
	if r.code != 0 || !v.Identical || v.Rebuilt != st.Digest || v.Reused {
		t.Fatalf("verify elsewhere: exit %d, identical %v, rebuilt %s (image %s), reused %v\n%s", r.code, v.Identical, v.Rebuilt, st.Digest, v.Reused, r.stderr)
	}
	if !strings.HasPrefix(v.Provenance, "checked") {
		t.Errorf("verify did not check the attached provenance: %q", v.Provenance)
	}
	t.Logf("verify elsewhere: identical, %s in %s; the first build took %.0f s: verify/build %.2f",
		v.Rebuilt, r.elapsed.Round(time.Second), st.BuildSeconds, r.elapsed.Seconds()/st.BuildSeconds)

	// The changed image: the rebuild kept in --output serves it.
	r, v = verify(st.Changed, "--json")
	if r.code != 1 || v.Identical || v.Diff == nil || !v.Reused || v.Rebuilt != st.Digest {
		t.Fatalf("verify of a changed image: exit %d (want 1), identical %v, reused %v, rebuilt %s\n%s", r.code, v.Identical, v.Reused, v.Rebuilt, r.stderr)
	}
	var named bool
	for _, l := range v.Diff.Layers {
		for _, m := range l.Members {
			if strings.HasSuffix(m.Path, "linux/init/main.c") && strings.Contains(m.Path, "src/linux.tar.xz") {
				named = m.A != nil && m.B != nil && m.A.SHA256 != m.B.SHA256 &&
					strings.Contains(m.Diff, "\n-\tpr_notice(\"lkbuild-e2e: patch 0001 applieD, edited\\n\");\n") &&
					strings.Contains(m.Diff, "\n+\tpr_notice(\"lkbuild-e2e: patch 0001 applied, edited\\n\");\n")
				if !named {
					t.Errorf("init/main.c named without both hashes and its diff: %+v", m)
				}
			}
		}
	}
	if !named {
		t.Errorf("verify of the changed image does not name src/linux.tar.xz's linux/init/main.c:\n%s", tailString(r.stdout, 40))
	}
	var patches bool
	for _, f := range v.Diff.Manifest {
		patches = patches || strings.HasSuffix(f.Path, "dev.lkbuild.patches")
	}
	if !patches {
		t.Errorf("verify of the changed image does not name the recorded patch hash: %+v", v.Diff.Manifest)
	}
	// Without the bundle, an empty cache: the first piece missing is
	// named, with the command that fetches it.
	args := slices.Clone(st.Build)
	args = slices.Delete(args, len(args)-2, len(args))
	args[slices.Index(args, "--cache-dir")+1] = t.TempDir()
	args[slices.Index(args, "--output")+1] = filepath.Join(t.TempDir(), "oci")
	r = e.lkbuild(t, nil, append([]string{"--offline"}, args...)...)
	if r.code == 0 || !strings.Contains(r.stderr, "is not in the cache") || !strings.Contains(r.stderr, " fetch ") {
		t.Errorf("offline build with an empty cache: exit %d, want a failure naming the piece and lkbuild fetch:\n%s", r.code, r.stderr)
	}
}
