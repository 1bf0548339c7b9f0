package builder

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"

	"github.com/lkbuild/lkbuild/internal/rmtree"
	"github.com/lkbuild/lkbuild/kernel"
	"github.com/lkbuild/lkbuild/oci"
	"github.com/lkbuild/lkbuild/sandbox"
	"github.com/lkbuild/lkbuild/toolchain"
)

// DirPrefix names a rootfs directory as a builder image's base: dir:PATH,
// e.g. a tree debootstrap made. The tree becomes the image's first layer
// with its modes and owners.
const DirPrefix = "dir:"

// BuilderImageOptions describes a provisioned builder image: a base image
// plus the changes some setup commands make to it.
type BuilderImageOptions struct {
	// From is the base image reference, or dir:PATH for a rootfs tree.
	From string
	// Arch is the image's arch. A dir: tree must be for it (see
	// toolchain.DetectArch).
	Arch kernel.Arch
	// Run holds shell commands, run in order with /bin/sh -c in one
	// sandbox filesystem, with the host's network (they usually install
	// packages). A dir: base may have none: the tree is packed as it is.
	Run []string
	// Env is the commands' environment.
	Env []string
	// Epoch is the time recorded in the new layer and config.
	Epoch time.Time
	// Rootfs says where the base image comes from and is unpacked.
	Rootfs toolchain.RootfsOptions
	// Emulation runs a foreign arch's commands (nil for the host's arch).
	Emulation *toolchain.Emulation
	// WorkDir holds the overlay upper dir while the commands run.
	WorkDir        string
	Stdout, Stderr io.Writer
	Notify         func(string)
}

// BuildBuilderImage runs the setup commands over the base image's rootfs
// and returns the base image with one more layer: what the commands
// changed, deletions as whiteouts. This is LinuxKit's `apk add` step, done
// once into an image instead of at every (hermetic) build.
func BuildBuilderImage(ctx context.Context, o BuilderImageOptions) (v1.Image, error) {
	tree, fromDir := strings.CutPrefix(o.From, DirPrefix)
	if len(o.Run) == 0 && !fromDir {
		return nil, errors.New("builder image: no setup commands")
	}
	var base v1.Image
	if fromDir {
		img, err := dirImage(tree, o)
		if err != nil {
			return nil, err
		}
		if len(o.Run) == 0 {
			return img, nil
		}
		base = img
	} else {
		rfs, err := toolchain.PrepareRootfs(ctx, o.From, o.Arch, o.Rootfs)
		if err != nil {
			return nil, err
		}
		// A pulled base is in the blob store; one from an OCI layout
		// (oci:DIR:NAME) is read where it is.
		img, ok := o.Rootfs.Store.Image(rfs.Digest)
		if !ok {
			if img = rfs.Image; img == nil {
				return nil, fmt.Errorf("builder image: base %s@%s missing from the blob store", o.From, rfs.Digest)
			}
		}
		base, tree = img, rfs.Dir
	}
	if err := os.MkdirAll(o.WorkDir, 0o755); err != nil {
		return nil, fmt.Errorf("builder image: %w", err)
	}
	work, err := os.MkdirTemp(o.WorkDir, "builder-image-")
	if err != nil {
		return nil, fmt.Errorf("builder image: %w", err)
	}
	defer rmtree.RemoveAll(work)
	upper := filepath.Join(work, "upper")
	for _, cmd := range o.Run {
		spec := sandbox.Spec{
			Rootfs: tree, UpperDir: upper, HostNetwork: true,
			Args: []string{"/bin/sh", "-c", cmd}, Env: o.Env,
			Stdout: o.Stdout, Stderr: o.Stderr, Notify: o.Notify,
		}
		if o.Emulation != nil {
			Emulate(&spec, *o.Emulation)
		}
		if err := sandbox.Run(ctx, spec); err != nil {
			return nil, fmt.Errorf("builder image: %q: %w", cmd, err)
		}
	}
	img, err := appendUpper(o.Rootfs.Store, base, upper, o.Epoch, "lkbuild builder-image --run "+strings.Join(o.Run, " --run "))
	if err != nil {
		return nil, fmt.Errorf("builder image: %w", err)
	}
	img, err = mutate.CreatedAt(img, v1.Time{Time: o.Epoch.UTC()})
	if err != nil {
		return nil, fmt.Errorf("builder image: %w", err)
	}
	return img, nil
}

// appendUpper returns base with one more layer, written to store: what a
// sandbox left in its overlay's upper dir (deletions as whiteouts, owners
// mapped as the sandbox maps them), every mtime epoch.
func appendUpper(store *oci.Store, base v1.Image, upper string, epoch time.Time, createdBy string) (v1.Image, error) {
	layer, err := store.WriteLayer(func(w io.Writer) error {
		return oci.WriteDiffTar(w, upper, oci.DiffOptions{Epoch: epoch, MapOwner: sandbox.OwnerMap()})
	})
	if err != nil {
		return nil, err
	}
	return mutate.Append(base, mutate.Addendum{
		Layer:     layer,
		History:   v1.History{Created: v1.Time{Time: epoch.UTC()}, CreatedBy: createdBy},
		MediaType: layerMediaType(base),
	})
}

// dirImage packs a rootfs tree as a one-layer image for o.Arch, after
// checking that its programs are for that arch. The layer records modes,
// setuid bits and owners (mapped as the sandbox maps them), every mtime
// the epoch, and nothing of where the tree was.
func dirImage(tree string, o BuilderImageOptions) (v1.Image, error) {
	if fi, err := os.Stat(tree); err != nil || !fi.IsDir() {
		return nil, fmt.Errorf("builder image: %s%s: not a directory (%v)", DirPrefix, tree, err)
	}
	arch, err := toolchain.DetectArch(tree)
	if err != nil {
		return nil, fmt.Errorf("builder image: %w", err)
	}
	if arch.Uname != o.Arch.Uname {
		return nil, fmt.Errorf("builder image: %s%s holds %s programs, not %s (--arch %s)", DirPrefix, tree, arch, o.Arch, o.Arch)
	}
	layer, err := o.Rootfs.Store.WriteLayer(func(w io.Writer) error {
		return oci.WriteDiffTar(w, tree, oci.DiffOptions{Epoch: o.Epoch, MapOwner: sandbox.OwnerMap()})
	})
	if err != nil {
		return nil, fmt.Errorf("builder image: %w", err)
	}
	img, err := oci.NewImage(oci.ImageSpec{
		Platform: toolchain.Platform(o.Arch), Created: o.Epoch,
		Layers: []oci.ImageLayer{{Layer: layer, CreatedBy: "lkbuild builder-image --from " + DirPrefix + "ROOTFS"}},
	})
	if err != nil {
		return nil, fmt.Errorf("builder image: %w", err)
	}
	return img, nil
}
