package builder

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/lkbuild/lkbuild/internal/cachedir"
	"github.com/lkbuild/lkbuild/internal/kernelsrc"
	"github.com/lkbuild/lkbuild/kernel"
)

// zfsMirror is where the OpenZFS release comes from.
func (b *build) zfsMirror() string {
	if b.env.ZFSMirror != "" {
		return b.env.ZFSMirror
	}
	return kernel.DefaultZFSMirror
}

// zfsKeyring reads the keys that sign the OpenZFS release: the request's
// ZFSKeysFile, else those of the kernel source.
func (b *build) zfsKeyring() (*kernel.Keyring, error) {
	if b.t.Request.ZFSKeysFile == "" {
		return b.keyring()
	}
	return readKeyring(b.t.Request.ZFSKeysFile, "OpenZFS signing keys")
}

// fetchZFS gets and verifies the OpenZFS release of a zfs-kmod build and
// checks, before anything is built, that it supports the kernel.
func (b *build) fetchZFS(ctx context.Context) error {
	z := b.plan.ZFS
	if z == nil {
		return nil
	}
	keys, err := b.zfsKeyring()
	if err != nil {
		return err
	}
	mirror := b.zfsMirror()
	tarball, signature := kernel.ZFSPaths(z.Version)
	a := kernelsrc.Archive{Name: "OpenZFS " + z.Version, Tarball: tarball, Signature: signature}
	err = b.fetchHeld(cachedir.KindSource, func() (string, string, error) {
		b.zfs, err = b.deps.fetchArchive(ctx, kernelsrc.Options{
			Mirror: mirror, Dir: b.env.Cache.Sources(), Keyring: keys, Offline: b.env.Offline,
			Progress: func(p kernelsrc.Progress) {
				b.emit(Event{Kind: EventProgress, Message: p.Phase.String() + " " + p.File, Done: p.Done, Total: p.Total, Unit: "bytes"})
			},
		}, a)
		return b.zfs.SHA256, b.zfs.Dir, err
	})
	if errors.Is(err, kernel.ErrUnknownKey) {
		return fmt.Errorf("%w (OpenZFS signs its releases with its own key: add it to the kernel directory's keys.asc or give it with --zfs-keys)", err)
	}
	if err != nil {
		return b.missing(fmt.Sprintf("OpenZFS %s (%s and its .asc, from %s)", z.Version, a.Tarball, mirror), err)
	}
	b.logf("zfs %s sha256 %s (cached %v) in %s", b.zfs.URL, b.zfs.SHA256, b.zfs.Cached, b.zfs.Dir)
	// Read through a Root: a symlink in the tarball cannot make lkbuild
	// read a host file.
	root, err := os.OpenRoot(b.zfs.Dir)
	if err != nil {
		return fmt.Errorf("OpenZFS %s: %w", z.Version, err)
	}
	meta, err := root.ReadFile("META")
	root.Close()
	if err != nil {
		return fmt.Errorf("OpenZFS %s: %w: not an OpenZFS release tarball", z.Version, err)
	}
	m, err := kernel.ParseZFSMeta(meta)
	if err != nil {
		return fmt.Errorf("OpenZFS %s: %w", z.Version, err)
	}
	if m.Version != z.Version {
		return fmt.Errorf("OpenZFS %s: the tarball's META says version %s", z.Version, m.Version)
	}
	return m.Supports(b.plan.Version)
}

// zfsURL is the URL the image records for the OpenZFS release: OpenZFS's
// own, wherever the bytes came from (as for the kernel source).
func (b *build) zfsURL() string {
	if b.plan.ZFS == nil {
		return ""
	}
	tarball, _ := kernel.ZFSFiles(kernel.DefaultZFSMirror, b.plan.ZFS.Version)
	return tarball
}
