package main

import (
	"fmt"
	"os"
	"slices"

	"github.com/urfave/cli/v2"
)

// The root command takes the build's flags (lkbuild --series 6.6.x is a
// build), so `lkbuild --json build` and `lkbuild --series 6.6.x tags` are
// easy to type. urfave/cli would read such a flag from the subcommand's
// own, unset copy and silently use its default: rootFlagsDown makes a flag
// given before the command count as given after it, and refuses one the
// command does not take.
func rootFlagsDown(c *cli.Context) error {
	// The commands are one level down: the parent is the root.
	lineage := c.Lineage()
	if len(lineage) < 2 || c.Command == nil {
		return nil
	}
	root := lineage[1]
	for _, f := range c.App.Flags {
		name := f.Names()[0]
		if name == "cache-dir" || name == "offline" || !root.IsSet(name) || fromEnv(f) {
			continue
		}
		if !hasFlag(c.Command.Flags, name) {
			return fmt.Errorf("--%s does not apply to lkbuild %s (see lkbuild %s --help)", name, c.Command.Name, c.Command.Name)
		}
		if c.IsSet(name) {
			continue // given after the command too: that one counts
		}
		values := []string{root.String(name)}
		if _, ok := f.(*cli.StringSliceFlag); ok {
			values = root.StringSlice(name)
		}
		for _, v := range values {
			if err := c.Set(name, v); err != nil {
				return fmt.Errorf("--%s: %w", name, err)
			}
		}
	}
	return nil
}

// fromEnv reports whether f may have been set by its environment variable
// rather than on the command line.
func fromEnv(f cli.Flag) bool {
	e, ok := f.(interface{ GetEnvVars() []string })
	if !ok {
		return false
	}
	for _, v := range e.GetEnvVars() {
		if _, set := os.LookupEnv(v); set {
			return true
		}
	}
	return false
}

func hasFlag(flags []cli.Flag, name string) bool {
	for _, f := range flags {
		if slices.Contains(f.Names(), name) {
			return true
		}
	}
	return false
}

// withRootFlags runs rootFlagsDown before each command's own Before.
func withRootFlags(cmds []*cli.Command) []*cli.Command {
	for _, cmd := range cmds {
		before := cmd.Before
		cmd.Before = func(c *cli.Context) error {
			if err := rootFlagsDown(c); err != nil {
				return err
			}
			if before != nil {
				return before(c)
			}
			return nil
		}
	}
	return cmds
}
