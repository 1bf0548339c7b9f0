package main

import (
	"fmt"
	"runtime"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/lkbuild/lkbuild/internal/kernelgit"
	"github.com/lkbuild/lkbuild/kernel"
)

// Commands over the kernel directory model: list, show-tag, tags. Each
// turns its flags into kernelgit.Options and a kernel.Query, makes one
// library call and prints the result.

func kernelDirFlag() cli.Flag {
	return &cli.StringFlag{
		Name:    "kernel-dir",
		Usage:   "LinuxKit kernel directory (default: . if it holds series folders, else ./kernel)",
		EnvVars: []string{"LKBUILD_KERNEL_DIR"},
	}
}

func archFlag(usage string) cli.Flag {
	return &cli.StringFlag{
		Name:  "arch",
		Usage: usage + " (x86_64 or amd64, aarch64 or arm64, riscv64)",
		Value: runtime.GOARCH,
	}
}

// queryFlags name a kernel the way `make show-tag-<version>` does.
func queryFlags() []cli.Flag {
	return []cli.Flag{
		kernelDirFlag(),
		&cli.StringFlag{Name: "series", Usage: "series folder, e.g. 6.6.x or 5.11.x-rt; the version comes from its build-args"},
		&cli.StringFlag{Name: "version", Usage: "kernel version, e.g. 6.6.71; picks the series 6.6.x"},
		&cli.StringFlag{Name: "extra", Usage: "variant suffix (LinuxKit's EXTRA), e.g. -rt for the folder 5.11.x-rt"},
		&cli.BoolFlag{Name: "debug", Usage: "name the debug kernel (-dbg after the version)"},
		&cli.StringFlag{Name: "tool", Usage: "name the kernel's tool image instead: perf (<org>/<image>-perf, a static /usr/bin/perf built from the kernel's patched source, LinuxKit's kernel-perf) or zfs-kmod (<org>/zfs-kmod, the kernel's modules with OpenZFS's)"},
		&cli.StringFlag{Name: "org", Usage: "registry org (LinuxKit's ORG)", Value: kernel.DefaultOrg},
		&cli.StringFlag{Name: "image", Usage: "image name (LinuxKit's IMAGE)", Value: kernel.DefaultImage},
		hashCommitFlag(),
	}
}

func hashCommitFlag() cli.Flag {
	return &cli.StringFlag{Name: "hash-commit", Usage: "commit whose tree is hashed (LinuxKit's HASH_COMMIT)", Value: "HEAD"}
}

// needSeriesOrVersion checks a query command's arguments before it runs.
func needSeriesOrVersion(c *cli.Context) error {
	if c.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q: name the kernel with --series or --version", c.Args().First())
	}
	if c.String("series") == "" && c.String("version") == "" {
		return fmt.Errorf("%s needs --series (e.g. 6.6.x) or --version (e.g. 6.6.71)", c.Command.Name)
	}
	return nil
}

func openOptions(c *cli.Context) kernelgit.Options {
	return kernelgit.Options{KernelDir: c.String("kernel-dir"), Commit: c.String("hash-commit")}
}

func queryOptions(c *cli.Context) kernel.Query {
	return kernel.Query{
		Series:  c.String("series"),
		Version: c.String("version"),
		Extra:   c.String("extra"),
		Debug:   c.Bool("debug"),
		Org:     c.String("org"),
		Image:   c.String("image"),
		Tool:    c.String("tool"),
	}
}

func listCommand() *cli.Command {
	return &cli.Command{
		Name:  "list",
		Usage: "print the kernels of a kernel directory, as LinuxKit's `make list` does",
		Description: `Prints the target arch, the kernel versions built by default, the
deprecated series, the tool images and the hash of the files all series
share (Makefile and common/), in the format of LinuxKit's 'make list'.

Examples:
   # in a LinuxKit checkout (or its kernel folder)
   lkbuild list
   lkbuild list --arch arm64 --kernel-dir ~/src/linuxkit/kernel`,
		Flags: []cli.Flag{kernelDirFlag(), archFlag("arch to list for"), hashCommitFlag()},
		Before: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return fmt.Errorf("unexpected argument %q", c.Args().First())
			}
			return nil
		},
		Action: func(c *cli.Context) error {
			a, err := kernel.ParseArch(c.String("arch"))
			if err != nil {
				return err
			}
			co, err := kernelgit.Open(openOptions(c))
			if err != nil {
				return err
			}
			l, err := co.List(a)
			if err != nil {
				return err
			}
			_, err = fmt.Fprint(c.App.Writer, l)
			return err
		},
	}
}

func showTagCommand() *cli.Command {
	return &cli.Command{
		Name:  "show-tag",
		Usage: "print the image name of a kernel, as LinuxKit's `make show-tag-<version>` does",
		Description: `Prints <org>/<image>:<version>[<extra>][-dbg]-<hash>, where <hash> is
LinuxKit's series hash: git's hash of the Makefile and common/ as committed,
combined with the tree of the series folder. It has -dirty appended when a
tracked file under the kernel directory differs from HEAD (untracked files
do not count). No git binary is needed.

Examples:
   lkbuild show-tag --series 6.6.x
   lkbuild show-tag --version 6.6.71 --debug
   lkbuild show-tag --series 5.11.x-rt --org myorg
   lkbuild show-tag --series 6.6.x --hash-commit v1.2.0`,
		Flags:  queryFlags(),
		Before: needSeriesOrVersion,
		Action: func(c *cli.Context) error {
			co, err := kernelgit.Open(openOptions(c))
			if err != nil {
				return err
			}
			tag, err := co.ShowTag(queryOptions(c))
			if err != nil {
				return err
			}
			_, err = fmt.Fprintln(c.App.Writer, tag)
			return err
		},
	}
}

func tagsCommand() *cli.Command {
	return &cli.Command{
		Name:  "tags",
		Usage: "print every tag a build of one kernel for one arch would push",
		Description: `Prints one image reference per line, in push order:

   <version>-<hash>-<arch>   the image itself
   <version>-<hash>          the multi-arch index of every <version>-<hash>-*
   <version>-<arch>          the image under the release name
   <version>                 the index under the release name
   <version>-builder         the builder image (BUILD_IMAGE)

<version> carries the variant suffix (--extra) and, for --debug, -dbg; the
builder tag has no -dbg. <arch> is the Go name (amd64, arm64, riscv64).

Examples:
   lkbuild tags --series 6.6.x --arch arm64
   lkbuild tags --series 6.6.x --arch x86_64 --debug
   lkbuild tags --series 5.11.x --extra -rt --arch amd64`,
		Flags:  append(queryFlags(), archFlag("arch of the build")),
		Before: needSeriesOrVersion,
		Action: func(c *cli.Context) error {
			a, err := kernel.ParseArch(c.String("arch"))
			if err != nil {
				return err
			}
			co, err := kernelgit.Open(openOptions(c))
			if err != nil {
				return err
			}
			tags, err := co.Tags(queryOptions(c), a)
			if err != nil {
				return err
			}
			var b strings.Builder
			for _, t := range tags {
				fmt.Fprintln(&b, t)
			}
			_, err = fmt.Fprint(c.App.Writer, b.String())
			return err
		},
	}
}
