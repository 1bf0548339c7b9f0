package oci

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// ErrOffline is returned by a Registry made WithOffline for anything that
// would need the network, and by Pull for an image no earlier pull put in
// the store.
var ErrOffline = errors.New("offline")

// resolvedDir holds what each pulled reference resolved to, next to the
// layout's blobs: one file per reference and platform.
const resolvedDir = "resolved"

// resolved is what a reference named, for one platform, when it was
// pulled: the image manifest's digest.
type resolved struct {
	Ref      string  `json:"ref"`
	Platform string  `json:"platform"`
	Digest   v1.Hash `json:"digest"`
}

func (s *Store) resolvedFile(ref string, p v1.Platform) string {
	sum := sha256.Sum256([]byte(ref + "\n" + p.String()))
	return filepath.Join(s.Dir(), resolvedDir, hex.EncodeToString(sum[:16])+".json")
}

// RecordResolved notes that ref named image d for platform p, as a pull
// does (and a bundle import, for images that come from elsewhere). A failure
// costs only the offline use of the record, so it is not an error of the
// pull.
func (s *Store) RecordResolved(ref string, p v1.Platform, d v1.Hash) {
	data, err := json.Marshal(resolved{Ref: ref, Platform: p.String(), Digest: d})
	if err != nil {
		return
	}
	file := s.resolvedFile(ref, p)
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		return
	}
	tmp, err := os.CreateTemp(filepath.Dir(file), ".tmp-")
	if err != nil {
		return
	}
	_, werr := tmp.Write(data)
	if cerr := tmp.Close(); werr != nil || cerr != nil || os.Rename(tmp.Name(), file) != nil {
		os.Remove(tmp.Name())
	}
}

// Resolved returns the image that ref named for platform p when it was
// last pulled into the store, without the network. It fails with an error
// wrapping ErrOffline when no pull recorded ref, or when the image is no
// longer whole in the store.
func (s *Store) Resolved(ref string, p v1.Platform) (v1.Image, error) {
	data, err := os.ReadFile(s.resolvedFile(ref, p))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("image %s for %s was never pulled into this cache: %w", ref, p.String(), ErrOffline)
	}
	if err != nil {
		return nil, err
	}
	var r resolved
	if err := json.Unmarshal(data, &r); err != nil || r.Ref != ref || r.Platform != p.String() {
		return nil, fmt.Errorf("image %s for %s: unreadable record %s: %w", ref, p.String(), s.resolvedFile(ref, p), ErrOffline)
	}
	img, ok := s.Image(r.Digest)
	if !ok {
		return nil, fmt.Errorf("image %s for %s (%s): blobs missing from this cache: %w", ref, p.String(), r.Digest, ErrOffline)
	}
	return img, nil
}

// RefName is ref's canonical form, the one Pull records it under
// (docker.io/x is index.docker.io/library/x...).
func RefName(ref string) (string, error) {
	n, err := name.ParseReference(ref)
	if err != nil {
		return "", fmt.Errorf("parse reference %q: %w", ref, err)
	}
	return n.Name(), nil
}
