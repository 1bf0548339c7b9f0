package sbom

import (
	"strconv"
	"strings"
)

// The SPDX 2.3 JSON shapes Kernel writes: only the fields it fills, in the
// order the spec lists them. Hand-written rather than tools-golang's
// v2_3 types so the bytes depend on nothing but this file (see the
// package tests, which read the output back with tools-golang).

const (
	spdxVersion = "SPDX-2.3"
	dataLicense = "CC0-1.0"
	documentID  = "SPDXRef-DOCUMENT"
	noAssertion = "NOASSERTION"

	// kernelLicense is what the kernel's COPYING declares for the kernel as
	// a whole. Files under other licenses exist in the tree; a scanner that
	// has looked at them can say more.
	kernelLicense = "GPL-2.0-only"
)

type document struct {
	SPDXVersion       string         `json:"spdxVersion"`
	DataLicense       string         `json:"dataLicense"`
	SPDXID            string         `json:"SPDXID"`
	Name              string         `json:"name"`
	DocumentNamespace string         `json:"documentNamespace"`
	CreationInfo      creationInfo   `json:"creationInfo"`
	Packages          []spdxPackage  `json:"packages"`
	Relationships     []relationship `json:"relationships"`
}

type creationInfo struct {
	Creators []string `json:"creators"`
	Created  string   `json:"created"`
}

type spdxPackage struct {
	Name             string `json:"name"`
	SPDXID           string `json:"SPDXID"`
	VersionInfo      string `json:"versionInfo,omitempty"`
	PackageFileName  string `json:"packageFileName,omitempty"`
	DownloadLocation string `json:"downloadLocation"`
	// FilesAnalyzed is always written: it defaults to true, which would
	// require a packageVerificationCode over files the document does not
	// list.
	FilesAnalyzed         bool          `json:"filesAnalyzed"`
	Checksums             []checksum    `json:"checksums,omitempty"`
	SourceInfo            string        `json:"sourceInfo,omitempty"`
	LicenseConcluded      string        `json:"licenseConcluded"`
	LicenseDeclared       string        `json:"licenseDeclared"`
	Description           string        `json:"description,omitempty"`
	Comment               string        `json:"comment,omitempty"`
	ExternalRefs          []externalRef `json:"externalRefs,omitempty"`
	PrimaryPackagePurpose string        `json:"primaryPackagePurpose,omitempty"`
	Annotations           []annotation  `json:"annotations,omitempty"`
}

type checksum struct {
	Algorithm string `json:"algorithm"`
	Value     string `json:"checksumValue"`
}

type externalRef struct {
	Category string `json:"referenceCategory"`
	Type     string `json:"referenceType"`
	Locator  string `json:"referenceLocator"`
}

type annotation struct {
	Date      string `json:"annotationDate"`
	Type      string `json:"annotationType"`
	Annotator string `json:"annotator"`
	Comment   string `json:"comment"`
}

type relationship struct {
	Element string `json:"spdxElementId"`
	Type    string `json:"relationshipType"`
	Related string `json:"relatedSpdxElement"`
	Comment string `json:"comment,omitempty"`
}

// purlRef is the externalRefs entry for a package URL.
func purlRef(purl string) []externalRef {
	if purl == "" {
		return nil
	}
	return []externalRef{{Category: "PACKAGE-MANAGER", Type: "purl", Locator: purl}}
}

// ids hands out SPDX identifiers. An identifier may hold only letters,
// digits, '.' and '-' after "SPDXRef-", so names are mapped onto that set
// and collisions (a/b and a b both give a-b) get a numeric suffix. Callers
// ask in a fixed order, which keeps the suffixes reproducible.
type ids map[string]bool

// reserve marks fixed identifiers as taken before any name is mapped.
func (s ids) reserve(id ...string) {
	for _, i := range id {
		s[i] = true
	}
}

// next returns a new identifier "SPDXRef-<kind>-<name>".
func (s ids) next(kind, name string) string {
	base := "SPDXRef-" + kind
	if n := idString(name); n != "" {
		base += "-" + n
	}
	id := base
	for i := 2; s[id]; i++ {
		id = base + "-" + strconv.Itoa(i)
	}
	s[id] = true
	return id
}

// idString maps s onto the characters an SPDX identifier allows: every
// other byte (a slash, a space, each byte of a multi-byte character)
// becomes '-'. Leading and trailing dashes are dropped.
func idString(s string) string {
	b := []byte(s)
	for i, c := range b {
		if !idByte(c) {
			b[i] = '-'
		}
	}
	return strings.Trim(string(b), "-")
}

func idByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '-'
}
