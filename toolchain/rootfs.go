package toolchain

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/lkbuild/lkbuild/internal/rmtree"
	"github.com/lkbuild/lkbuild/oci"
)

// Rootfs is a builder image unpacked on disk.
type Rootfs struct {
	// Dir is the unpacked tree. It is shared by every build that uses the
	// same image and must be treated as read-only (the sandbox mounts it
	// as an overlay's lower layer).
	Dir string
	// Ref is the image reference as given; Digest pins it.
	Ref    string
	Digest v1.Hash
	// Cached is true when the tree was already unpacked.
	Cached bool
	// Stats describes the extraction, when one happened.
	Stats oci.ExtractStats
}

// RootfsOptions says where a builder rootfs comes from and where it goes.
type RootfsOptions struct {
	Registry *oci.Registry
	// Store caches the image's blobs.
	Store *oci.Store
	// Dir holds unpacked trees, one per manifest digest.
	Dir string
	// Progress reports blob downloads.
	Progress func(oci.Progress)
}

// PrepareRootfs resolves ref for arch, pulls what is missing and unpacks
// the image once per manifest digest. Several lkbuild processes may
// prepare the same image at once: one unpacks while the others wait on a
// lock, and a tree only appears under its final name when complete.
//
// Trees are unpacked by the calling user, so a rootless user's cache holds
// trees it owns, as rootless overlayfs requires of its lower layer.
func PrepareRootfs(ctx context.Context, ref string, arch Arch, o RootfsOptions) (Rootfs, error) {
	img, err := o.Registry.Pull(ctx, ref, arch.Platform(), o.Store, o.Progress)
	if err != nil {
		return Rootfs{}, fmt.Errorf("builder image: %w", err)
	}
	d, err := img.Digest()
	if err != nil {
		return Rootfs{}, fmt.Errorf("builder image %s: %w", ref, err)
	}
	r := Rootfs{Ref: ref, Digest: d, Dir: filepath.Join(o.Dir, d.Algorithm, d.Hex)}
	if isDir(r.Dir) {
		r.Cached = true
		return r, nil
	}
	if err := os.MkdirAll(filepath.Dir(r.Dir), 0o755); err != nil {
		return Rootfs{}, fmt.Errorf("rootfs cache: %w", err)
	}
	unlock, err := lockFile(r.Dir + ".lock")
	if err != nil {
		return Rootfs{}, fmt.Errorf("rootfs cache: %w", err)
	}
	defer unlock()
	if isDir(r.Dir) { // another process finished while we waited
		r.Cached = true
		return r, nil
	}
	tmp, err := os.MkdirTemp(filepath.Dir(r.Dir), ".tmp-"+d.Hex[:12]+"-")
	if err != nil {
		return Rootfs{}, fmt.Errorf("rootfs cache: %w", err)
	}
	r.Stats, err = oci.Extract(ctx, img, tmp)
	if err != nil {
		rmtree.RemoveAll(tmp)
		return Rootfs{}, fmt.Errorf("unpack builder image %s: %w", ref, err)
	}
	if err := os.Rename(tmp, r.Dir); err != nil {
		rmtree.RemoveAll(tmp)
		return Rootfs{}, fmt.Errorf("rootfs cache: %w", err)
	}
	return r, nil
}

func isDir(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.IsDir()
}
