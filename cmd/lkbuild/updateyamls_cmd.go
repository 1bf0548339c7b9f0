package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/lkbuild/lkbuild/builder"
	"github.com/lkbuild/lkbuild/internal/kernelgit"
	"github.com/lkbuild/lkbuild/kernel"
)

const updateYamlsDescription = `Points the references to the kernel image in a tree's files at the
kernels the kernel directory builds now, as LinuxKit's make
update-kernel-yamls does: in every .yml, .yaml, .yml.in and .yaml.in file,
Dockerfile, Makefile and test.sh under DIR (default: the repository that
holds the kernel directory; .git and vendor/ are skipped),

  <org>/<image>:6.6.13            -> the highest version built (6.12.59)
  <org>/<image>:6.6.13-<hash>     -> the same series' version and hash now
                                     (6.6.71-<hash>), never another series
  ... -dbg and variant (-rt) forms follow the same rules; a variant's
  release tag takes the highest version of that variant.

Anything else stays: other images, arch tags (-amd64), -builder tags, a
series the directory does not build (deprecated), and every reference in
a comment (# after a blank; in YAML, block scalars are content). Each
change is printed as FILE:LINE: OLD -> NEW. --check writes nothing and
exits 1 when a file would change: a CI gate. The kernel directory must
have no uncommitted changes (its hashes would end in -dirty).

Examples:
   lkbuild update-yamls                 # in a LinuxKit clone: the whole repository
   lkbuild update-yamls --check examples test
   lkbuild update-yamls --org registry.example/linuxkit ../my-images`

func updateYamlsCommand() *cli.Command {
	return &cli.Command{
		Name:        "update-yamls",
		Usage:       "point kernel image references in yml files at the current kernels, as make update-kernel-yamls does",
		ArgsUsage:   "[DIR...]",
		Description: updateYamlsDescription,
		Flags: []cli.Flag{
			kernelDirFlag(),
			hashCommitFlag(),
			&cli.StringFlag{Name: "org", Usage: "registry org (LinuxKit's ORG)", Value: kernel.DefaultOrg},
			&cli.StringFlag{Name: "image", Usage: "image name (LinuxKit's IMAGE)", Value: kernel.DefaultImage},
			&cli.BoolFlag{Name: "check", Usage: "write nothing; exit 1 when a file would change"},
		},
		Action: updateYamlsAction,
	}
}

func updateYamlsAction(c *cli.Context) error {
	co, err := kernelgit.Open(openOptions(c))
	if err != nil {
		return err
	}
	u, err := co.RefUpdater(kernel.Query{Org: c.String("org"), Image: c.String("image")})
	if err != nil {
		return err
	}
	dirs := c.Args().Slice()
	if len(dirs) == 0 {
		repo, ok := co.Rev.(*kernelgit.Repo)
		if !ok || repo == nil {
			return errors.New("name the directory to update: the kernel directory is in no git repository")
		}
		dirs = []string{repo.Root()}
	}
	files, changes := 0, 0
	for _, dir := range dirs {
		err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() {
				if p != dir && (d.Name() == ".git" || d.Name() == "vendor") {
					return filepath.SkipDir
				}
				return nil
			}
			yaml, ok := refFileKind(d.Name())
			if !ok || !d.Type().IsRegular() {
				return nil
			}
			n, err := updateRefsIn(c, u, p, yaml)
			if n > 0 {
				files++
				changes += n
			}
			return err
		})
		if err != nil {
			return fmt.Errorf("update-yamls: %w", err)
		}
	}
	switch {
	case changes == 0:
		fmt.Fprintf(c.App.ErrWriter, "lkbuild: every reference to %s is current\n", u.Repository)
	case c.Bool("check"):
		return cli.Exit(fmt.Sprintf("%d references to %s in %d files are not current (lkbuild update-yamls updates them)", changes, u.Repository, files), 1)
	default:
		fmt.Fprintf(c.App.ErrWriter, "lkbuild: updated %d references to %s in %d files\n", changes, u.Repository, files)
	}
	return nil
}

// refFileKind says whether a file of this name is one update-yamls reads
// (upstream's update-component-sha.sh's list), and whether it is YAML.
func refFileKind(name string) (yaml, ok bool) {
	for _, ext := range []string{".yml", ".yaml", ".yml.in", ".yaml.in"} {
		if strings.HasSuffix(name, ext) {
			return true, true
		}
	}
	return false, name == "Dockerfile" || name == "Makefile" || name == "test.sh"
}

// updateRefsIn rewrites the references in the file p, printing each
// change; with --check it writes nothing. It returns the count.
func updateRefsIn(c *cli.Context, u *kernel.RefUpdater, p string, yaml bool) (int, error) {
	data, err := os.ReadFile(p)
	if err != nil {
		return 0, err
	}
	out, changes := u.Update(data, yaml)
	for _, ch := range changes {
		fmt.Fprintf(c.App.Writer, "%s:%d: %s -> %s\n", p, ch.Line, ch.Old, ch.New)
	}
	if len(changes) == 0 || c.Bool("check") {
		return len(changes), nil
	}
	if err := builder.ReplaceFile(p, out); err != nil {
		return 0, err
	}
	return len(changes), nil
}
