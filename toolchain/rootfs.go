package toolchain

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/lkbuild/lkbuild/internal/flock"
	"github.com/lkbuild/lkbuild/internal/rmtree"
	"github.com/lkbuild/lkbuild/kernel"
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
	// Image is the image the tree was unpacked from.
	Image v1.Image
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
func PrepareRootfs(ctx context.Context, ref string, arch kernel.Arch, o RootfsOptions) (Rootfs, error) {
	var img v1.Image
	var err error
	if dir, name, ok := ParseLayoutRef(ref); ok {
		img, err = LayoutImageFor(dir, name, Platform(arch))
	} else {
		img, err = o.Registry.Pull(ctx, ref, Platform(arch), o.Store, o.Progress)
	}
	if err != nil {
		return Rootfs{}, fmt.Errorf("builder image: %w", err)
	}
	if err := checkPlatform(ref, img, arch); err != nil {
		return Rootfs{}, err
	}
	return UnpackRootfs(ctx, ref, img, o)
}

// UnpackRootfs unpacks img (called ref in messages) into o.Dir once per
// manifest digest, as PrepareRootfs does.
func UnpackRootfs(ctx context.Context, ref string, img v1.Image, o RootfsOptions) (Rootfs, error) {
	d, err := img.Digest()
	if err != nil {
		return Rootfs{}, fmt.Errorf("builder image %s: %w", ref, err)
	}
	r := Rootfs{Ref: ref, Digest: d, Image: img, Dir: filepath.Join(o.Dir, d.Algorithm, d.Hex)}
	if isDir(r.Dir) {
		r.Cached = true
		return r, nil
	}
	if err := os.MkdirAll(filepath.Dir(r.Dir), 0o755); err != nil {
		return Rootfs{}, fmt.Errorf("rootfs cache: %w", err)
	}
	// Another process may be unpacking the same image: wait for it, or
	// for ctx.
	unlock, err := flock.Exclusive(ctx, r.Dir+".lock", nil)
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

// PlatformError is returned by PrepareRootfs for an image made for another
// platform than the build's arch: its programs would run under emulation
// for the wrong arch, or not at all, and the build would fail late with a
// message about the compiler.
type PlatformError struct {
	Ref  string
	Have string // the image config's os/arch ("" when it names none)
	Want kernel.Arch
}

func (e *PlatformError) Error() string {
	have := e.Have
	if have == "" {
		have = "of no stated platform"
	} else {
		have = "for " + have
	}
	return fmt.Sprintf("builder image %s is %s, not %s (--arch %s): give a builder image for %s (lkbuild builder-image --from dir:ROOTFS makes one from a rootfs tree)",
		e.Ref, have, e.Want.Platform(), e.Want, e.Want.Platform())
}

// checkPlatform refuses img unless its config is for linux/arch.
func checkPlatform(ref string, img v1.Image, arch kernel.Arch) error {
	cf, err := img.ConfigFile()
	if err != nil {
		return fmt.Errorf("builder image %s: %w", ref, err)
	}
	have := ""
	if cf.OS != "" || cf.Architecture != "" {
		have = cf.OS + "/" + cf.Architecture
	}
	if cf.OS != "linux" || cf.Architecture != arch.OCI {
		return &PlatformError{Ref: ref, Have: have, Want: arch}
	}
	return nil
}

// LayoutPrefix starts a reference to an image in a local OCI layout,
// oci:DIR:NAME (skopeo's form), NAME being the image's
// org.opencontainers.image.ref.name in the layout's index.
const LayoutPrefix = "oci:"

// ParseLayoutRef splits oci:DIR:NAME; ok is false for registry references.
func ParseLayoutRef(ref string) (dir, name string, ok bool) {
	rest, ok := strings.CutPrefix(ref, LayoutPrefix)
	if !ok {
		return "", "", false
	}
	dir = rest
	if i := strings.LastIndex(rest, ":"); i >= 0 && !strings.Contains(rest[i+1:], "/") {
		dir, name = rest[:i], rest[i+1:]
	}
	return dir, name, true
}

// LayoutImage opens the image named name in the OCI layout at dir.
func LayoutImage(dir, name string) (v1.Image, error) {
	return layoutImage(dir, name, nil)
}

// LayoutImageFor opens the image named name in the OCI layout at dir, or
// the image for platform p of the index named name (a build's V-builder).
func LayoutImageFor(dir, name string, p v1.Platform) (v1.Image, error) {
	return layoutImage(dir, name, &p)
}

func layoutImage(dir, name string, p *v1.Platform) (v1.Image, error) {
	if _, err := os.Stat(filepath.Join(dir, "oci-layout")); err != nil {
		return nil, fmt.Errorf("%s is not an OCI layout: %w", dir, err)
	}
	s, err := oci.OpenStore(dir)
	if err != nil {
		return nil, err
	}
	if name == "" {
		return nil, fmt.Errorf("%s%s: name the image, %s%s:NAME", LayoutPrefix, dir, LayoutPrefix, dir)
	}
	if p != nil {
		img, _, err := s.ImageForPlatform(name, *p)
		return img, err
	}
	img, _, err := s.ImageByName(name)
	return img, err
}

func isDir(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.IsDir()
}
