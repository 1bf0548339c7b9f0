package main

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/lkbuild/lkbuild/builder"
	"github.com/lkbuild/lkbuild/kernel"
	"github.com/lkbuild/lkbuild/oci"
	"github.com/lkbuild/lkbuild/toolchain"
)

func builderImageCommand() *cli.Command {
	return &cli.Command{
		Name:  "builder-image",
		Usage: "make a builder image: a base image plus the toolchain a build needs",
		Description: `Builds are hermetic: the sandbox has no network, so the builder image must
already hold the toolchain. builder-image runs setup commands (which may use
the network) over a base image in the sandbox and records what they changed
as one reproducible layer on top of it. It replaces the 'apk add' step that
LinuxKit's Dockerfile runs at every build.

Without --push the image goes to the OCI layout --output, named by --tag.

--from dir:PATH starts from a rootfs tree instead of an image, for example one
that debootstrap made for another arch: the tree becomes the first layer with
its modes and owners, and the platform is that of its programs (read from
their ELF headers; --arch must agree). --run is optional then.

Examples:
   lkbuild builder-image --from debian:bookworm \
       --run 'apt-get update && apt-get install -y build-essential bc bison flex libelf-dev libssl-dev kmod cpio' \
       --tag registry.example/lkbuild/builder:bookworm --push
   lkbuild builder-image --from alpine:3.20 --run 'apk add build-base bc bison flex elfutils-dev openssl-dev' \
       --tag builder:alpine --output ./out
   debootstrap --foreign --arch riscv64 --variant=minbase \
       --include=build-essential,bc,bison,flex,libelf-dev,libssl-dev,kmod,cpio,patch,xz-utils trixie ./rv
   lkbuild run --arch riscv64 --rootfs ./rv --rw --env container=lxc -- /debootstrap/debootstrap --second-stage
   lkbuild builder-image --from dir:./rv --tag builder:riscv64 --output ./out

Rootless, the sandbox maps only you, to root: package managers that chown
files to other users fail there. Run as root for those.`,
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "from", Usage: "base image, or dir:PATH for a rootfs tree", Required: true},
			&cli.StringSliceFlag{Name: "run", Usage: "setup command, run with /bin/sh -c (repeatable, in order; needed unless --from dir:)"},
			&cli.StringFlag{Name: "tag", Usage: "name of the new image", Required: true},
			&cli.StringFlag{Name: "arch", Usage: "architecture (x86_64/amd64, aarch64/arm64, riscv64); default: the host's, or a dir: tree's"},
			&cli.BoolFlag{Name: "push", Usage: "push to the registry named by --tag"},
			&cli.StringFlag{Name: "output", Usage: "OCI layout to write when not pushing", Value: "out"},
			&cli.StringSliceFlag{Name: "env", Usage: "set K=V for the setup commands (repeatable)"},
			qemuImageFlag(),
			&cli.StringFlag{Name: "bundle", Usage: "take --from (and --qemu-image) from a bundle lkbuild fetch --bundle wrote, a directory or a tar of it, verified, with no registry access"},
			&cli.StringFlag{Name: "source-date-epoch", Usage: "time recorded in the image, seconds since 1970", EnvVars: []string{"SOURCE_DATE_EPOCH"}, Value: "0"},
		}, registryFlags()...),
		Action: func(c *cli.Context) error {
			tree, fromDir := strings.CutPrefix(c.String("from"), builder.DirPrefix)
			if !fromDir && len(c.StringSlice("run")) == 0 {
				return fmt.Errorf("builder-image needs --run (a base image unchanged is no new builder), or --from %sPATH to pack a rootfs tree", builder.DirPrefix)
			}
			var arch kernel.Arch
			var err error
			if fromDir && c.String("arch") == "" {
				arch, err = toolchain.DetectArch(tree)
			} else {
				arch, err = archOrHost(c.String("arch"))
			}
			if err != nil {
				return err
			}
			env, err := commandEnv(c)
			if err != nil {
				return err
			}
			secs, err := strconv.ParseInt(c.String("source-date-epoch"), 10, 64)
			if err != nil {
				return fmt.Errorf("--source-date-epoch %q: not a number of seconds", c.String("source-date-epoch"))
			}
			reg, err := newRegistry(c)
			if err != nil {
				return err
			}
			cache, err := cacheDir(c)
			if err != nil {
				return err
			}
			if !fromDir {
				_, remove, err := importBundle(c, cache, arch, c.String("from"))
				if err != nil {
					return err
				}
				defer remove()
			}
			store, err := cache.Blobs()
			if err != nil {
				return err
			}
			o := builder.BuilderImageOptions{
				From: c.String("from"), Arch: arch, Run: c.StringSlice("run"),
				Env:     env,
				Epoch:   time.Unix(secs, 0),
				Rootfs:  toolchain.RootfsOptions{Registry: reg, Store: store, Dir: cache.Rootfs()},
				WorkDir: cache.Work(),
				Stdout:  c.App.ErrWriter, Stderr: c.App.ErrWriter,
				Notify: func(s string) { fmt.Fprintln(c.App.ErrWriter, "lkbuild:", s) },
			}
			if len(o.Run) > 0 {
				if o.Emulation, err = emulationFor(c, arch); err != nil {
					return err
				}
			}
			img, err := builder.BuildBuilderImage(c.Context, o)
			if err != nil {
				return exitStatus(err)
			}
			d, err := img.Digest()
			if err != nil {
				return err
			}
			tag := c.String("tag")
			if c.Bool("push") {
				if _, err := reg.Push(c.Context, img, tag); err != nil {
					return fmt.Errorf("%w\nthe image is built; retry the push with the same command (the rootfs and blobs are cached)", err)
				}
				fmt.Fprintf(c.App.Writer, "%s@%s\n", tag, d)
				return nil
			}
			out, err := oci.OpenStore(c.String("output"))
			if err != nil {
				return err
			}
			if err := out.WriteLayout(c.Context, img, toolchain.Platform(arch), tag); err != nil {
				return err
			}
			fmt.Fprintf(c.App.Writer, "%s@%s in %s\n", tag, d, out.Dir())
			return nil
		},
	}
}
