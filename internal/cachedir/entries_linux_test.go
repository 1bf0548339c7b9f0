package cachedir

import (
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// fakeCache is a cache tree made by hand, in the layout the fetchers,
// builds and objtree leave.
type fakeCache struct {
	d Dir
	// rootfs1 and rootfs2 are the hex of two rootfs trees; rootfs1 holds
	// a 1 MiB file under two names.
	rootfs1, rootfs2 string
	source           string // the source's sha256
	git              string // the checkout's directory under git/
	archive          string // the archive's file name
	tree             string // the object tree's key
	treeUsed         time.Time
}

const mib = 1 << 20

// writeFile writes size random bytes (nothing a file system could
// compress or leave sparse) to p, making its directory.
func writeFile(t *testing.T, p string, size int) {
	t.Helper()
	data := make([]byte, size)
	rand.Read(data)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func mkdir(t *testing.T, p string) {
	t.Helper()
	if err := os.MkdirAll(p, 0o755); err != nil {
		t.Fatal(err)
	}
}

func makeCache(t *testing.T) fakeCache {
	t.Helper()
	d, err := Open(filepath.Join(t.TempDir(), "cache"))
	if err != nil {
		t.Fatal(err)
	}
	f := fakeCache{
		d:       d,
		rootfs1: strings.Repeat("1", 64),
		rootfs2: strings.Repeat("2", 64),
		source:  strings.Repeat("5", 64),
		git:     "0123456789abcdef01234567",
		archive: "linux-6.12.1-x86_64-0123.tar.xz",
		tree:    "6.12.1-x86_64-abcd",
		// Later than the tree's files, so that it is what Used shows.
		treeUsed: time.Now().Add(time.Hour).UTC().Truncate(time.Second),
	}
	const small = 8 << 10
	// rootfs2 first: rootfs1's directory is the newer.
	r := filepath.Join(d.Rootfs(), "sha256")
	writeFile(t, filepath.Join(r, f.rootfs2, "etc", "os-release"), small)
	writeFile(t, filepath.Join(r, f.rootfs1, "usr", "bin", "sh"), small)
	big := filepath.Join(r, f.rootfs1, "usr", "lib", "big")
	writeFile(t, big, mib)
	if err := os.Link(big, big+"-link"); err != nil {
		t.Fatal(err)
	}
	// Not entries: a rootfs's lock, and trees being unpacked.
	writeFile(t, filepath.Join(r, f.rootfs1+".lock"), 0)
	writeFile(t, filepath.Join(r, ".tmp-123", "etc", "passwd"), small)
	writeFile(t, filepath.Join(r, f.rootfs2+".tmp-456", "etc", "passwd"), small)

	writeFile(t, filepath.Join(d.Sources(), "sha256", f.source), small)
	writeFile(t, filepath.Join(d.Sources(), "trees", f.source, "linux-6.12.1", "Makefile"), small)
	writeFile(t, filepath.Join(d.Sources(), "sha256", f.source+".tmp-789"), small)

	if err := os.MkdirAll(filepath.Join(d.Git(), f.git), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(d.Git(), f.git, "commit"), []byte("0123abcd\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(d.Git(), f.git, "tree", "intel-ucode", "06-55-04"), small)

	writeFile(t, filepath.Join(d.Archives(), f.archive), small)

	tree := filepath.Join(d.Trees(), f.tree)
	writeFile(t, filepath.Join(tree, "upper", "vmlinux"), small)
	writeFile(t, filepath.Join(tree, "lock"), 0)
	info := `{"target":"6.12.1 x86_64","builder":"b@sha256:0123","used":"` + f.treeUsed.Format(time.RFC3339) + `"}`
	if err := os.WriteFile(filepath.Join(tree, "info.json"), []byte(info), 0o644); err != nil {
		t.Fatal(err)
	}

	writeFile(t, filepath.Join(d.BlobsDir(), "blobs", "sha256", strings.Repeat("9", 64)), small)
	writeFile(t, filepath.Join(d.Logs(), "a.log"), small)
	writeFile(t, filepath.Join(d.Work(), "build-1", "scratch"), small)
	return f
}

// find returns the entry of kind, failing the test without one.
func find(t *testing.T, entries []Entry, kind string) Entry {
	t.Helper()
	for _, e := range entries {
		if e.Kind == kind {
			return e
		}
	}
	t.Fatalf("no %s entry in %v", kind, entries)
	return Entry{}
}

func entries(t *testing.T, d Dir) []Entry {
	t.Helper()
	es, err := d.Entries()
	if err != nil {
		t.Fatal(err)
	}
	return es
}

// TestEntries: each thing in the cache once, by kind, newest use first,
// with its paths, its disk space (a hard-linked file once) and when a
// build last used it; locks and trees being written left out.
func TestEntries(t *testing.T) {
	f := makeCache(t)
	d := f.d
	// Used in the order rootfs1, rootfs2: rootfs2 is the newest use,
	// although it sorts second by name and its directory is older.
	before := time.Now()
	for _, name := range []string{"sha256:" + f.rootfs1, "sha256:" + f.rootfs2} {
		release, err := d.Use(KindRootfs, name)
		if err != nil {
			t.Fatal(err)
		}
		release()
	}
	after := time.Now()

	locksBefore, _ := os.ReadDir(d.Locks())
	got := entries(t, d)
	// Listing creates no lock files: only the two Uses above made some.
	if locksAfter, _ := os.ReadDir(d.Locks()); len(locksAfter) != len(locksBefore) || len(locksBefore) != 2 {
		t.Errorf("lock files: %d before listing, %d after; want 2 and 2", len(locksBefore), len(locksAfter))
	}
	want := []Entry{
		{Kind: KindRootfs, Name: "sha256:" + f.rootfs2, Paths: []string{filepath.Join(d.Rootfs(), "sha256", f.rootfs2)}},
		{Kind: KindRootfs, Name: "sha256:" + f.rootfs1, Paths: []string{filepath.Join(d.Rootfs(), "sha256", f.rootfs1)}},
		{Kind: KindSource, Name: "linux-6.12.1 (sha256:" + f.source[:12] + "...)", Paths: []string{
			filepath.Join(d.Sources(), "sha256", f.source), filepath.Join(d.Sources(), "trees", f.source)}},
		{Kind: KindGit, Name: f.git + " (commit 0123abcd)", Paths: []string{filepath.Join(d.Git(), f.git)}},
		{Kind: KindArchive, Name: f.archive, Paths: []string{filepath.Join(d.Archives(), f.archive)}},
		{Kind: KindTree, Name: "6.12.1 x86_64 (" + f.tree + ")", Paths: []string{filepath.Join(d.Trees(), f.tree)}},
		{Kind: KindBlobs, Name: "image blobs", Paths: []string{d.BlobsDir()}},
		{Kind: KindLog, Name: "a.log", Paths: []string{filepath.Join(d.Logs(), "a.log")}},
		{Kind: KindWork, Name: "build-1", Paths: []string{filepath.Join(d.Work(), "build-1")}},
	}
	if len(got) != len(want) {
		t.Fatalf("%d entries, want %d:\n%+v", len(got), len(want), got)
	}
	for i, w := range want {
		g := got[i]
		if g.Kind != w.Kind || g.Name != w.Name || !slices.Equal(g.Paths, w.Paths) {
			t.Errorf("entry %d: %s %q %q, want %s %q %q", i, g.Kind, g.Name, g.Paths, w.Kind, w.Name, w.Paths)
		}
		if g.Size <= 0 {
			t.Errorf("%s %s: size %d", g.Kind, g.Name, g.Size)
		}
		if g.Used.IsZero() || g.Used.After(after) && g.Kind != KindTree {
			t.Errorf("%s %s: used %v, after the test's %v", g.Kind, g.Name, g.Used, after)
		}
	}
	if !strings.HasPrefix(got[2].Name, "linux-6.12.1 (sha256:") {
		t.Errorf("source named %q", got[2].Name)
	}

	// Disk space: the 1 MiB file counts once, under either name.
	if r1 := got[1]; r1.Size < mib || r1.Size >= 2*mib {
		t.Errorf("rootfs with a 1 MiB file linked twice: size %d, want [1 MiB, 2 MiB)", r1.Size)
	}
	if r2 := got[0]; r2.Size >= mib {
		t.Errorf("rootfs without it: size %d", r2.Size)
	}
	// Used: a build's Use, and the object tree's own record.
	for _, e := range got[:2] {
		if e.Used.Before(before) || e.Used.After(after) {
			t.Errorf("%s %s: used %v, want the Use between %v and %v", e.Kind, e.Name, e.Used, before, after)
		}
	}
	if tree := find(t, got, KindTree); !tree.Used.Equal(f.treeUsed) {
		t.Errorf("tree used %v, want %v from its info.json", tree.Used, f.treeUsed)
	}
	for _, e := range got {
		if e.Kind != KindRootfs && e.Kind != KindTree && !e.Used.Before(before) {
			t.Errorf("%s %s: used %v, after the test made it (%v)", e.Kind, e.Name, e.Used, before)
		}
	}
}

// TestEntriesOfOddCaches: an empty cache (as Open makes it) lists nothing;
// sources without a tree, or with a name shorter than a sha256, are listed
// by their name.
func TestEntriesOfOddCaches(t *testing.T) {
	for _, tc := range []struct {
		name  string
		files []string // under the cache; a trailing / makes a directory
		want  []string // kind name
	}{
		{"empty", nil, nil},
		{"source without a tree", []string{"sources/sha256/" + strings.Repeat("5", 64)}, []string{"source sha256:" + strings.Repeat("5", 64)}},
		{"short source name", []string{"sources/sha256/abc", "sources/trees/abc/linux-6.1/"}, []string{"source linux-6.1 (sha256:abc...)"}},
		{"source tree of two", []string{"sources/sha256/abc", "sources/trees/abc/linux-6.1/", "sources/trees/abc/x"}, []string{"source sha256:abc"}},
		{"only temporary names", []string{"rootfs/sha256/.tmp-1/", "rootfs/sha256/x.tmp/", "logs/.a.log", "archives/a.tar.xz.tmp-12"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, err := Open(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range tc.files {
				if strings.HasSuffix(p, "/") {
					mkdir(t, filepath.Join(d.Root(), p))
				} else {
					writeFile(t, filepath.Join(d.Root(), p), 100)
				}
			}
			var got []string
			for _, e := range entries(t, d) {
				got = append(got, e.Kind+" "+e.Name)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("entries %q, want %q", got, tc.want)
			}
		})
	}
}

// TestRemove: an entry a build uses is left whole (ErrInUse); once the
// build lets go, it goes, and nothing is left of it in the scratch space.
func TestRemove(t *testing.T) {
	for _, tc := range []struct {
		kind string
		use  func(f fakeCache) string // the name a build Uses; "" for none
	}{
		{KindRootfs, func(f fakeCache) string { return "sha256:" + f.rootfs2 }},
		{KindSource, func(f fakeCache) string { return f.source }},
		{KindGit, func(f fakeCache) string { return f.git }},
		{KindTree, func(f fakeCache) string { return f.tree }},
		{KindBlobs, func(fakeCache) string { return "store" }},
		{KindArchive, func(fakeCache) string { return "" }},
		{KindLog, func(fakeCache) string { return "" }},
	} {
		t.Run(tc.kind, func(t *testing.T) {
			f := makeCache(t)
			d := f.d
			all := entries(t, d)
			e := find(t, all, tc.kind)
			if tc.kind == KindRootfs {
				e = all[slices.IndexFunc(all, func(e Entry) bool { return e.Name == "sha256:"+f.rootfs2 })]
			}
			if name := tc.use(f); name != "" {
				// Another open file description of the same lock, so
				// flock conflicts within this process as between two.
				release, err := d.Use(tc.kind, name)
				if err != nil {
					t.Fatal(err)
				}
				if err := d.Remove(e, os.RemoveAll); !errors.Is(err, ErrInUse) {
					t.Errorf("remove while in use: %v, want ErrInUse", err)
				}
				for _, p := range e.Paths {
					if _, err := os.Stat(p); err != nil {
						t.Errorf("in use, yet: %v", err)
					}
				}
				release()
			}
			if err := d.Remove(e, os.RemoveAll); err != nil {
				t.Fatalf("remove: %v", err)
			}
			for _, p := range e.Paths {
				if _, err := os.Lstat(p); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("%s left after remove: %v", p, err)
				}
			}
			checkWork(t, d)
			left := entries(t, d)
			if len(left) != len(all)-1 {
				t.Errorf("%d entries left of %d: %v", len(left), len(all), left)
			}
			for _, l := range left {
				if l.Kind == e.Kind && l.Name == e.Name {
					t.Errorf("%s %s still listed", l.Kind, l.Name)
				}
			}
		})
	}
}

// checkWork fails the test if the scratch space holds more than the
// build-1 of makeCache.
func checkWork(t *testing.T, d Dir) {
	t.Helper()
	es, err := os.ReadDir(d.Work())
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != 1 || es[0].Name() != "build-1" {
		var names []string
		for _, e := range es {
			names = append(names, e.Name())
		}
		t.Errorf("work holds %q, want only build-1", names)
	}
}

// TestRemoveHeldObjectTree: a build holding its object tree (objtree's
// exclusive lock, not Use) keeps it.
func TestRemoveHeldObjectTree(t *testing.T) {
	f := makeCache(t)
	e := find(t, entries(t, f.d), KindTree)
	lock, err := os.OpenFile(filepath.Join(f.d.Trees(), f.tree, "lock"), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		t.Fatal(err)
	}
	if err := f.d.Remove(e, os.RemoveAll); !errors.Is(err, ErrInUse) {
		t.Errorf("remove of a held object tree: %v, want ErrInUse", err)
	}
	if _, err := os.Stat(filepath.Join(f.d.Trees(), f.tree, "upper", "vmlinux")); err != nil {
		t.Errorf("held object tree: %v", err)
	}
}

// TestRemoveRefuses: scratch space, and entries reaching outside the
// cache (Remove deletes what it is given, as root too), are left alone.
func TestRemoveRefuses(t *testing.T) {
	f := makeCache(t)
	d := f.d
	work := find(t, entries(t, d), KindWork)
	outside := filepath.Join(filepath.Dir(d.Root()), "outside")
	writeFile(t, filepath.Join(outside, "precious"), 100)
	log := filepath.Join(d.Logs(), "a.log")
	for _, tc := range []struct {
		name  string
		e     Entry
		inUse bool
	}{
		{"scratch space", work, true},
		{"outside", Entry{Kind: KindLog, Name: "x", Paths: []string{outside}}, false},
		{"outside with a lock", Entry{Kind: KindRootfs, Name: "x", Paths: []string{outside}, lock: d.useLock(KindRootfs, "x")}, false},
		{"one path of two outside", Entry{Kind: KindSource, Name: "x", Paths: []string{log, outside}}, false},
		{"up and out", Entry{Kind: KindLog, Name: "x", Paths: []string{d.Logs() + "/../../outside"}}, false},
		{"the cache itself", Entry{Kind: KindLog, Name: "x", Paths: []string{d.Root()}}, false},
		{"the cache's parent", Entry{Kind: KindLog, Name: "x", Paths: []string{filepath.Dir(d.Root())}}, false},
		{"relative", Entry{Kind: KindLog, Name: "x", Paths: []string{"logs/a.log"}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := d.Remove(tc.e, os.RemoveAll)
			if err == nil || errors.Is(err, ErrInUse) != tc.inUse {
				t.Errorf("remove: %v (want ErrInUse: %v)", err, tc.inUse)
			}
			for _, p := range append([]string{filepath.Join(outside, "precious"), log}, tc.e.Paths...) {
				if !filepath.IsAbs(p) {
					continue
				}
				if _, err := os.Stat(p); err != nil {
					t.Errorf("after a refused remove: %v", err)
				}
			}
			checkWork(t, d)
		})
	}
	if n := len(entries(t, d)); n != 9 {
		t.Errorf("%d entries after refused removes, want all 9", n)
	}
}
