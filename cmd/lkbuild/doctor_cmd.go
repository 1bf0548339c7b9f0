package main

import (
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/lkbuild/lkbuild/builder"
)

func doctorCommand() *cli.Command {
	return &cli.Command{
		Name:  "doctor",
		Usage: "check what this host allows lkbuild to do",
		Description: `Tries what the build sandbox needs, one line per capability: user
namespaces (and, when refused, which setting refuses them), overlayfs and
binfmt_misc inside a user namespace, QEMU for each foreign architecture,
subordinate id ranges and the CPU limit that sets make -j. Each missing
piece comes with its fix. Exits 1 when builds cannot run at all.`,
		Action: func(c *cli.Context) error {
			failed := false
			for _, ch := range builder.Doctor(c.Context) {
				fmt.Fprintf(c.App.Writer, "%-4s  %-32s %s\n", ch.Status, ch.Name, ch.Detail)
				if ch.Fix != "" {
					fmt.Fprintf(c.App.Writer, "      %-32s fix: %s\n", "", ch.Fix)
				}
				failed = failed || ch.Status == builder.StatusFail
			}
			if failed {
				return cli.Exit("", 1)
			}
			return nil
		},
	}
}
