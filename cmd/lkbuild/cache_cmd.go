package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/lkbuild/lkbuild/builder"
	"github.com/lkbuild/lkbuild/internal/cachedir"
)

func cacheCommand() *cli.Command {
	return &cli.Command{
		Name:  "cache",
		Usage: "show what the cache holds; prune it",
		Description: `Lists the cache directory (--cache-dir) by kind, with each entry's size on
disk and when a build last used it:

   rootfs   unpacked builder and cross images, by manifest digest
   source   verified kernel tarballs with their extracted trees (~1.5 GB each)
   git      the Intel microcode checkout
   archive  src/linux.tar.xz of earlier builds, by their inputs
   tree     the object tree of each target's last build, which makes the
            next build after a patch change incremental
   blobs    the pulled image layers
   log      build logs
   work     scratch space of running builds (or of killed ones)

Examples:
   lkbuild cache
   lkbuild cache --json | jq -r 'select(.kind == "tree") | .name'
   lkbuild cache prune --older-than 30d
   lkbuild cache prune --max-size 20GB --dry-run`,
		Flags: []cli.Flag{&cli.BoolFlag{Name: "json", Usage: "one JSON object per entry"}},
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return fmt.Errorf("cache: unexpected argument %q (lkbuild cache prune removes entries)", c.Args().First())
			}
			dir, err := cacheDir(c)
			if err != nil {
				return err
			}
			entries, err := dir.Entries()
			if err != nil {
				return err
			}
			if c.Bool("json") {
				enc := json.NewEncoder(c.App.Writer)
				for _, e := range entries {
					if err := enc.Encode(e); err != nil {
						return err
					}
				}
				return nil
			}
			return printEntries(c, dir, entries)
		},
		Subcommands: []*cli.Command{cachePruneCommand()},
	}
}

func printEntries(c *cli.Context, dir cachedir.Dir, entries []cachedir.Entry) error {
	w := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "KIND\tSIZE\tLAST USED\tNAME")
	inUse := func(e cachedir.Entry) string {
		if e.InUse && e.Kind != cachedir.KindWork {
			return " [in use]"
		}
		return ""
	}
	var total int64
	now := time.Now()
	for _, e := range entries {
		total += e.Size
		fmt.Fprintf(w, "%s\t%s\t%s\t%s%s\n", e.Kind, humanSize(e.Size), ago(now, e.Used), e.Name, inUse(e))
	}
	if err := w.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(c.App.Writer, "%d entries, %s in %s\n", len(entries), humanSize(total), dir.Root())
	return err
}

func cachePruneCommand() *cli.Command {
	return &cli.Command{
		Name:  "prune",
		Usage: "remove what builds have not used for a while, or down to a size",
		Description: `Removes cache entries (see lkbuild cache) that no build used for
--older-than, then, least recently used first, more until the cache holds at
most --max-size. Give at least one of them. Whatever a running build holds
(its builder rootfs, kernel source, microcode, object tree, the blob store
while any build runs, and scratch space) is left alone and listed as in use;
an entry is renamed out of the way before it is deleted, so a build that
starts meanwhile never sees half of one.

Durations take s, m, h and d (days): 36h, 30d. Sizes take B, KB, MB, GB,
TB (powers of 1000) or KiB, MiB, GiB, TiB (powers of 1024).`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "older-than", Usage: "remove what no build used for this long (e.g. 30d)"},
			&cli.StringFlag{Name: "max-size", Usage: "then remove the least recently used until the cache is at most this big (e.g. 20GB)"},
			&cli.BoolFlag{Name: "dry-run", Usage: "print what would be removed, remove nothing"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return fmt.Errorf("cache prune: unexpected argument %q", c.Args().First())
			}
			o := cachedir.PruneOptions{Now: time.Now()}
			var err error
			if s := c.String("older-than"); s != "" {
				if o.OlderThan, err = parseAge(s); err != nil {
					return fmt.Errorf("--older-than: %w", err)
				}
			}
			if s := c.String("max-size"); s != "" {
				if o.MaxSize, err = parseSize(s); err != nil {
					return fmt.Errorf("--max-size: %w", err)
				}
			}
			if o.OlderThan == 0 && o.MaxSize == 0 {
				return errors.New("cache prune: say what to remove: --older-than 30d, --max-size 20GB, or both")
			}
			dir, err := cacheDir(c)
			if err != nil {
				return err
			}
			res, err := builder.PruneCache(dir, o, c.Bool("dry-run"))
			verb := "removed"
			if c.Bool("dry-run") {
				verb = "would remove"
			}
			var freed int64
			for _, e := range res.Removed {
				freed += e.Size
				fmt.Fprintf(c.App.Writer, "%s %s %s (%s, last used %s)\n", verb, e.Kind, e.Name, humanSize(e.Size), ago(o.Now, e.Used))
			}
			for _, e := range res.InUse {
				fmt.Fprintf(c.App.Writer, "in use, kept: %s %s (%s)\n", e.Kind, e.Name, humanSize(e.Size))
			}
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(c.App.Writer, "%s %d entries, %s; %s left\n", verb, len(res.Removed), humanSize(freed), humanSize(res.Kept))
			return err
		},
	}
}

// parseAge reads a duration with days: "30d", "36h", "90m".
func parseAge(s string) (time.Duration, error) {
	if n, ok := strings.CutSuffix(s, "d"); ok {
		days, err := strconv.ParseFloat(n, 64)
		if err != nil || !(days > 0 && days <= 1e5) { // NaN too
			return 0, fmt.Errorf("%q is not a number of days (e.g. 30d)", s)
		}
		return time.Duration(days * 24 * float64(time.Hour)), nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("%q is not a positive duration (e.g. 30d, 36h)", s)
	}
	return d, nil
}

// parseSize reads a size: "20GB", "1.5GiB", "500MB", "1000000" (bytes).
func parseSize(s string) (int64, error) {
	units := []struct {
		suffix string
		n      float64
	}{
		{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
		{"KB", 1e3}, {"kB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12}, {"B", 1},
	}
	num, mult := s, 1.0
	for _, u := range units {
		if n, ok := strings.CutSuffix(s, u.suffix); ok {
			num, mult = strings.TrimSpace(n), u.n
			break
		}
	}
	v, err := strconv.ParseFloat(num, 64)
	if err != nil || !(v > 0 && v*mult < 1<<62) { // NaN too
		return 0, fmt.Errorf("%q is not a size (e.g. 20GB, 512MiB)", s)
	}
	return int64(v * mult), nil
}

// humanSize prints bytes in powers of 1000, as df -H and du --si do.
func humanSize(n int64) string {
	const unit = 1000
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	f, i := float64(n), 0
	for f >= unit && i < 4 {
		f /= unit
		i++
	}
	return fmt.Sprintf("%.1f %s", f, []string{"B", "kB", "MB", "GB", "TB"}[i])
}

// ago says how long before now t was, to the unit that matters.
func ago(now, t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	d := now.Sub(t)
	switch {
	case d < time.Minute:
		return "just now"
	case d < time.Hour:
		return fmt.Sprintf("%d min ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%d h ago", int(d.Hours()))
	}
	return fmt.Sprintf("%d days ago", int(d.Hours()/24))
}
