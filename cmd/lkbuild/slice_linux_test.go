package main

import (
	"bytes"
	"io"
	"slices"
	"testing"

	"github.com/urfave/cli/v2"
)

// TestRepeatableFlagsKeepCommas: a repeatable flag's value is one value,
// commas and all (urfave/cli splits at commas by default).
func TestRepeatableFlagsKeepCommas(t *testing.T) {
	root := shellRootfs(t)
	var stderr bytes.Buffer
	args := []string{"lkbuild", "--cache-dir", t.TempDir(), "run", "--rootfs", root,
		"--env", "LDFLAGS=-Wl,-z,relro", "--env", "B=1",
		"--", "/bin/sh", "-c", `test "$LDFLAGS" = "-Wl,-z,relro" && test "$B" = 1`}
	if code := run(args, io.Discard, &stderr); code != 0 {
		t.Errorf("--env with commas: exit %d\n%s", code, stderr.String())
	}

	// builder-image's --run, as the command's action receives it.
	app := newApp(io.Discard, io.Discard)
	var got []string
	for _, c := range app.Commands {
		if c.Name == "builder-image" {
			c.Action = func(c *cli.Context) error {
				got = c.StringSlice("run")
				return nil
			}
		}
	}
	if err := app.Run([]string{"lkbuild", "builder-image", "--from", "x", "--tag", "y", "--run", `echo "one,two"`, "--run", "true"}); err != nil {
		t.Fatal(err)
	}
	if want := []string{`echo "one,two"`, "true"}; !slices.Equal(got, want) {
		t.Errorf("--run = %q, want %q", got, want)
	}
}
