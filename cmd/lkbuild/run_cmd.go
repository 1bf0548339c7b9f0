package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/lkbuild/lkbuild/builder"
	"github.com/lkbuild/lkbuild/kernel"
	"github.com/lkbuild/lkbuild/oci"
	"github.com/lkbuild/lkbuild/sandbox"
	"github.com/lkbuild/lkbuild/toolchain"
)

func registryFlags() []cli.Flag {
	return []cli.Flag{
		&cli.BoolFlag{Name: "insecure-registry", Usage: "allow plain-HTTP and self-signed registries"},
		&cli.StringSliceFlag{Name: "mirror", Usage: "pull through a registry mirror, [REGISTRY=]URL (REGISTRY defaults to docker.io), as LinuxKit's --mirror; several separated by spaces or commas, or the flag repeated; also LINUXKIT_MIRROR. Pushes go to the registry itself"},
	}
}

// parseMirrors reads mirror specs in LinuxKit's syntax: each value holds
// entries [REGISTRY=]URL separated by spaces or commas; REGISTRY defaults
// to docker.io. A registry given two different mirrors is an error.
func parseMirrors(values ...string) (map[string]string, error) {
	out := map[string]string{}
	for _, v := range values {
		for _, e := range strings.FieldsFunc(v, func(r rune) bool { return r == ' ' || r == ',' || r == '\t' || r == '\n' }) {
			reg, u := "docker.io", e
			if i := strings.Index(e, "="); i >= 0 && !strings.Contains(e[:i], "://") {
				reg, u = e[:i], e[i+1:]
			}
			if reg == "" || u == "" {
				return nil, fmt.Errorf("mirror %q: want [REGISTRY=]URL", e)
			}
			if have, ok := out[reg]; ok && have != u {
				return nil, fmt.Errorf("mirror: %s has two mirrors, %s and %s", reg, have, u)
			}
			out[reg] = u
		}
	}
	return out, nil
}

func qemuImageFlag() cli.Flag {
	return &cli.StringFlag{Name: "qemu-image", Usage: "image for the host's arch carrying static qemu-user binaries (usr/bin/qemu-<arch>-static), used before PATH"}
}

// emulationFor says how to run arch's binaries: nil for the host's own
// arch, else QEMU found in --qemu-image or on PATH.
func emulationFor(c *cli.Context, arch kernel.Arch) (*toolchain.Emulation, error) {
	host, err := toolchain.HostArch()
	if err == nil && host.Uname == arch.Uname {
		return nil, nil
	}
	h := toolchain.Host()
	if ref := c.String("qemu-image"); ref != "" {
		rfs, err := prepareRootfs(c.Context, c, ref, host)
		if err != nil {
			return nil, fmt.Errorf("qemu image: %w", err)
		}
		h.Dirs = toolchain.QEMUImageDirs(rfs.Dir)
	}
	e, err := toolchain.FindEmulator(arch, h)
	if err != nil {
		return nil, err
	}
	return &e, nil
}

// newRegistry is the registry client the flags ask for; offline (--offline,
// or a build from a --bundle) it serves only what the cache recorded.
func newRegistry(c *cli.Context) (*oci.Registry, error) {
	mirrors, err := parseMirrors(append(c.StringSlice("mirror"), os.Getenv("LINUXKIT_MIRROR"))...)
	if err != nil {
		return nil, err
	}
	return oci.NewRegistry(oci.WithInsecure(c.Bool("insecure-registry")), oci.WithOffline(offline(c)), oci.WithMirrors(mirrors))
}

// offline reports whether the command may use no network: --offline, or
// a build from a bundle (lkbuild build --bundle, or lkbuild --bundle; for
// fetch --bundle names the bundle it writes).
func offline(c *cli.Context) bool {
	return c.Bool("offline") || (c.String("bundle") != "" && (c.Command == nil || c.Command.Name != "fetch"))
}

func runCommand() *cli.Command {
	return &cli.Command{
		Name:      "run",
		Usage:     "run a command in the build sandbox",
		ArgsUsage: "-- CMD [ARGS...]",
		Description: `Runs CMD in the sandbox builds use: a rootless container with its own user,
mount, pid, uts, ipc and network namespaces (only loopback: no network), on
an overlay of the builder rootfs, so the rootfs itself never changes.
The command's exit status becomes lkbuild's.

The rootfs is an OCI image (--builder-image, pulled for --arch and cached
by digest) or a directory (--rootfs). For a foreign --arch, binaries run
under QEMU user-mode, registered inside the sandbox's own user namespace.

The environment holds only PATH, HOME=/root and what --env adds.

Examples:
   lkbuild run --builder-image registry.example/builder:1 -- make --version
   lkbuild run --rootfs ./rootfs --bind ./linux:/src --workdir /src -- make -j2
   lkbuild run --arch arm64 --rootfs ./rootfs-arm64 -- uname -m`,
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "arch", Usage: "architecture of the rootfs (x86_64/amd64, aarch64/arm64, riscv64); default: the host's"},
			&cli.StringFlag{Name: "builder-image", Usage: "OCI image to use as the rootfs"},
			&cli.StringFlag{Name: "rootfs", Usage: "directory to use as the rootfs"},
			&cli.StringSliceFlag{Name: "bind", Usage: "bind mount SRC:DST[:ro] (repeatable)"},
			&cli.StringSliceFlag{Name: "env", Usage: "set K=V in the command's environment (repeatable)"},
			&cli.StringFlag{Name: "workdir", Usage: "working directory inside the sandbox", Value: "/"},
			qemuImageFlag(),
			&cli.StringFlag{Name: "cross-image", Usage: "for a foreign --arch: run gcc, as, ld and binutils (and make, sh, sed, ... of the builder's package versions) natively from this host-arch image of cross tools (as lkbuild build --cross-image does)"},
			&cli.BoolFlag{Name: "rw", Usage: "with --rootfs: change the directory in place instead of through an overlay (to bootstrap a rootfs, e.g. debootstrap --second-stage)"},
			&cli.StringFlag{Name: "bundle", Usage: "take --builder-image (and --cross-image, --qemu-image) from a bundle lkbuild fetch --bundle wrote, a directory or a tar of it, verified, with no network"},
		}, registryFlags()...),
		Before: func(c *cli.Context) error {
			if (c.String("builder-image") == "") == (c.String("rootfs") == "") {
				return errors.New("run: give exactly one of --builder-image and --rootfs")
			}
			if c.NArg() == 0 {
				return errors.New("run: no command; put it after --")
			}
			return nil
		},
		Action: func(c *cli.Context) error {
			if c.String("bundle") != "" {
				arch, err := archOrHost(c.String("arch"))
				if err != nil {
					return err
				}
				cache, err := cacheDir(c)
				if err != nil {
					return err
				}
				_, remove, err := importBundle(c, cache, arch, c.String("builder-image"))
				if err != nil {
					return err
				}
				defer remove()
			}
			spec, err := runSpec(c)
			if err != nil {
				return err
			}
			if cross := c.String("cross-image"); cross != "" {
				links, err := os.MkdirTemp("", "lkbuild-fastpath-")
				if err != nil {
					return err
				}
				defer os.RemoveAll(links)
				if err := fastPath(c, &spec, cross, filepath.Join(links, "bin")); err != nil {
					return err
				}
			}
			return exitStatus(sandbox.Run(c.Context, spec))
		},
	}
}

// runSpec turns lkbuild run's flags into a sandbox spec, preparing the
// rootfs and emulation.
func runSpec(c *cli.Context) (sandbox.Spec, error) {
	arch, err := archOrHost(c.String("arch"))
	if err != nil {
		return sandbox.Spec{}, err
	}
	env, err := commandEnv(c)
	if err != nil {
		return sandbox.Spec{}, err
	}
	spec := sandbox.Spec{
		Rootfs:   c.String("rootfs"),
		Writable: c.Bool("rw") && c.String("rootfs") != "",
		Args:     c.Args().Slice(),
		Env:      env,
		Dir:      c.String("workdir"),
		Stdin:    os.Stdin, Stdout: c.App.Writer, Stderr: c.App.ErrWriter,
		Notify: func(s string) { fmt.Fprintln(c.App.ErrWriter, "lkbuild:", s) },
	}
	for _, b := range c.StringSlice("bind") {
		m, err := sandbox.ParseMount(b)
		if err != nil {
			return sandbox.Spec{}, err
		}
		spec.Mounts = append(spec.Mounts, m)
	}
	if ref := c.String("builder-image"); ref != "" {
		rfs, err := prepareRootfs(c.Context, c, ref, arch)
		if err != nil {
			return sandbox.Spec{}, err
		}
		spec.Rootfs = rfs.Dir
	}
	e, err := emulationFor(c, arch)
	if err != nil {
		return sandbox.Spec{}, err
	}
	if e != nil {
		builder.Emulate(&spec, *e)
	}
	return spec, nil
}

// fastPath makes spec, a foreign arch's sandbox, run the cross tools of
// the image cross natively; links is a new directory for their links.
func fastPath(c *cli.Context, spec *sandbox.Spec, cross, links string) error {
	target, err := archOrHost(c.String("arch"))
	if err != nil {
		return err
	}
	host, err := toolchain.HostArch()
	if err != nil {
		return err
	}
	if target.Uname == host.Uname {
		return fmt.Errorf("--cross-image is for a foreign --arch: %s runs natively here", target)
	}
	rfs, err := prepareRootfs(c.Context, c, cross, host)
	if err != nil {
		return err
	}
	f, err := builder.NewFastPath(cross, rfs.Dir, target, host, links)
	if err != nil {
		return err
	}
	if spec.Rootfs != "" {
		if _, _, err := f.NativeTools(spec.Rootfs); err != nil {
			return err
		}
	}
	f.Apply(spec)
	return nil
}

// commandEnv is the environment of a sandboxed command: PATH, HOME=/root
// and each --env K=V, which must have a name and an '='.
func commandEnv(c *cli.Context) ([]string, error) {
	env := []string{"PATH=" + kernel.DefaultPath, "HOME=/root"}
	for _, kv := range c.StringSlice("env") {
		if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
			return nil, fmt.Errorf("--env %q: want NAME=VALUE", kv)
		}
		env = append(env, kv)
	}
	return env, nil
}

func archOrHost(s string) (kernel.Arch, error) {
	if s == "" {
		return toolchain.HostArch()
	}
	return kernel.ParseArch(s)
}

func prepareRootfs(ctx context.Context, c *cli.Context, ref string, arch kernel.Arch) (toolchain.Rootfs, error) {
	reg, err := newRegistry(c)
	if err != nil {
		return toolchain.Rootfs{}, err
	}
	cache, err := cacheDir(c)
	if err != nil {
		return toolchain.Rootfs{}, err
	}
	store, err := cache.Blobs()
	if err != nil {
		return toolchain.Rootfs{}, err
	}
	return toolchain.PrepareRootfs(ctx, ref, arch, toolchain.RootfsOptions{
		Registry: reg, Store: store, Dir: cache.Rootfs(),
	})
}

// exitStatus passes a sandboxed command's exit status through as ours.
// A command that could not be started gets what docker run gives: 127 for
// a program missing from the rootfs, 126 for one that cannot be run.
func exitStatus(err error) error {
	var ee *sandbox.ExitError
	if errors.As(err, &ee) {
		return cli.Exit("", ee.Code)
	}
	var se *sandbox.StartError
	if errors.As(err, &se) {
		code := 126
		if errors.Is(err, sandbox.ErrCommandNotFound) {
			code = 127
		}
		return cli.Exit(err.Error(), code)
	}
	return err
}
