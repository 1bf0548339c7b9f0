package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/lkbuild/lkbuild/builder"
	"github.com/lkbuild/lkbuild/internal/cachedir"
	"github.com/lkbuild/lkbuild/kernel"
	"github.com/lkbuild/lkbuild/oci"
	"github.com/lkbuild/lkbuild/toolchain"
)

const fetchDescription = `Puts everything the builds of a kernel take from the network into the
cache, verified as a build verifies it: the kernel source (sha256sums.asc,
the .tar.sign and the tarball, extracted), the Intel microcode at its tag
(x86_64), the builder image of each --arch, unpacked, and for a foreign
arch the --cross-image and --qemu-image. Nothing is built.

A build with --offline (or LKBUILD_OFFLINE=1) then uses no network at all.
For an air-gapped host, fetch into a cache directory on a connected host
and bring that directory over:

   lkbuild --cache-dir /media/usb/lkbuild-cache fetch --series 6.6.x --arch x86_64 --arch aarch64
   lkbuild --cache-dir /media/usb/lkbuild-cache --offline build --series 6.6.x --arch aarch64

With --bundle DIR, fetch also writes everything into DIR, a portable
directory (an OCI layout of the images, the sources as a kernel.org-style
mirror tree, the microcode as a git repository, and a manifest.json with
every piece's digest and purpose); on the other host, build --bundle DIR
verifies every piece, refuses the bundle if one is missing or changed,
and builds with no network:

   lkbuild fetch --series 6.6.x --arch x86_64 --arch aarch64 --bundle /media/usb/lk-6.6
   lkbuild build --series 6.6.x --arch aarch64 --bundle /media/usb/lk-6.6

What is in the cache already costs no request: a second fetch of the same
targets makes none (an image's tag is taken as the cache recorded it; use
a digest reference, or lkbuild cache prune, for a tag that moved). With
--offline, fetch checks that everything is there and names what is not.

Examples:
   lkbuild fetch --series 6.6.x
   lkbuild fetch --series 6.6.x --arch x86_64 --arch aarch64 --arch riscv64
   lkbuild fetch --series 6.6.x --arch riscv64 --cross-image registry.example/cross:1
   lkbuild --offline fetch --series 6.6.x --arch aarch64
   lkbuild fetch --series 6.12.x --tool zfs-kmod   # and the OpenZFS release`

// fetchFlags are the build's flags that name what to fetch, with --arch
// given once per arch.
func fetchFlags() []cli.Flag {
	keep := []string{"kernel-dir", "series", "version", "extra", "debug", "org", "image", "hash-commit",
		"builder-image", "builder-name", "source-mirror", "keys", "ucode-repo", "no-ucode", "json",
		"qemu-image", "cross-image", "insecure-registry", "mirror", "bundle", "tool", "zfs-version", "zfs-mirror", "zfs-keys"}
	flags := []cli.Flag{&cli.StringSliceFlag{Name: "arch", Usage: "arch to fetch for (x86_64/amd64, aarch64/arm64, riscv64), once per arch; default: the host's"}}
	for _, f := range buildFlags() {
		if slices.Contains(keep, f.Names()[0]) {
			flags = append(flags, f)
		}
	}
	return flags
}

func fetchCommand() *cli.Command {
	return &cli.Command{
		Name:        "fetch",
		Usage:       "put what builds of a kernel need from the network into the cache (for --offline)",
		Description: fetchDescription,
		Flags:       fetchFlags(),
		Before:      needSeriesOrVersion,
		Action:      fetchAction,
	}
}

func fetchAction(c *cli.Context) error {
	arches := c.StringSlice("arch")
	if len(arches) == 0 {
		arches = []string{""}
	}
	cache, err := cacheDir(c)
	if err != nil {
		return err
	}
	reg, err := newRegistry(c)
	if err != nil {
		return err
	}
	host, err := toolchain.HostArch()
	if err != nil {
		return err
	}
	r := newRenderer(c)
	defer r.close()
	var bw *builder.BundleWriter
	if dir := c.String("bundle"); dir != "" {
		_, statErr := os.Lstat(dir)
		if bw, err = builder.NewBundleWriter(dir); err != nil {
			return err
		}
		// An incomplete bundle is of no use: what this run wrote goes
		// unless Close ran (an empty directory that was there stays).
		defer func() {
			if bw == nil {
				return
			}
			if errors.Is(statErr, fs.ErrNotExist) {
				os.RemoveAll(dir)
				return
			}
			ents, _ := os.ReadDir(dir)
			for _, e := range ents {
				os.RemoveAll(filepath.Join(dir, e.Name()))
			}
		}()
	}
	for _, arch := range arches {
		req := buildRequest(c)
		req.Arch = arch
		t, err := builder.Resolve(c.Context, req)
		if err != nil {
			return err
		}
		env := builder.Environment{
			Registry: reg, Cache: cache,
			SourceMirror: c.String("source-mirror"), UcodeRepo: c.String("ucode-repo"),
			ZFSMirror: c.String("zfs-mirror"), Offline: c.Bool("offline"),
		}
		foreign := t.BuilderArch.Uname != host.Uname
		qemu := ""
		if foreign {
			env.CrossImage, qemu = c.String("cross-image"), c.String("qemu-image")
		}
		if !r.json {
			r.printf("fetching for %s %s (builder %s)\n", t.Tags[0], t.Arch, t.BuilderPull)
		}
		res, err := builder.Fetch(c.Context, t, env, r.event)
		if err == nil && qemu != "" {
			var rfs toolchain.Rootfs
			if rfs, err = fetchImage(c, reg, cache, qemu, host); err != nil {
				err = fmt.Errorf("qemu image: %w", err)
			} else if !r.json {
				r.printf("  qemu image %s\n", rfs.Digest)
			}
		}
		if err == nil && bw != nil {
			err = bw.AddTarget(c.Context, t, env)
			if err == nil && qemu != "" {
				var store *oci.Store
				if store, err = cache.Blobs(); err == nil {
					err = bw.AddImage(c.Context, store, qemu, toolchain.Platform(host), "the QEMU image for "+host.Uname)
				}
			}
		}
		if err != nil {
			var me *builder.MissingError
			if errors.As(err, &me) {
				fmt.Fprintf(c.App.ErrWriter, "on a host with network:\n  %s\n", fetchHint(c, t))
			}
			return err
		}
		if r.json {
			r.emit(map[string]any{"kind": "fetched", "arch": t.Arch.Uname, "tag": t.Tags[0], "source": res.SourceSHA256,
				"ucode": res.Ucode, "builder": res.Builder, "cross": res.Cross})
			continue
		}
		r.printf("  source %s (sha256 %s)\n", res.SourceURL, res.SourceSHA256)
		if res.Ucode != "" {
			r.printf("  microcode commit %s\n", res.Ucode)
		}
		r.printf("  builder %s\n", res.Builder)
		if res.Cross != "" {
			r.printf("  cross image %s\n", res.Cross)
		}
	}
	if bw != nil {
		size, err := bw.Size()
		if err != nil {
			return err
		}
		if err := bw.Close(); err != nil {
			return err
		}
		bw = nil
		if !r.json {
			r.printf("bundle %s (%.1f MB): lkbuild build --bundle %s builds these without any network\n", c.String("bundle"), float64(size)/1e6, c.String("bundle"))
		}
		return nil
	}
	if !r.json {
		r.printf("in %s: a build of these with --offline needs no network\n", cache.Root())
	}
	return nil
}

// fetchImage pulls and unpacks ref for arch into the cache, as Fetch does.
func fetchImage(c *cli.Context, reg *oci.Registry, cache cachedir.Dir, ref string, arch kernel.Arch) (toolchain.Rootfs, error) {
	store, err := cache.Blobs()
	if err != nil {
		return toolchain.Rootfs{}, err
	}
	return builder.PrepareImage(c.Context, ref, arch, toolchain.RootfsOptions{Registry: reg, Store: store, Dir: cache.Rootfs()})
}

// fetchHint is the lkbuild fetch command that gets what t's build needs,
// with the flags of this command that change what is fetched.
func fetchHint(c *cli.Context, t *builder.Target) string {
	args := []string{"lkbuild"}
	if c.IsSet("cache-dir") {
		args = append(args, "--cache-dir", c.String("cache-dir"))
	}
	args = append(append(args, "fetch"), t.Request.Args()...)
	if v := t.Request.ZFSVersion; v != "" && !c.IsSet("zfs-version") {
		args = append(args, "--zfs-version", v) // verify's, from the image
	}
	for _, f := range []string{"builder-image", "source-mirror", "ucode-repo", "cross-image", "qemu-image", "keys", "zfs-version", "zfs-mirror", "zfs-keys"} {
		if c.IsSet(f) && !slices.Contains(args, "--"+f) {
			args = append(args, "--"+f, c.String(f))
		}
	}
	if c.Bool("no-ucode") {
		args = append(args, "--no-ucode")
	}
	for _, m := range c.StringSlice("mirror") {
		args = append(args, "--mirror", m)
	}
	// A builder the flags did not name (verify pins the recorded one).
	if !slices.Contains(args, "--builder-image") && t.BuilderPull != t.Plan.BuilderImage {
		args = append(args, "--builder-image", t.BuilderPull)
	}
	for i, a := range args {
		if strings.ContainsAny(a, " \t'\"$") {
			args[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
	}
	return strings.Join(args, " ")
}
