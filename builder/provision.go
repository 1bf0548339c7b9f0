package builder

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/lkbuild/lkbuild/internal/cachedir"
	"github.com/lkbuild/lkbuild/internal/flock"
	"github.com/lkbuild/lkbuild/kernel"
	"github.com/lkbuild/lkbuild/oci"
	"github.com/lkbuild/lkbuild/sandbox"
	"github.com/lkbuild/lkbuild/toolchain"
)

// Installed is what a build installed into its builder before the build:
// the packages the kernel directory's Dockerfile installs, from the
// builder image's own repository, as LinuxKit's `RUN apk add` does.
type Installed struct {
	// File is the Dockerfile that lists them; Manager installed them.
	File    string `json:"file"`
	Manager string `json:"manager"`
	// Packages are the packages it lists, Missing those the builder did
	// not hold (what was installed).
	Packages []string `json:"packages"`
	Missing  []string `json:"missing"`
	// Command is the command that installed them, in the sandbox.
	Command string `json:"command"`
	// Repositories are the builder's local repositories.
	Repositories []string `json:"repositories"`
	// Key names the result in the cache: the builder's digest, the
	// manager and the command.
	Key string `json:"key"`
}

// PackagesError is a builder that lacks packages the kernel directory's
// Dockerfile installs and cannot install them with no network.
type PackagesError struct {
	Builder string
	File    string
	Manager string
	// Missing are the packages neither installed nor in a local
	// repository of the builder.
	Missing []string
	// Remote are the builder's repositories that need the network.
	Remote []string
	// NoRepository is true when the builder has no local repository.
	NoRepository bool
}

func (e *PackagesError) Error() string {
	var why string
	switch {
	case e.NoRepository && len(e.Remote) > 0:
		why = fmt.Sprintf("it has no local package repository (only %s, which builds cannot reach: they have no network)", strings.Join(e.Remote, ", "))
	case e.NoRepository:
		why = "it has no local package repository (LinuxKit's builder images keep one in /mirror)"
	default:
		why = "its local package repository does not hold them"
	}
	install := "apk add " + strings.Join(e.Missing, " ")
	if e.Manager == kernel.ManagerApt {
		install = "apt-get update && apt-get install -y " + strings.Join(e.Missing, " ")
	}
	return fmt.Sprintf("the builder %s lacks %s, which %s installs, and %s; give a builder that holds them (lkbuild builder-image --from %s --run '%s' --tag REF makes one, with the network) with --builder-image REF",
		e.Builder, strings.Join(e.Missing, " "), e.File, why, e.Builder, install)
}

// provision installs what the kernel directory's Dockerfile installs and
// the builder lacks, from the builder's local repository, in the sandbox
// with no network. The result is a rootfs of its own, cached by the
// builder's digest and the install command; b.rootfs keeps naming the
// builder image (its digest is what the image records), with Dir the
// provisioned tree.
func (b *build) provision(ctx context.Context) error {
	// A tool that builds the kernel (zfs-kmod) runs in the kernel's
	// builder: its kept object tree is then the kernel's.
	tool := b.plan.Tool
	if kernel.BuildsKernel(tool) {
		tool = ""
	}
	bp, err := b.t.Dir.BuildPackages(tool)
	if err != nil || bp == nil {
		return err
	}
	pk, err := toolchain.ReadPackages(b.rootfs.Dir, bp.Manager, b.t.BuilderArch)
	if err != nil {
		return err
	}
	if pk.Program == "" {
		// A builder of another kind (lkbuild builder-image's, or Debian's
		// for an Alpine list): it must hold the toolchain already.
		b.logf("%s installs with %s; the builder %s has none: using it as it is", bp.File, bp.Manager, b.t.BuilderPull)
		return nil
	}
	install, unavailable := pk.Missing(bp.Packages)
	if b.kconfig {
		// What upstream's kconfig image adds for make menuconfig, where
		// the builder's repository holds it.
		more, lacking := pk.Missing(kconfigPackages(bp.Manager))
		install = append(install, more...)
		if len(lacking) > 0 {
			b.emit(Event{Kind: EventNote, Message: fmt.Sprintf("the builder %s has no %s, and no repository of its own holds it: make menuconfig and nconfig cannot run (make config, oldconfig, olddefconfig and defconfig can)",
				b.t.BuilderPull, strings.Join(lacking, " "))})
		}
	}
	if len(install)+len(unavailable) == 0 {
		b.logf("the builder %s holds every package %s installs", b.t.BuilderPull, bp.File)
		return nil
	}
	if len(unavailable) > 0 {
		return &PackagesError{Builder: b.t.BuilderPull, File: bp.File, Manager: bp.Manager, Missing: unavailable,
			Remote: pk.Remote, NoRepository: len(pk.Local) == 0}
	}
	cmd, err := toolchain.InstallCommand(bp.Manager, install)
	if err != nil {
		return fmt.Errorf("%s: %w", bp.File, err)
	}
	sum := sha256.Sum256([]byte("lkbuild install v1\n" + b.rootfs.Digest.String() + "\n" + bp.Manager + "\n" + cmd))
	in := &Installed{File: bp.File, Manager: bp.Manager, Packages: bp.Packages, Missing: install, Command: cmd,
		Repositories: pk.Local, Key: hex.EncodeToString(sum[:])}
	b.emit(Event{Kind: EventNote, Message: fmt.Sprintf("installing into the builder %d packages that %s installs, from the builder's own repository (%s), with no network",
		len(install), bp.File, strings.Join(pk.Local, ", "))})
	// Held for the rest of the build, as fetch holds the builder's tree.
	var rfs toolchain.Rootfs
	err = b.fetchHeld(cachedir.KindRootfs, func() (string, string, error) {
		rfs, err = b.installedRootfs(ctx, in)
		return rfs.Digest.String(), rfs.Dir, err
	})
	if err != nil {
		return err
	}
	b.logf("installed %s from %s: rootfs %s (cached %v)", strings.Join(install, " "), strings.Join(pk.Local, ", "), rfs.Digest, rfs.Cached)
	b.rootfs.Dir = rfs.Dir
	b.installed = in
	return nil
}

// kconfigPackages are the packages LinuxKit's kconfig image adds to the
// build's (Dockerfile.kconfig's ncurses-dev), by package manager.
func kconfigPackages(manager string) []string {
	if manager == kernel.ManagerApt {
		return []string{"libncurses-dev"}
	}
	return []string{"ncurses-dev"}
}

// builderID names the builder's tree for cache keys: its digest, and what
// provision installed.
func (b *build) builderID() string {
	if b.installed == nil {
		return b.rootfs.Digest.String()
	}
	return b.rootfs.Digest.String() + " installed " + b.installed.Key
}

// installedRootfs returns the builder rootfs with in installed: from the
// cache (the key file names the image's digest), else installed now and
// stored as the builder image plus one layer.
func (b *build) installedRootfs(ctx context.Context, in *Installed) (toolchain.Rootfs, error) {
	store, err := b.env.Cache.Blobs()
	if err != nil {
		return toolchain.Rootfs{}, err
	}
	ropts := toolchain.RootfsOptions{Store: store, Dir: b.env.Cache.Rootfs()}
	keyFile := filepath.Join(b.env.Cache.Rootfs(), "installed", in.Key)
	if err := os.MkdirAll(filepath.Dir(keyFile), 0o755); err != nil {
		return toolchain.Rootfs{}, fmt.Errorf("rootfs cache: %w", err)
	}
	// Two builds of the same builder install once.
	unlock, err := flock.Exclusive(ctx, keyFile+".lock", nil)
	if err != nil {
		return toolchain.Rootfs{}, fmt.Errorf("rootfs cache: %w", err)
	}
	defer unlock()
	if data, err := os.ReadFile(keyFile); err == nil {
		if h, err := v1.NewHash(strings.TrimSpace(string(data))); err == nil {
			if img, ok := store.Image(h); ok {
				return toolchain.UnpackRootfs(ctx, b.t.BuilderPull+" (installed)", img, ropts)
			}
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return toolchain.Rootfs{}, fmt.Errorf("rootfs cache: %w", err)
	}
	img, err := b.install(ctx, in, store)
	if err != nil {
		return toolchain.Rootfs{}, err
	}
	rfs, err := toolchain.UnpackRootfs(ctx, b.t.BuilderPull+" (installed)", img, ropts)
	if err != nil {
		return toolchain.Rootfs{}, err
	}
	tmp := keyFile + ".tmp"
	if err := os.WriteFile(tmp, []byte(rfs.Digest.String()+"\n"), 0o644); err != nil {
		return toolchain.Rootfs{}, fmt.Errorf("rootfs cache: %w", err)
	}
	if err := os.Rename(tmp, keyFile); err != nil {
		return toolchain.Rootfs{}, fmt.Errorf("rootfs cache: %w", err)
	}
	return rfs, nil
}

// install runs the install command over the builder's tree, with no
// network, and returns the builder image with what it changed as one more
// layer, written to store.
func (b *build) install(ctx context.Context, in *Installed, store *oci.Store) (v1.Image, error) {
	base := b.rootfs.Image
	if base == nil {
		return nil, fmt.Errorf("install packages: the builder %s is not in the blob store", b.t.BuilderPull)
	}
	work, err := os.MkdirTemp(b.scr, "install-")
	if err != nil {
		return nil, fmt.Errorf("install packages: %w", err)
	}
	defer removeTree(work)
	upper := filepath.Join(work, "upper")
	spec := sandbox.Spec{
		Rootfs: b.rootfs.Dir, UpperDir: upper, Hostname: "lkbuild",
		Args: []string{"/bin/sh", "-c", in.Command}, Env: toolchain.InstallEnv(in.Manager),
		Stdout: logWriter{b}, Stderr: logWriter{b},
	}
	if b.env.Emulation != nil && b.t.BuilderArch.Uname == b.t.Arch.Uname {
		Emulate(&spec, *b.env.Emulation)
	}
	b.logf("install packages: %s", in.Command)
	if err := sandbox.Run(ctx, spec); err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, &StepError{Step: "install packages", Err: err, Builder: b.t.BuilderPull, Log: b.res.Log, Tail: b.tail()}
	}
	img, err := appendUpper(store, base, upper, b.plan.Epoch, "lkbuild: "+in.Command)
	if err != nil {
		return nil, fmt.Errorf("install packages: %w", err)
	}
	if err := store.WriteImage(ctx, img, nil); err != nil {
		return nil, fmt.Errorf("install packages: %w", err)
	}
	return img, nil
}
