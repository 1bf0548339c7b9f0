package builder

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lkbuild/lkbuild/internal/cachedir"
)

// TestPruneCache: a dry run removes nothing; a prune removes what it
// picks but what a running build holds, and Kept is what is left.
// Needs no rootfs fixture.
func TestPruneCache(t *testing.T) {
	dir, err := cachedir.Open(filepath.Join(t.TempDir(), "cache"))
	if err != nil {
		t.Fatal(err)
	}
	held := strings.Repeat("1", 64)
	files := []string{
		filepath.Join(dir.Rootfs(), "sha256", held, "bin", "sh"),
		filepath.Join(dir.Rootfs(), "sha256", strings.Repeat("2", 64), "bin", "sh"),
		filepath.Join(dir.Archives(), "linux-6.12.1.tar.xz"),
		filepath.Join(dir.BlobsDir(), "blobs", "sha256", strings.Repeat("3", 64)),
		filepath.Join(dir.Logs(), "a.log"),
		filepath.Join(dir.Logs(), "b.log"),
		filepath.Join(dir.Work(), "build-1", "scratch"),
	}
	for _, f := range files {
		if err := os.MkdirAll(filepath.Dir(f), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(f, []byte(strings.Repeat("x", 10000)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	release, err := dir.Use(cachedir.KindRootfs, "sha256:"+held)
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	before, err := dir.Entries()
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	for _, e := range before {
		total += e.Size
	}
	// Everything is a day old a day from now.
	o := cachedir.PruneOptions{OlderThan: 12 * time.Hour, Now: time.Now().Add(24 * time.Hour)}
	names := func(es []cachedir.Entry) []string {
		var out []string
		for _, e := range es {
			out = append(out, e.Kind+" "+e.Name)
		}
		slices.Sort(out)
		return out
	}
	all := []string{"archive linux-6.12.1.tar.xz", "blobs image blobs", "log a.log", "log b.log",
		"rootfs sha256:" + held, "rootfs sha256:" + strings.Repeat("2", 64)}
	notHeld := slices.DeleteFunc(slices.Clone(all), func(n string) bool { return strings.Contains(n, held) })
	for _, tc := range []struct {
		name        string
		dryRun      bool
		removed     []string
		inUse       []string
		left        []string // of files
		leftEntries int
	}{
		{"dry run", true, notHeld, []string{"rootfs sha256:" + held}, files, len(before)},
		{"prune", false, notHeld, []string{"rootfs sha256:" + held}, []string{files[0], files[6]}, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := PruneCache(dir, o, tc.dryRun)
			if err != nil {
				t.Fatal(err)
			}
			if got := names(res.Removed); !slices.Equal(got, tc.removed) {
				t.Errorf("removed %q, want %q", got, tc.removed)
			}
			if got := names(res.InUse); !slices.Equal(got, tc.inUse) {
				t.Errorf("in use %q, want %q", got, tc.inUse)
			}
			freed := int64(0)
			for _, e := range res.Removed {
				freed += e.Size
			}
			if res.Kept != total-freed {
				t.Errorf("kept %d, want %d of %d less %d removed", res.Kept, total-freed, total, freed)
			}
			for _, f := range files {
				_, err := os.Stat(f)
				if want := slices.Contains(tc.left, f); want != (err == nil) {
					t.Errorf("%s: %v, want it left: %v", f, err, want)
				} else if err != nil && !errors.Is(err, os.ErrNotExist) {
					t.Error(err)
				}
			}
			after, err := dir.Entries()
			if err != nil {
				t.Fatal(err)
			}
			var left int64
			for _, e := range after {
				left += e.Size
			}
			// A dry run's Kept is what a prune would leave.
			wantLeft := res.Kept
			if tc.dryRun {
				wantLeft = total
			}
			if len(after) != tc.leftEntries || left != wantLeft {
				t.Errorf("%d entries of %d bytes left, want %d of %d: %v", len(after), left, tc.leftEntries, wantLeft, after)
			}
		})
	}
}
