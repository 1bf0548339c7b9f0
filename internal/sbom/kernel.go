package sbom

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"path"
	"slices"
	"strings"
	"time"
)

// KernelInfo is what Kernel records about one kernel build.
type KernelInfo struct {
	// Name is the image name, e.g. "linuxkit/kernel:6.12.117-<hash>-amd64".
	// It names the document. Required.
	Name string
	// ImageDigest is the image's manifest digest ("sha256:<hex>"), or ""
	// when unknown: the SBOM is attached to the image as a referrer, which
	// names the image already, and the image's digest cannot depend on it.
	ImageDigest string
	// Version is the kernel version, e.g. "6.12.117". Required.
	Version string
	// Release is what uname -r prints, e.g. "6.12.117-linuxkit".
	Release string
	// Arch is the kernel's architecture as uname -m prints it, e.g. "x86_64".
	Arch string
	// ConfigSHA256 is the hex SHA-256 of the .config the kernel was built
	// with, or "" when unknown.
	ConfigSHA256 string
	// Builtin holds the lines of modules.builtin ("kernel/fs/ext4/ext4.ko"),
	// Modules those of modules.order (the loadable modules), in any order.
	Builtin []string
	Modules []string
	// Source is the kernel source tarball and the patches applied to it.
	Source Source
	// Builder is the image the kernel was built in.
	Builder Image
	// Ucode is the CPU microcode shipped in the image, or nil when none is.
	Ucode *Git
	// Created is the build's epoch (SOURCE_DATE_EPOCH): the document's
	// creation time, written in UTC to the second. Required.
	Created time.Time
	// Tool names the program that made the document, e.g. "lkbuild-v0.3.0";
	// "" means "lkbuild".
	Tool string
	// Program, when set, is what the image holds instead of a kernel: a
	// program built from the kernel's source (LinuxKit's tool images,
	// "perf"). The document then describes it, built from the same source
	// and patches.
	Program string
	// ZFS, for the ZFS modules image (Program "zfs-kmod"), is the OpenZFS
	// release whose modules it holds beside the kernel's; nil otherwise.
	ZFS *Release
}

// Release is a released source tarball other than the kernel's.
type Release struct {
	Version string
	URL     string // where it is published
	SHA256  string // hex SHA-256 of the tarball
	// License is its SPDX license expression.
	License string
}

// Source is a kernel source tarball and the patches applied to it.
type Source struct {
	URL    string // where the tarball was downloaded from
	SHA256 string // hex SHA-256 of the tarball
	// Patches in the order they were applied.
	Patches []File
}

// File is a file known by name and content hash.
type File struct {
	Name   string
	SHA256 string // hex
}

// Image is a container image and the packages installed in it.
type Image struct {
	Name     string // reference, e.g. "debian:bookworm"
	Digest   string // manifest digest, "sha256:<hex>", or ""
	Packages []Package
}

// Git is a commit of a git repository.
type Git struct {
	URL    string
	Ref    string // the tag or branch asked for
	Commit string // the commit it resolved to
}

// Package is an installed package of a builder image.
type Package struct {
	Name    string
	Version string
	Arch    string
	// Source is the source package it was built from (dpkg's Source field
	// without its version, apk's origin), or "" when the database does not
	// say.
	Source string
	// Manager is Dpkg or Apk.
	Manager string
}

// namespacePrefix starts every documentNamespace. The namespace only has to
// be a unique URI; nothing is served there.
const namespacePrefix = "https://lkbuild.dev/spdx/"

// Fixed identifiers, reserved before any name-derived one is handed out.
const (
	kernelID  = "SPDXRef-Kernel"
	sourceID  = "SPDXRef-Kernel-Source"
	configID  = "SPDXRef-Kernel-Config"
	ucodeID   = "SPDXRef-Ucode"
	zfsID     = "SPDXRef-OpenZFS-Source"
	builderID = "SPDXRef-Builder"
)

// Kernel returns the SPDX 2.3 JSON SBOM of the kernel build k, indented.
// The same k gives the same bytes.
func Kernel(k KernelInfo) ([]byte, error) {
	if err := checkKernel(&k); err != nil {
		return nil, err
	}
	created := k.Created.UTC().Format("2006-01-02T15:04:05Z")
	tool := k.Tool
	if tool == "" {
		tool = "lkbuild"
	}
	release := k.Release
	if release == "" {
		release = k.Version
	}

	id := ids{}
	id.reserve(documentID, kernelID, sourceID, configID, ucodeID, builderID)
	doc := document{
		SPDXVersion:  spdxVersion,
		DataLicense:  dataLicense,
		SPDXID:       documentID,
		Name:         k.Name,
		CreationInfo: creationInfo{Creators: []string{"Tool: " + tool}, Created: created},
	}
	add := func(p spdxPackage) {
		if p.DownloadLocation == "" {
			p.DownloadLocation = noAssertion
		}
		if p.LicenseConcluded == "" {
			p.LicenseConcluded = noAssertion
			p.LicenseDeclared = noAssertion
		}
		doc.Packages = append(doc.Packages, p)
	}
	rel := func(a, typ, b string) {
		doc.Relationships = append(doc.Relationships, relationship{Element: a, Type: typ, Related: b})
	}

	// The kernel. The config hash is both an annotation here, for readers
	// of this package alone, and the checksum of the config package below,
	// for those who follow GENERATED_FROM.
	note := func(c string) annotation {
		return annotation{Date: created, Type: "OTHER", Annotator: "Tool: " + tool, Comment: c}
	}
	notes := []annotation{note("release: " + release)}
	if k.Arch != "" {
		notes = append(notes, note("arch: "+k.Arch))
	}
	if k.ConfigSHA256 != "" {
		notes = append(notes, note("config sha256: "+k.ConfigSHA256))
	}
	slices.SortFunc(notes, func(a, b annotation) int { return strings.Compare(a.Comment, b.Comment) })
	desc := "Linux kernel " + release
	name, purpose := "linux", "OPERATING-SYSTEM"
	if k.Program != "" {
		desc = k.Program + " from the source of Linux " + release
		name, purpose = k.Program, "APPLICATION"
	}
	if k.Arch != "" {
		desc += " for " + k.Arch
	}
	add(spdxPackage{
		Name:                  name,
		SPDXID:                kernelID,
		VersionInfo:           k.Version,
		LicenseConcluded:      kernelLicense,
		LicenseDeclared:       kernelLicense,
		Description:           desc + ", image " + k.Name,
		ExternalRefs:          purlRef(imagePURL(k.Name, k.ImageDigest)),
		PrimaryPackagePurpose: purpose,
		Annotations:           notes,
	})
	rel(documentID, "DESCRIBES", kernelID)

	// What it was built from.
	src := spdxPackage{
		Name:                  "linux",
		SPDXID:                sourceID,
		VersionInfo:           k.Version,
		DownloadLocation:      k.Source.URL,
		Checksums:             sha256Sum(k.Source.SHA256),
		LicenseConcluded:      kernelLicense,
		LicenseDeclared:       kernelLicense,
		PrimaryPackagePurpose: "SOURCE",
	}
	if u, err := url.Parse(k.Source.URL); err == nil && path.Base(u.Path) != "." && path.Base(u.Path) != "/" {
		src.PackageFileName = path.Base(u.Path)
	}
	add(src)
	rel(kernelID, "GENERATED_FROM", sourceID)
	if k.ConfigSHA256 != "" {
		add(spdxPackage{
			Name:                  "kernel-config",
			SPDXID:                configID,
			VersionInfo:           release,
			PackageFileName:       ".config",
			Checksums:             sha256Sum(k.ConfigSHA256),
			PrimaryPackagePurpose: "SOURCE",
		})
		rel(kernelID, "GENERATED_FROM", configID)
	}
	for i, p := range k.Source.Patches {
		pid := id.next("Patch", p.Name)
		add(spdxPackage{
			Name:                  p.Name,
			SPDXID:                pid,
			PackageFileName:       p.Name,
			Checksums:             sha256Sum(p.SHA256),
			Comment:               fmt.Sprintf("patch %d of %d in the order applied", i+1, len(k.Source.Patches)),
			PrimaryPackagePurpose: "SOURCE",
		})
		rel(kernelID, "GENERATED_FROM", pid)
		rel(pid, "PATCH_APPLIED", sourceID)
	}

	if z := k.ZFS; z != nil {
		zs := spdxPackage{
			Name:                  "openzfs",
			SPDXID:                zfsID,
			VersionInfo:           z.Version,
			DownloadLocation:      z.URL,
			Checksums:             sha256Sum(z.SHA256),
			LicenseConcluded:      firstNonEmpty(z.License, noAssertion),
			LicenseDeclared:       firstNonEmpty(z.License, noAssertion),
			Description:           "OpenZFS, whose spl and zfs modules the image holds",
			PrimaryPackagePurpose: "SOURCE",
		}
		if u, err := url.Parse(z.URL); err == nil && path.Base(u.Path) != "." && path.Base(u.Path) != "/" {
			zs.PackageFileName = path.Base(u.Path)
		}
		add(zs)
		rel(kernelID, "GENERATED_FROM", zfsID)
	}

	if g := k.Ucode; g != nil {
		add(spdxPackage{
			Name:                  repoName(g.URL),
			SPDXID:                ucodeID,
			VersionInfo:           firstNonEmpty(g.Ref, g.Commit),
			DownloadLocation:      vcsLocation(g.URL, firstNonEmpty(g.Commit, g.Ref)),
			Description:           "CPU microcode shipped in the kernel image",
			PrimaryPackagePurpose: "FIRMWARE",
		})
		rel(ucodeID, "PACKAGE_OF", kernelID)
	}

	// What it was built with.
	b := k.Builder
	if b.Name != "" || b.Digest != "" || len(b.Packages) > 0 {
		add(spdxPackage{
			Name:                  firstNonEmpty(b.Name, "builder"),
			SPDXID:                builderID,
			VersionInfo:           b.Digest,
			ExternalRefs:          purlRef(imagePURL(b.Name, b.Digest)),
			Description:           "the image the kernel was built in",
			PrimaryPackagePurpose: "CONTAINER",
		})
		rel(builderID, "BUILD_TOOL_OF", kernelID)
		for _, p := range sortedPackages(b.Packages) {
			pid := id.next("Package", p.Manager+"-"+p.Name+"-"+p.Arch)
			sp := spdxPackage{
				Name:         p.Name,
				SPDXID:       pid,
				VersionInfo:  p.Version,
				ExternalRefs: purlRef(p.PURL()),
			}
			if p.Source != "" {
				sp.SourceInfo = "built from source package " + p.Source
			}
			add(sp)
			rel(builderID, "CONTAINS", pid)
		}
	}

	// What it contains. Built-in modules are part of the kernel image and
	// have no file; loadable ones are where depmod looks for them.
	for _, m := range sortedLines(k.Builtin) {
		mid := id.next("Builtin", strings.TrimPrefix(m, "kernel/"))
		add(spdxPackage{
			Name:        moduleName(m),
			SPDXID:      mid,
			VersionInfo: release,
			Comment:     "built into the kernel (modules.builtin: " + m + ")",
		})
		rel(kernelID, "CONTAINS", mid)
	}
	for _, m := range sortedLines(k.Modules) {
		mid := id.next("Module", strings.TrimPrefix(m, "kernel/"))
		add(spdxPackage{
			Name:            moduleName(m),
			SPDXID:          mid,
			VersionInfo:     release,
			PackageFileName: path.Join("lib/modules", release, m),
		})
		rel(kernelID, "CONTAINS", mid)
	}

	// The namespace ends in the hash of everything else, so it changes
	// exactly when the document does.
	body, err := json.Marshal(doc)
	if err != nil {
		return nil, fmt.Errorf("encode SBOM: %w", err)
	}
	sum := sha256.Sum256(body)
	doc.DocumentNamespace = namespacePrefix + escapePath(k.Name) + "-" + hex.EncodeToString(sum[:])

	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // keep the '&' of purls readable
	enc.SetIndent("", "  ")
	if err := enc.Encode(doc); err != nil {
		return nil, fmt.Errorf("encode SBOM: %w", err)
	}
	return buf.Bytes(), nil
}

// checkKernel rejects what would make an invalid document and lowercases
// the hashes (SPDX checksum values are lowercase hex).
func checkKernel(k *KernelInfo) error {
	var errs []error
	if k.Name == "" {
		errs = append(errs, errors.New("no image name"))
	}
	if k.Version == "" {
		errs = append(errs, errors.New("no kernel version"))
	}
	if k.Created.IsZero() {
		errs = append(errs, errors.New("no creation time (the build's epoch)"))
	}
	hash := func(what string, h *string) {
		*h = strings.ToLower(*h)
		if *h == "" {
			return
		}
		if b, err := hex.DecodeString(*h); err != nil || len(b) != sha256.Size {
			errs = append(errs, fmt.Errorf("%s: %q is not a hex SHA-256", what, *h))
		}
	}
	hash("config", &k.ConfigSHA256)
	hash("source", &k.Source.SHA256)
	if k.ZFS != nil {
		z := *k.ZFS
		hash("OpenZFS", &z.SHA256)
		if z.Version == "" {
			errs = append(errs, errors.New("OpenZFS release without a version"))
		}
		k.ZFS = &z
	}
	k.Source.Patches = slices.Clone(k.Source.Patches)
	for i := range k.Source.Patches {
		p := &k.Source.Patches[i]
		if p.Name == "" {
			errs = append(errs, fmt.Errorf("patch %d has no name", i+1))
		}
		hash("patch "+p.Name, &p.SHA256)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("kernel SBOM: %w", err)
	}
	return nil
}

func sha256Sum(h string) []checksum {
	if h == "" {
		return nil
	}
	return []checksum{{Algorithm: "SHA256", Value: h}}
}

// sortedPackages returns ps sorted, without duplicates or nameless entries.
func sortedPackages(ps []Package) []Package {
	out := make([]Package, 0, len(ps))
	for _, p := range ps {
		if p.Name != "" {
			out = append(out, p)
		}
	}
	slices.SortFunc(out, comparePackages)
	return slices.Compact(out)
}

func comparePackages(a, b Package) int {
	for _, c := range [][2]string{
		{a.Manager, b.Manager}, {a.Name, b.Name}, {a.Arch, b.Arch}, {a.Version, b.Version}, {a.Source, b.Source},
	} {
		if d := strings.Compare(c[0], c[1]); d != 0 {
			return d
		}
	}
	return 0
}

// sortedLines returns the non-blank lines of ls, trimmed, sorted and
// without duplicates.
func sortedLines(ls []string) []string {
	out := make([]string, 0, len(ls))
	for _, l := range ls {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// moduleName is the module a modules.order or modules.builtin line names:
// its file name without ".ko" and a compression suffix.
func moduleName(line string) string {
	n := path.Base(line)
	for _, ext := range []string{".gz", ".xz", ".zst"} {
		n = strings.TrimSuffix(n, ext)
	}
	return strings.TrimSuffix(n, ".ko")
}

// repoName is the name of the repository at a git URL, "ucode" if none.
func repoName(u string) string {
	n := strings.TrimSuffix(path.Base(strings.TrimRight(u, "/")), ".git")
	if n == "" || n == "." || n == "/" {
		return "ucode"
	}
	return n
}

// vcsLocation is an SPDX download location for a git commit:
// git+https://host/repo.git@<commit>.
func vcsLocation(u, rev string) string {
	if u == "" {
		return noAssertion
	}
	if !strings.HasPrefix(u, "git+") {
		u = "git+" + u
	}
	if rev != "" {
		u += "@" + rev
	}
	return u
}

// escapePath percent-encodes each slash-separated part of s for a URI path.
func escapePath(s string) string {
	parts := strings.Split(s, "/")
	for i, p := range parts {
		parts[i] = url.PathEscape(p)
	}
	return strings.Join(parts, "/")
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}
