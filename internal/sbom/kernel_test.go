package sbom

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	spdxjson "github.com/spdx/tools-golang/json"
	"github.com/spdx/tools-golang/spdx/v2/common"
	"github.com/spdx/tools-golang/spdx/v2/v2_3"
	"github.com/spdx/tools-golang/spdxlib"
)

const (
	configHash = "1111111111111111111111111111111111111111111111111111111111111111"
	sourceHash = "2222222222222222222222222222222222222222222222222222222222222222"
	patchHash  = "3333333333333333333333333333333333333333333333333333333333333333"
	imageDig   = "sha256:4444444444444444444444444444444444444444444444444444444444444444"
)

func testInfo() KernelInfo {
	return KernelInfo{
		Name:         "linuxkit/kernel:6.12.117-0123456789abcdef-amd64",
		Version:      "6.12.117",
		Release:      "6.12.117-linuxkit",
		Arch:         "x86_64",
		ConfigSHA256: configHash,
		Builtin:      []string{"kernel/fs/ext4/ext4.ko", "kernel/drivers/virtio/virtio.ko"},
		Modules:      []string{"kernel/net/netfilter/nf_tables.ko", "kernel/fs/fuse/fuse.ko", "kernel/drivers/md/dm-mod.ko"},
		Source: Source{
			URL:    "https://cdn.kernel.org/pub/linux/kernel/v6.x/linux-6.12.117.tar.xz",
			SHA256: sourceHash,
			Patches: []File{
				{Name: "0002-second.patch", SHA256: patchHash},
				{Name: "0001-first.patch", SHA256: patchHash},
			},
		},
		Builder: Image{
			Name:   "linuxkit/alpine:0c069d0fd7defddb6e03925fcd4915407db0c9e1",
			Digest: imageDig,
			Packages: []Package{
				{Name: "gcc", Version: "12.2.0-14", Arch: "amd64", Source: "gcc-12", Manager: Dpkg},
				{Name: "libstdc++6", Version: "12.2.0-14+deb12u1", Arch: "amd64", Source: "gcc-12", Manager: Dpkg},
				{Name: "bsdutils", Version: "1:2.38.1-5+b1", Arch: "amd64", Source: "util-linux", Manager: Dpkg},
				{Name: "musl", Version: "1.2.5-r0", Arch: "x86_64", Source: "musl", Manager: Apk},
			},
		},
		Ucode: &Git{
			URL:    "https://github.com/intel/Intel-Linux-Processor-Microcode-Data-Files.git",
			Ref:    "microcode-20250211",
			Commit: "5555555555555555555555555555555555555555",
		},
		Created: time.Date(2025, 2, 3, 4, 5, 6, 7, time.FixedZone("CET", 3600)),
		Tool:    "lkbuild-v0.0.0-test",
	}
}

// parse reads doc with tools-golang's SPDX JSON reader, a second and
// independent implementation of the format, and runs its validator.
func parse(t *testing.T, doc []byte) *v2_3.Document {
	t.Helper()
	var d v2_3.Document
	if err := spdxjson.ReadInto(bytes.NewReader(doc), &d); err != nil {
		t.Fatalf("tools-golang cannot read the document: %v", err)
	}
	if err := spdxlib.ValidateDocument(&d); err != nil {
		t.Fatalf("tools-golang: invalid document: %v", err)
	}
	return &d
}

var idRE = regexp.MustCompile(`^SPDXRef-[A-Za-z0-9.-]+$`)

// checkDocument checks what SPDX 2.3 requires of the document and what
// tools-golang's validator does not: the mandatory document fields, unique
// and well-formed identifiers, relationships between existing elements.
// It works on the raw JSON, so it sees the identifiers as written.
func checkDocument(t *testing.T, doc []byte) {
	t.Helper()
	var d document
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&d); err != nil {
		t.Fatal(err)
	}
	if d.SPDXVersion != "SPDX-2.3" || d.DataLicense != "CC0-1.0" || d.SPDXID != "SPDXRef-DOCUMENT" {
		t.Errorf("header: %q %q %q", d.SPDXVersion, d.DataLicense, d.SPDXID)
	}
	if d.Name == "" {
		t.Error("no document name")
	}
	if !strings.HasPrefix(d.DocumentNamespace, "https://") || strings.ContainsAny(d.DocumentNamespace, "# ") {
		t.Errorf("documentNamespace %q is not a URI without a fragment", d.DocumentNamespace)
	}
	if len(d.CreationInfo.Creators) == 0 || !strings.HasPrefix(d.CreationInfo.Creators[0], "Tool: ") {
		t.Errorf("creators %q", d.CreationInfo.Creators)
	}
	if _, err := time.Parse("2006-01-02T15:04:05Z", d.CreationInfo.Created); err != nil {
		t.Errorf("created %q: %v", d.CreationInfo.Created, err)
	}
	seen := map[string]bool{documentID: true}
	for _, p := range d.Packages {
		if !idRE.MatchString(p.SPDXID) {
			t.Errorf("invalid SPDXID %q", p.SPDXID)
		}
		if seen[p.SPDXID] {
			t.Errorf("duplicate SPDXID %q", p.SPDXID)
		}
		seen[p.SPDXID] = true
		if p.Name == "" || p.DownloadLocation == "" || p.LicenseConcluded == "" || p.LicenseDeclared == "" {
			t.Errorf("package %s lacks a mandatory field: %+v", p.SPDXID, p)
		}
		for _, c := range p.Checksums {
			if c.Algorithm != "SHA256" || !regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(c.Value) {
				t.Errorf("package %s: checksum %+v", p.SPDXID, c)
			}
		}
	}
	for _, r := range d.Relationships {
		if !seen[r.Element] || !seen[r.Related] {
			t.Errorf("relationship %+v names an element not in the document", r)
		}
	}
}

func TestKernel(t *testing.T) {
	k := testInfo()
	out, err := Kernel(k)
	if err != nil {
		t.Fatal(err)
	}
	checkDocument(t, out)
	d := parse(t, out)

	again, err := Kernel(testInfo())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out, again) {
		t.Error("two documents from one input differ")
	}

	if d.CreationInfo.Created != "2025-02-03T03:05:06Z" {
		t.Errorf("created = %q, want the epoch in UTC to the second", d.CreationInfo.Created)
	}
	if want := "https://lkbuild.dev/spdx/linuxkit/kernel:6.12.117-0123456789abcdef-amd64-"; !strings.HasPrefix(d.DocumentNamespace, want) {
		t.Errorf("documentNamespace = %q, want prefix %q", d.DocumentNamespace, want)
	}

	pkgs := map[common.ElementID]*v2_3.Package{}
	for _, p := range d.Packages {
		pkgs[p.PackageSPDXIdentifier] = p
	}
	kern := pkgs["Kernel"]
	if kern == nil {
		t.Fatal("no SPDXRef-Kernel package")
	}
	if kern.PackageVersion != "6.12.117" || kern.PackageLicenseConcluded != "GPL-2.0-only" || kern.PackageLicenseDeclared != "GPL-2.0-only" {
		t.Errorf("kernel package: version %q, licenses %q %q", kern.PackageVersion, kern.PackageLicenseConcluded, kern.PackageLicenseDeclared)
	}
	var configNote bool
	for _, a := range kern.Annotations {
		configNote = configNote || a.AnnotationComment == "config sha256: "+configHash
	}
	if !configNote {
		t.Errorf("kernel package has no config hash annotation: %+v", kern.Annotations)
	}

	rels := map[string]bool{}
	contains := 0
	for _, r := range d.Relationships {
		a, b := string(r.RefA.ElementRefID), string(r.RefB.ElementRefID)
		rels[a+" "+r.Relationship+" "+b] = true
		if a == "Kernel" && r.Relationship == "CONTAINS" {
			contains++
		}
	}
	if contains != len(k.Builtin)+len(k.Modules) {
		t.Errorf("kernel CONTAINS %d modules, want %d", contains, len(k.Builtin)+len(k.Modules))
	}
	for _, want := range []string{
		"DOCUMENT DESCRIBES Kernel",
		"Kernel GENERATED_FROM Kernel-Source",
		"Kernel GENERATED_FROM Kernel-Config",
		"Kernel GENERATED_FROM Patch-0001-first.patch",
		"Patch-0001-first.patch PATCH_APPLIED Kernel-Source",
		"Builder BUILD_TOOL_OF Kernel",
		"Builder CONTAINS Package-dpkg-libstdc--6-amd64",
		"Ucode PACKAGE_OF Kernel",
		"Kernel CONTAINS Builtin-fs-ext4-ext4.ko",
		"Kernel CONTAINS Module-net-netfilter-nf-tables.ko",
	} {
		if !rels[want] {
			t.Errorf("no relationship %q", want)
		}
	}
	if cfg := pkgs["Kernel-Config"]; cfg == nil || len(cfg.PackageChecksums) != 1 || cfg.PackageChecksums[0].Value != configHash {
		t.Errorf("config package: %+v", cfg)
	}
	if src := pkgs["Kernel-Source"]; src == nil || src.PackageDownloadLocation != k.Source.URL ||
		len(src.PackageChecksums) != 1 || src.PackageChecksums[0].Value != sourceHash || src.PackageFileName != "linux-6.12.117.tar.xz" {
		t.Errorf("source package: %+v", src)
	}
	if m := pkgs["Module-fs-fuse-fuse.ko"]; m == nil || m.PackageName != "fuse" || m.PackageFileName != "lib/modules/6.12.117-linuxkit/kernel/fs/fuse/fuse.ko" {
		t.Errorf("fuse module: %+v", m)
	}
	if u := pkgs["Ucode"]; u == nil || u.PackageDownloadLocation != "git+"+k.Ucode.URL+"@"+k.Ucode.Commit || u.PackageVersion != k.Ucode.Ref {
		t.Errorf("ucode package: %+v", u)
	}

	// Patches keep the order they were applied in.
	first := strings.Index(string(out), `"name": "0002-second.patch"`)
	second := strings.Index(string(out), `"name": "0001-first.patch"`)
	if first < 0 || second < first {
		t.Errorf("patches out of order: %d %d", first, second)
	}
}

func TestKernelPURLs(t *testing.T) {
	out, err := Kernel(testInfo())
	if err != nil {
		t.Fatal(err)
	}
	d := parse(t, out)
	purls := map[string]string{}
	for _, p := range d.Packages {
		for _, r := range p.PackageExternalReferences {
			if r.RefType == "purl" {
				if r.Category != "PACKAGE-MANAGER" {
					t.Errorf("%s: purl category %q", p.PackageName, r.Category)
				}
				purls[p.PackageName] = r.Locator
			}
		}
	}
	for name, want := range map[string]string{
		"gcc":                   "pkg:deb/debian/gcc@12.2.0-14?arch=amd64",
		"libstdc++6":            "pkg:deb/debian/libstdc%2B%2B6@12.2.0-14%2Bdeb12u1?arch=amd64",
		"bsdutils":              "pkg:deb/debian/bsdutils@1:2.38.1-5%2Bb1?arch=amd64",
		"musl":                  "pkg:apk/alpine/musl@1.2.5-r0?arch=x86_64",
		testInfo().Builder.Name: "pkg:oci/alpine@sha256:" + strings.TrimPrefix(imageDig, "sha256:") + "?repository_url=docker.io%2Flinuxkit%2Falpine&tag=0c069d0fd7defddb6e03925fcd4915407db0c9e1",
	} {
		if purls[name] != want {
			t.Errorf("purl of %s = %q, want %q", name, purls[name], want)
		}
	}
	// The kernel image's digest is unknown here: no purl for it.
	if p, ok := purls["linux"]; ok {
		t.Errorf("kernel has purl %q without an image digest", p)
	}

	k := testInfo()
	k.ImageDigest = imageDig
	out, err = Kernel(k)
	if err != nil {
		t.Fatal(err)
	}
	want := "pkg:oci/kernel@" + imageDig + "?repository_url=docker.io%2Flinuxkit%2Fkernel&tag=6.12.117-0123456789abcdef-amd64"
	for _, p := range parse(t, out).Packages {
		if p.PackageSPDXIdentifier != "Kernel" {
			continue
		}
		if len(p.PackageExternalReferences) != 1 || p.PackageExternalReferences[0].Locator != want {
			t.Errorf("kernel purl: %+v, want %q", p.PackageExternalReferences, want)
		}
	}
}

func TestImagePURL(t *testing.T) {
	const d = imageDig
	for _, tc := range []struct{ ref, digest, want string }{
		{"debian:bookworm", d, "pkg:oci/debian@" + d + "?repository_url=docker.io%2Flibrary%2Fdebian&tag=bookworm"},
		{"localhost:5000/lk/builder", d, "pkg:oci/builder@" + d + "?repository_url=localhost:5000%2Flk%2Fbuilder"},
		{"ghcr.io/a/b:t@" + d, d, "pkg:oci/b@" + d + "?repository_url=ghcr.io%2Fa%2Fb&tag=t"},
		{"debian", "", ""},
		{"Not A Ref!", d, ""},
	} {
		if got := imagePURL(tc.ref, tc.digest); got != tc.want {
			t.Errorf("imagePURL(%q, %q) = %q, want %q", tc.ref, tc.digest, got, tc.want)
		}
	}
}

func TestPURL(t *testing.T) {
	for _, tc := range []struct {
		p    Package
		want string
	}{
		{Package{Name: "libc6", Version: "2.36-9+deb12u4", Arch: "amd64", Manager: Dpkg}, "pkg:deb/debian/libc6@2.36-9%2Bdeb12u4?arch=amd64"},
		{Package{Name: "tzdata", Version: "2024a-0+deb12u1", Arch: "all", Manager: Dpkg}, "pkg:deb/debian/tzdata@2024a-0%2Bdeb12u1?arch=all"},
		{Package{Name: "busybox", Version: "1.36.1-r29", Arch: "aarch64", Manager: Apk}, "pkg:apk/alpine/busybox@1.36.1-r29?arch=aarch64"},
		{Package{Name: "x", Manager: Dpkg}, "pkg:deb/debian/x"},
		{Package{Name: "x", Version: "1", Manager: "rpm"}, ""},
		{Package{Manager: Dpkg}, ""},
	} {
		if got := tc.p.PURL(); got != tc.want {
			t.Errorf("%+v: PURL() = %q, want %q", tc.p, got, tc.want)
		}
	}
}

func TestKernelIDs(t *testing.T) {
	k := testInfo()
	k.Name = "my registry/ядро kernel:1 2"
	k.Source.Patches = []File{
		{Name: "fix/a b.patch", SHA256: patchHash},
		{Name: "fix/a_b.patch", SHA256: patchHash}, // same identifier once mapped
		{Name: "fix/a-b.patch", SHA256: patchHash}, // and again
		{Name: "ünïcödé ✓.patch", SHA256: patchHash},
		{Name: "/", SHA256: patchHash}, // nothing left after mapping
	}
	k.Builtin = []string{"kernel/x y/ä.ko", "kernel/x_y/ä.ko"}
	k.Builder.Packages = append(k.Builder.Packages,
		Package{Name: "a+b", Version: "1", Arch: "amd64", Manager: Dpkg},
		Package{Name: "a.b", Version: "1", Arch: "amd64", Manager: Dpkg},
	)
	out, err := Kernel(k)
	if err != nil {
		t.Fatal(err)
	}
	checkDocument(t, out) // every SPDXID valid and unique
	d := parse(t, out)
	if d.DocumentName != k.Name {
		t.Errorf("name = %q", d.DocumentName)
	}
	if strings.ContainsAny(d.DocumentNamespace, " ") {
		t.Errorf("documentNamespace %q has a space", d.DocumentNamespace)
	}
}

func TestKernelNamespace(t *testing.T) {
	a, err := Kernel(testInfo())
	if err != nil {
		t.Fatal(err)
	}
	k := testInfo()
	k.Modules = append(k.Modules, "kernel/fs/xfs/xfs.ko")
	b, err := Kernel(k)
	if err != nil {
		t.Fatal(err)
	}
	if parse(t, a).DocumentNamespace == parse(t, b).DocumentNamespace {
		t.Error("two different builds share a documentNamespace")
	}

	// Input order does not matter for modules and packages.
	k = testInfo()
	k.Modules[0], k.Modules[2] = k.Modules[2], k.Modules[0]
	k.Builder.Packages[0], k.Builder.Packages[3] = k.Builder.Packages[3], k.Builder.Packages[0]
	c, err := Kernel(k)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, c) {
		t.Error("reordering modules or packages changed the document")
	}
}

func TestKernelMinimal(t *testing.T) {
	out, err := Kernel(KernelInfo{Name: "k", Version: "6.6.1", Created: time.Unix(0, 0)})
	if err != nil {
		t.Fatal(err)
	}
	checkDocument(t, out)
	d := parse(t, out)
	if len(d.Packages) != 2 { // the kernel and its source
		t.Errorf("%d packages, want 2", len(d.Packages))
	}
	if d.CreationInfo.Created != "1970-01-01T00:00:00Z" {
		t.Errorf("created = %q", d.CreationInfo.Created)
	}
}

// TestKernelZFS: the ZFS modules image names OpenZFS's release as a
// source of its own, with its license.
func TestKernelZFS(t *testing.T) {
	sum := strings.Repeat("ab", 32)
	out, err := Kernel(KernelInfo{Name: "zfs-kmod:6.12.117", Version: "6.12.117", Created: time.Unix(0, 0), Program: "zfs-kmod",
		ZFS: &Release{Version: "2.3.2", URL: "https://github.com/openzfs/zfs/releases/download/zfs-2.3.2/zfs-2.3.2.tar.gz", SHA256: strings.ToUpper(sum), License: "CDDL-1.0"}})
	if err != nil {
		t.Fatal(err)
	}
	checkDocument(t, out)
	for _, want := range []string{`"name": "openzfs"`, `"licenseDeclared": "CDDL-1.0"`, `"packageFileName": "zfs-2.3.2.tar.gz"`, `"checksumValue": "` + sum + `"`,
		`"spdxElementId": "SPDXRef-Kernel",
      "relationshipType": "GENERATED_FROM",
      "relatedSpdxElement": "SPDXRef-OpenZFS-Source"`} {
		if !strings.Contains(string(out), want) {
			t.Errorf("the document lacks %s:\n%s", want, out)
		}
	}
	if _, err := Kernel(KernelInfo{Name: "z", Version: "6.12.117", Created: time.Unix(0, 0), ZFS: &Release{SHA256: "nothex"}}); err == nil {
		t.Errorf("an OpenZFS release with a bad digest and no version was accepted")
	}
}

func TestKernelInvalid(t *testing.T) {
	for name, edit := range map[string]func(*KernelInfo){
		"no name":        func(k *KernelInfo) { k.Name = "" },
		"no version":     func(k *KernelInfo) { k.Version = "" },
		"no time":        func(k *KernelInfo) { k.Created = time.Time{} },
		"short config":   func(k *KernelInfo) { k.ConfigSHA256 = "abcd" },
		"non-hex source": func(k *KernelInfo) { k.Source.SHA256 = strings.Repeat("g", 64) },
		"bad patch hash": func(k *KernelInfo) { k.Source.Patches[0].SHA256 = "sha256:" + patchHash },
		"nameless patch": func(k *KernelInfo) { k.Source.Patches[1].Name = "" },
	} {
		t.Run(name, func(t *testing.T) {
			k := testInfo()
			edit(&k)
			if out, err := Kernel(k); err == nil {
				t.Errorf("no error; document:\n%.300s", out)
			}
		})
	}
	// Uppercase hex is accepted and written in lowercase.
	k := testInfo()
	k.ConfigSHA256 = strings.ToUpper("abcdef" + configHash[6:])
	out, err := Kernel(k)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(out, []byte(`"config sha256: abcdef`)) {
		t.Error("config hash not lowercased")
	}
}

// TestKernelLarge builds the SBOM of a kernel with as many modules as a
// distribution kernel ships, to keep an eye on its size and cost.
func TestKernelLarge(t *testing.T) {
	k := testInfo()
	k.Builtin = nil
	for i := range 100 {
		k.Builtin = append(k.Builtin, fmt.Sprintf("kernel/drivers/builtin%03d/mod%03d.ko", i%10, i))
	}
	k.Modules = nil
	for i := range 5000 {
		k.Modules = append(k.Modules, fmt.Sprintf("kernel/drivers/subsys%02d/driver_%04d.ko", i%40, i))
	}
	for i := range 400 {
		k.Builder.Packages = append(k.Builder.Packages, Package{
			Name: fmt.Sprintf("lib%03d", i), Version: "1.0-1", Arch: "amd64", Source: "src", Manager: Dpkg,
		})
	}
	start := time.Now()
	out, err := Kernel(k)
	elapsed := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d built-in + %d loadable modules, %d builder packages: %d bytes (%.2f MiB) in %v",
		len(k.Builtin), len(k.Modules), len(k.Builder.Packages), len(out), float64(len(out))/(1<<20), elapsed)
	if len(out) > 4<<20 {
		t.Errorf("document is %d bytes, want at most 4 MiB", len(out))
	}
	checkDocument(t, out)
	d := parse(t, out)
	if want := 2 + 1 + 2 + 1 + 1 + 4 + 400 + 100 + 5000; len(d.Packages) != want {
		t.Errorf("%d packages, want %d", len(d.Packages), want)
	}
}
