//go:build linux

package objtree

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Entries of an upper dir, as readUpper makes them, for the diff table.
func fileEntry(data string, mode fs.FileMode) *entry {
	return &entry{kind: kindFile, mode: mode, data: []byte(data)}
}

func linkEntry(target string) *entry {
	return &entry{kind: kindSymlink, mode: fs.ModeSymlink | 0o777, data: []byte(target)}
}

func dirEntry(mode fs.FileMode) *entry {
	return &entry{kind: kindDir, mode: fs.ModeDir | mode}
}

func whiteoutEntry() *entry {
	return &entry{kind: kindWhiteout, mode: fs.ModeDevice | fs.ModeCharDevice}
}

// TestDiff: which differences between the kept and the new patches' upper
// dirs are rebuilt incrementally (Changed) and which force a clean build
// (Refused, naming the path).
func TestDiff(t *testing.T) {
	tests := []struct {
		name     string
		old, cur map[string]*entry
		pristine []string // the paths the release has
		changed  []string
		refused  string // a substring of Refused; "" wants none
	}{
		{
			name:     "unchanged file",
			old:      map[string]*entry{"a.c": fileEntry("v1", 0o644)},
			cur:      map[string]*entry{"a.c": fileEntry("v1", 0o644)},
			pristine: []string{"a.c"},
		},
		{
			name:     "content change",
			old:      map[string]*entry{"a.c": fileEntry("v1", 0o644)},
			cur:      map[string]*entry{"a.c": fileEntry("v2", 0o644)},
			pristine: []string{"a.c"},
			changed:  []string{"a.c"},
		},
		{
			name:     "mode change",
			old:      map[string]*entry{"scripts/x.sh": fileEntry("v1", 0o644)},
			cur:      map[string]*entry{"scripts/x.sh": fileEntry("v1", 0o755)},
			pristine: []string{"scripts", "scripts/x.sh"},
			changed:  []string{"scripts/x.sh"},
		},
		{
			name:     "patched now, not before",
			old:      map[string]*entry{},
			cur:      map[string]*entry{"a.c": fileEntry("v1", 0o644)},
			pristine: []string{"a.c"},
			changed:  []string{"a.c"},
		},
		{
			name:     "patched before, reverted now",
			old:      map[string]*entry{"a.c": fileEntry("v1", 0o644)},
			cur:      map[string]*entry{},
			pristine: []string{"a.c"},
			changed:  []string{"a.c"},
		},
		{
			name: "changes are sorted",
			old: map[string]*entry{
				"kernel": dirEntry(0o755), "kernel/z.c": fileEntry("v1", 0o644), "b.c": fileEntry("v1", 0o644),
			},
			cur: map[string]*entry{
				"kernel": dirEntry(0o755), "kernel/z.c": fileEntry("v2", 0o644), "a.c": fileEntry("v1", 0o644),
			},
			pristine: []string{"a.c", "b.c", "kernel", "kernel/z.c"},
			changed:  []string{"a.c", "b.c", "kernel/z.c"},
		},
		{
			name:     "file added",
			old:      map[string]*entry{},
			cur:      map[string]*entry{"drivers": dirEntry(0o755), "drivers/new.c": fileEntry("v1", 0o644)},
			pristine: []string{"drivers"},
			refused:  "drivers/new.c",
		},
		{
			name:     "file added before, still there",
			old:      map[string]*entry{"new.c": fileEntry("v1", 0o644)},
			cur:      map[string]*entry{"new.c": fileEntry("v2", 0o644)},
			pristine: nil,
			changed:  []string{"new.c"},
		},
		{
			name:     "file added before, not now",
			old:      map[string]*entry{"new.c": fileEntry("v1", 0o644)},
			cur:      map[string]*entry{},
			pristine: nil,
			refused:  "new.c",
		},
		{
			name:     "file removed",
			old:      map[string]*entry{},
			cur:      map[string]*entry{"a.c": whiteoutEntry()},
			pristine: []string{"a.c"},
			refused:  "a.c",
		},
		{
			name:     "file removed before, back now",
			old:      map[string]*entry{"a.c": whiteoutEntry()},
			cur:      map[string]*entry{},
			pristine: []string{"a.c"},
			refused:  "a.c",
		},
		{
			name:     "file removed before and now",
			old:      map[string]*entry{"a.c": whiteoutEntry()},
			cur:      map[string]*entry{"a.c": whiteoutEntry()},
			pristine: []string{"a.c"},
		},
		{
			name:     "Makefile change",
			old:      map[string]*entry{"drivers": dirEntry(0o755), "drivers/Makefile": fileEntry("obj-y += a.o\n", 0o644)},
			cur:      map[string]*entry{"drivers": dirEntry(0o755), "drivers/Makefile": fileEntry("obj-y += b.o\n", 0o644)},
			pristine: []string{"drivers", "drivers/Makefile"},
			refused:  "drivers/Makefile",
		},
		{
			name:     "Makefile.build newly patched",
			old:      map[string]*entry{},
			cur:      map[string]*entry{"scripts": dirEntry(0o755), "scripts/Makefile.build": fileEntry("x", 0o644)},
			pristine: []string{"scripts", "scripts/Makefile.build"},
			refused:  "scripts/Makefile.build",
		},
		{
			name:     "Kbuild reverted",
			old:      map[string]*entry{"Kbuild": fileEntry("x", 0o644)},
			cur:      map[string]*entry{},
			pristine: []string{"Kbuild"},
			refused:  "Kbuild",
		},
		{
			name:     "Kconfig change",
			old:      map[string]*entry{"init": dirEntry(0o755), "init/Kconfig": fileEntry("config A\n", 0o644)},
			cur:      map[string]*entry{"init": dirEntry(0o755), "init/Kconfig": fileEntry("config B\n", 0o644)},
			pristine: []string{"init", "init/Kconfig"},
			refused:  "init/Kconfig",
		},
		{
			name:     "Makefile unchanged",
			old:      map[string]*entry{"Makefile": fileEntry("x", 0o644), "a.c": fileEntry("v1", 0o644)},
			cur:      map[string]*entry{"Makefile": fileEntry("x", 0o644), "a.c": fileEntry("v2", 0o644)},
			pristine: []string{"Makefile", "a.c"},
			changed:  []string{"a.c"},
		},
		{
			name:     "symlink target change",
			old:      map[string]*entry{"l": linkEntry("a.c")},
			cur:      map[string]*entry{"l": linkEntry("b.c")},
			pristine: []string{"l", "a.c", "b.c"},
			refused:  "symlink l",
		},
		{
			name:     "file to symlink",
			old:      map[string]*entry{"a.c": fileEntry("v1", 0o644)},
			cur:      map[string]*entry{"a.c": linkEntry("b.c")},
			pristine: []string{"a.c", "b.c"},
			refused:  "type of a.c",
		},
		{
			name:     "directories differing only in mode",
			old:      map[string]*entry{"d": dirEntry(0o755)},
			cur:      map[string]*entry{"d": dirEntry(0o700)},
			pristine: []string{"d"},
		},
		{
			name:     "directory patched before, not now",
			old:      map[string]*entry{"d": dirEntry(0o755), "d/x.c": fileEntry("v1", 0o644)},
			cur:      map[string]*entry{},
			pristine: []string{"d", "d/x.c"},
			changed:  []string{"d/x.c"},
		},
		{
			name:     "new directory",
			old:      map[string]*entry{},
			cur:      map[string]*entry{"newdir": dirEntry(0o755)},
			pristine: nil,
			refused:  "newdir",
		},
		{
			name:     "directory removed",
			old:      map[string]*entry{},
			cur:      map[string]*entry{"d": whiteoutEntry()},
			pristine: []string{"d"},
			refused:  "d",
		},
		{
			name:     "directory to symlink",
			old:      map[string]*entry{"d": dirEntry(0o755), "d/x.c": fileEntry("v1", 0o644)},
			cur:      map[string]*entry{"d": linkEntry("/")},
			pristine: []string{"d", "d/x.c"},
			refused:  "type of d",
		},
		{
			name:     "directory to file",
			old:      map[string]*entry{"d": dirEntry(0o755)},
			cur:      map[string]*entry{"d": fileEntry("v1", 0o644)},
			pristine: []string{"d"},
			refused:  "type of d",
		},
		{
			name:     "file to directory",
			old:      map[string]*entry{"d": fileEntry("v1", 0o644)},
			cur:      map[string]*entry{"d": dirEntry(0o755)},
			pristine: []string{"d"},
			refused:  "type of d",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := diff(tt.old, tt.cur, func(rel string) bool { return slices.Contains(tt.pristine, rel) })
			if err != nil {
				t.Fatal(err)
			}
			if tt.refused == "" && p.Refused != "" {
				t.Fatalf("refused: %s", p.Refused)
			}
			if tt.refused != "" {
				if !strings.Contains(p.Refused, tt.refused) {
					t.Fatalf("Refused %q, want it to mention %q", p.Refused, tt.refused)
				}
				if len(p.Changed) != 0 {
					t.Errorf("refused with Changed %q", p.Changed)
				}
				return
			}
			if !slices.Equal(p.Changed, tt.changed) {
				t.Errorf("Changed %q, want %q", p.Changed, tt.changed)
			}
		})
	}
}

// The mtimes of the release's files and of the kept patched files: well
// before any test's build.
func pristineTime() time.Time { return time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC) }

func keptTime() time.Time { return time.Date(2021, 6, 7, 8, 9, 10, 123456789, time.UTC) }

// put writes a file under root with exactly mode and mtime, creating its
// parent directories.
func put(t *testing.T, root, rel, data string, mode fs.FileMode, mtime time.Time) {
	t.Helper()
	p := filepath.Join(root, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(data), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(p, mtime, mtime); err != nil {
		t.Fatal(err)
	}
}

// putLink makes a symlink under root with its own mtime.
func putLink(t *testing.T, root, rel, target string, mtime time.Time) {
	t.Helper()
	p := filepath.Join(root, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, p); err != nil {
		t.Fatal(err)
	}
	lchtimes(t, p, mtime)
}

func lchtimes(t *testing.T, p string, mtime time.Time) {
	t.Helper()
	ts := unix.NsecToTimespec(mtime.UnixNano())
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, p, []unix.Timespec{ts, ts}, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		t.Fatal(err)
	}
}

// putWhiteout makes an overlay whiteout, which needs root; the test is
// skipped otherwise.
func putWhiteout(t *testing.T, root, rel string) {
	t.Helper()
	if os.Getuid() != 0 {
		t.Skip("needs root to make a whiteout (a character device 0/0); scripts/test.sh runs it as root")
	}
	p := filepath.Join(root, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mknod(p, unix.S_IFCHR, 0); err != nil {
		t.Fatal(err)
	}
}

func lstat(t *testing.T, p string) fs.FileInfo {
	t.Helper()
	info, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	return info
}

// snapshot is every entry under dir with what Reconcile could change.
func snapshot(t *testing.T, dir string) map[string]entry {
	t.Helper()
	m, err := readUpper(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]entry{}
	for rel, e := range m {
		out[rel] = *e
	}
	return out
}

func sameSnapshot(a, b map[string]entry) bool {
	if len(a) != len(b) {
		return false
	}
	for rel, e := range a {
		f, ok := b[rel]
		if !ok || !same(&e, &f) || !e.mtime.Equal(f.mtime) {
			return false
		}
	}
	return true
}

// openSlot opens a fresh slot in a temporary directory, closed at the end
// of the test.
func openSlot(t *testing.T) *Slot {
	t.Helper()
	s, err := Open(filepath.Join(t.TempDir(), "slot"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// keep commits, as a finished clean build would, the patches' upper dir
// that prepare fills.
func keep(t *testing.T, s *Slot, prepare func(dir string)) {
	t.Helper()
	if err := s.Reset(os.RemoveAll); err != nil {
		t.Fatal(err)
	}
	if err := s.Begin(); err != nil {
		t.Fatal(err)
	}
	patched := filepath.Join(t.TempDir(), "patched")
	if err := os.Mkdir(patched, 0o755); err != nil {
		t.Fatal(err)
	}
	prepare(patched)
	if err := s.Commit(patched, Info{}, os.RemoveAll); err != nil {
		t.Fatal(err)
	}
}

// TestReconcile is a second build of a target: a.c patched as before (but
// applied again, so with a new mtime), b.c patched before and not now, c.c
// patched now and not before. The kept a.c's mtime comes back, b.c comes up
// from the release, and both b.c and c.c look newer than the kept build.
func TestReconcile(t *testing.T) {
	pristine := t.TempDir()
	put(t, pristine, "Makefile", "all:\n", 0o644, pristineTime())
	put(t, pristine, "a.c", "a pristine\n", 0o644, pristineTime())
	put(t, pristine, "b.c", "b pristine\n", 0o640, pristineTime())
	put(t, pristine, "c.c", "c pristine\n", 0o644, pristineTime())

	dir := filepath.Join(t.TempDir(), "slot")
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { s.Close() }()
	if s.Kept() {
		t.Fatal("a new slot is Kept")
	}
	if p, err := s.Reconcile(t.TempDir(), pristine); err != nil || p.Refused == "" {
		t.Fatalf("Reconcile of a new slot: %+v, %v; want Refused", p, err)
	}
	if err := s.Reset(os.RemoveAll); err != nil {
		t.Fatal(err)
	}
	if info, err := os.Stat(s.Upper()); err != nil || !info.IsDir() {
		t.Fatalf("no upper dir after Reset: %v", err)
	}
	if err := s.Begin(); err != nil {
		t.Fatal(err)
	}
	put(t, s.Upper(), "a.o", "object\n", 0o644, time.Now())
	oldPatched := filepath.Join(t.TempDir(), "patched")
	put(t, oldPatched, "a.c", "a v1\n", 0o644, keptTime())
	put(t, oldPatched, "b.c", "b patched\n", 0o644, keptTime())
	info := Info{Target: "6.6.1 x86_64", Builder: "builder@sha256:0123", Used: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	if err := s.Commit(oldPatched, info, os.RemoveAll); err != nil {
		t.Fatal(err)
	}
	if !s.Kept() {
		t.Fatal("not Kept after Commit")
	}
	if _, err := os.Lstat(oldPatched); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the committed patched tree is still at %s: %v", oldPatched, err)
	}
	finished := s.st.Finished
	keptA := lstat(t, filepath.Join(dir, patchedDir, "a.c")).ModTime()

	// The next build opens the slot again.
	s.Close()
	if s, err = Open(dir); err != nil {
		t.Fatal(err)
	}
	if !s.Kept() {
		t.Fatal("not Kept when opened again after Commit")
	}
	newPatched := filepath.Join(t.TempDir(), "patched")
	put(t, newPatched, "a.c", "a v1\n", 0o644, time.Now())
	put(t, newPatched, "c.c", "c v2\n", 0o644, time.Now())
	p, err := s.Reconcile(newPatched, pristine)
	if err != nil {
		t.Fatal(err)
	}
	if p.Refused != "" {
		t.Fatalf("refused: %s", p.Refused)
	}
	if want := []string{"b.c", "c.c"}; !slices.Equal(p.Changed, want) {
		t.Errorf("Changed %q, want %q", p.Changed, want)
	}
	if got := lstat(t, filepath.Join(newPatched, "a.c")).ModTime(); !got.Equal(keptA) {
		t.Errorf("unchanged a.c: mtime %v, want the kept %v", got, keptA)
	}
	b := lstat(t, filepath.Join(newPatched, "b.c"))
	if data, err := os.ReadFile(filepath.Join(newPatched, "b.c")); err != nil || string(data) != "b pristine\n" {
		t.Errorf("reverted b.c: %q, %v; want the release's bytes", data, err)
	}
	if b.Mode() != 0o640 {
		t.Errorf("reverted b.c: mode %v, want the release's 0640", b.Mode())
	}
	if !b.ModTime().After(finished) {
		t.Errorf("reverted b.c: mtime %v, not after the kept build (%v)", b.ModTime(), finished)
	}
	if c := lstat(t, filepath.Join(newPatched, "c.c")).ModTime(); !c.After(finished) {
		t.Errorf("changed c.c: mtime %v, not after the kept build (%v)", c, finished)
	}
	entries, err := os.ReadDir(newPatched)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if want := []string{"a.c", "b.c", "c.c"}; !slices.Equal(names, want) {
		t.Errorf("patched tree holds %q, want %q", names, want)
	}
	if _, err := os.Lstat(filepath.Join(s.Upper(), "a.o")); err != nil {
		t.Errorf("the kept object: %v", err)
	}

	// The build begins writing: until the next Commit nothing is kept, in
	// this Slot or for the next build.
	if err := s.Begin(); err != nil {
		t.Fatal(err)
	}
	if s.Kept() {
		t.Error("Kept after Begin")
	}
	if p, err := s.Reconcile(newPatched, pristine); err != nil || p.Refused == "" {
		t.Errorf("Reconcile after Begin: %+v, %v; want Refused", p, err)
	}
	s.Close()
	if s, err = Open(dir); err != nil {
		t.Fatal(err)
	}
	if s.Kept() {
		t.Error("Kept when opened again after Begin")
	}

	// A second Commit replaces the kept patched tree.
	if err := s.Commit(newPatched, info, os.RemoveAll); err != nil {
		t.Fatal(err)
	}
	if data, err := os.ReadFile(filepath.Join(dir, patchedDir, "c.c")); err != nil || string(data) != "c v2\n" {
		t.Errorf("kept c.c after the second Commit: %q, %v", data, err)
	}
}

// TestReconcileRefused: when Reconcile refuses, it has changed nothing in
// the new patched tree.
func TestReconcileRefused(t *testing.T) {
	tests := []struct {
		name    string
		old     func(t *testing.T, dir string)
		cur     func(t *testing.T, dir string)
		refused string
	}{
		{
			name: "file added",
			old:  func(t *testing.T, dir string) { put(t, dir, "a.c", "v1", 0o644, keptTime()) },
			cur: func(t *testing.T, dir string) {
				put(t, dir, "a.c", "v2", 0o644, time.Now())
				put(t, dir, "new.c", "v1", 0o644, time.Now())
			},
			refused: "new.c",
		},
		{
			name: "Makefile changed",
			old:  func(t *testing.T, dir string) { put(t, dir, "Makefile", "v1", 0o644, keptTime()) },
			cur: func(t *testing.T, dir string) {
				put(t, dir, "Makefile", "v2", 0o644, time.Now())
				put(t, dir, "a.c", "v2", 0o644, time.Now())
			},
			refused: "Makefile",
		},
		{
			name: "file removed",
			old:  func(t *testing.T, dir string) { put(t, dir, "a.c", "v1", 0o644, keptTime()) },
			cur: func(t *testing.T, dir string) {
				put(t, dir, "a.c", "v1", 0o644, time.Now())
				putWhiteout(t, dir, "b.c")
			},
			refused: "b.c",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pristine := t.TempDir()
			put(t, pristine, "Makefile", "v0", 0o644, pristineTime())
			put(t, pristine, "a.c", "v0", 0o644, pristineTime())
			put(t, pristine, "b.c", "v0", 0o644, pristineTime())
			s := openSlot(t)
			keep(t, s, func(dir string) { tt.old(t, dir) })
			cur := t.TempDir()
			tt.cur(t, cur)
			before := snapshot(t, cur)
			p, err := s.Reconcile(cur, pristine)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(p.Refused, tt.refused) {
				t.Errorf("Refused %q, want it to mention %q", p.Refused, tt.refused)
			}
			if !sameSnapshot(before, snapshot(t, cur)) {
				t.Errorf("a refused Reconcile changed the patched tree")
			}
		})
	}
}

// TestReconcileWhiteouts: a file both builds' patches remove is no change.
func TestReconcileWhiteouts(t *testing.T) {
	pristine := t.TempDir()
	put(t, pristine, "a.c", "v0", 0o644, pristineTime())
	put(t, pristine, "gone.c", "v0", 0o644, pristineTime())
	s := openSlot(t)
	keep(t, s, func(dir string) {
		put(t, dir, "a.c", "v1", 0o644, keptTime())
		putWhiteout(t, dir, "gone.c")
	})
	cur := t.TempDir()
	put(t, cur, "a.c", "v2", 0o644, time.Now())
	putWhiteout(t, cur, "gone.c")
	p, err := s.Reconcile(cur, pristine)
	if err != nil {
		t.Fatal(err)
	}
	if p.Refused != "" || !slices.Equal(p.Changed, []string{"a.c"}) {
		t.Errorf("got %+v, want Changed [a.c]", p)
	}
	if info := lstat(t, filepath.Join(cur, "gone.c")); !isWhiteout(info) {
		t.Errorf("gone.c is no longer a whiteout: %v", info.Mode())
	}
}

// TestReconcileSymlinkedDir: the new patches' upper dir puts a symlink
// where the kept one had a directory with a patched file, so that copying
// the release's file back up would write through it. Reconcile must refuse
// or fail, and write nothing where the symlink points.
func TestReconcileSymlinkedDir(t *testing.T) {
	tests := []struct {
		name   string
		parent string // the directory the symlink replaces
		// target is where it points, outside being the directory that
		// must stay untouched, next to the patched tree.
		target func(outside string) string
	}{
		{name: "absolute", parent: "d", target: func(outside string) string { return outside }},
		{name: "relative", parent: "d", target: func(string) string { return "../outside" }},
		{name: "nested", parent: "d/e", target: func(outside string) string { return outside }},
		{name: "nested relative", parent: "d/e", target: func(string) string { return "../../outside" }},
		{name: "root", parent: "d", target: func(string) string { return "/" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base := t.TempDir()
			pristine := filepath.Join(base, "pristine")
			put(t, pristine, tt.parent+"/x.c", "v0", 0o644, pristineTime())
			s := openSlot(t)
			keep(t, s, func(dir string) { put(t, dir, tt.parent+"/x.c", "v1", 0o644, keptTime()) })

			outside := filepath.Join(base, "outside")
			if err := os.Mkdir(outside, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Chtimes(outside, pristineTime(), pristineTime()); err != nil {
				t.Fatal(err)
			}
			cur := filepath.Join(base, "cur")
			link := filepath.Join(cur, filepath.FromSlash(tt.parent))
			if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
				t.Fatal(err)
			}
			target := tt.target(outside)
			if err := os.Symlink(target, link); err != nil {
				t.Fatal(err)
			}
			if target != "/" {
				if resolved, err := filepath.EvalSymlinks(link); err != nil || resolved != outside {
					t.Fatalf("the symlink resolves to %s, %v; want %s", resolved, err, outside)
				}
			}

			p, err := s.Reconcile(cur, pristine)
			t.Logf("Reconcile: %+v, %v", p, err)
			if err == nil && p.Refused == "" {
				t.Errorf("Reconcile through a symlinked directory: %+v, want Refused or an error", p)
			}
			entries, err := os.ReadDir(outside)
			if err != nil {
				t.Fatal(err)
			}
			if len(entries) != 0 {
				t.Errorf("Reconcile wrote %s into %s", entries[0].Name(), outside)
			}
			if got := lstat(t, outside).ModTime(); !got.Equal(pristineTime()) {
				t.Errorf("the symlink's target dir was touched: mtime %v", got)
			}
			if target == "/" {
				if _, err := os.Lstat("/x.c"); err == nil {
					t.Errorf("/x.c exists")
				}
			}
			if got, err := os.Readlink(link); err != nil || got != target {
				t.Errorf("the symlink is now %q, %v", got, err)
			}
		})
	}
}

// TestReconcileSymlinkMtime: Reconcile gives an unchanged symlink its
// kept time, never touching what it points to, and refuses a changed or
// reverted one (make would look at its target's time).
func TestReconcileSymlinkMtime(t *testing.T) {
	tests := []struct {
		name    string
		cur     string // the new upper's link target, "" for none
		refused bool
	}{
		{name: "same", cur: "t3"},
		{name: "changed", cur: "t2", refused: true},
		{name: "reverted", refused: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base := t.TempDir()
			outside := filepath.Join(base, "outside")
			for _, name := range []string{"t0", "t2", "t3"} {
				put(t, outside, name, name, 0o644, pristineTime())
			}
			at := func(name string) string { return filepath.Join(outside, name) }
			pristine := filepath.Join(base, "pristine")
			putLink(t, pristine, "l", at("t0"), pristineTime())
			s := openSlot(t)
			keep(t, s, func(dir string) { putLink(t, dir, "l", at("t3"), keptTime()) })
			cur := filepath.Join(base, "cur")
			if err := os.MkdirAll(cur, 0o755); err != nil {
				t.Fatal(err)
			}
			if tt.cur != "" {
				putLink(t, cur, "l", at(tt.cur), time.Now())
			}
			p, err := s.Reconcile(cur, pristine)
			if err != nil {
				t.Fatal(err)
			}
			if got := p.Refused != ""; got != tt.refused {
				t.Fatalf("got %+v, want refused %v", p, tt.refused)
			}
			for _, name := range []string{"t0", "t2", "t3"} {
				if got := lstat(t, at(name)).ModTime(); !got.Equal(pristineTime()) {
					t.Errorf("symlink target %s: mtime %v, want it untouched", name, got)
				}
			}
			if !tt.refused {
				if got := lstat(t, filepath.Join(cur, "l")).ModTime(); !got.Equal(keptTime()) {
					t.Errorf("mtime %v, want the kept %v", got, keptTime())
				}
			}
		})
	}
}

// TestOpenBusy: one build at a time holds a slot; the next one is told at
// once, and can have it after Close.
func TestOpenBusy(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "slot")
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if s.Dir() != dir {
		t.Errorf("Dir %s, want %s", s.Dir(), dir)
	}
	s2, err := Open(dir)
	if !errors.Is(err, ErrBusy) {
		t.Fatalf("second Open: %v, want ErrBusy", err)
	}
	if s2 != nil {
		t.Errorf("second Open returned a slot with ErrBusy")
	}
	s.Close()
	s.Close() // a second Close does nothing
	s3, err := Open(dir)
	if err != nil {
		t.Fatalf("Open after Close: %v", err)
	}
	s3.Close()
}

// TestOpenState: only a state of this format written by Commit makes a
// slot Kept.
func TestOpenState(t *testing.T) {
	good, err := json.Marshal(state{Format: formatVersion, Finished: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	old, err := json.Marshal(state{Format: formatVersion - 1, Finished: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		state []byte // nil: no state file
		kept  bool
	}{
		{name: "none"},
		{name: "current", state: good, kept: true},
		{name: "other format", state: old},
		{name: "corrupt", state: good[:len(good)/2]},
		{name: "empty", state: []byte{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if tt.state != nil {
				if err := os.WriteFile(filepath.Join(dir, stateFile), tt.state, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			s, err := Open(dir)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if s.Kept() != tt.kept {
				t.Errorf("Kept %v, want %v", s.Kept(), tt.kept)
			}
		})
	}
}

// TestReset empties the slot, calling remove only for what exists.
func TestReset(t *testing.T) {
	s := openSlot(t)
	var removed []string
	remove := func(p string) error {
		removed = append(removed, filepath.Base(p))
		return os.RemoveAll(p)
	}
	if err := s.Reset(remove); err != nil {
		t.Fatal(err)
	}
	if len(removed) != 0 {
		t.Errorf("Reset of a new slot removed %q", removed)
	}
	put(t, s.Upper(), "kernel/a.o", "object", 0o644, time.Now())
	keepDir := filepath.Join(t.TempDir(), "patched")
	put(t, keepDir, "a.c", "v1", 0o644, keptTime())
	if err := s.Commit(keepDir, Info{}, remove); err != nil {
		t.Fatal(err)
	}
	if err := s.Reset(remove); err != nil {
		t.Fatal(err)
	}
	if want := []string{buildDir, patchedDir}; !slices.Equal(removed, want) {
		t.Errorf("removed %q, want %q", removed, want)
	}
	if s.Kept() {
		t.Error("Kept after Reset")
	}
	entries, err := os.ReadDir(s.Upper())
	if err != nil || len(entries) != 0 {
		t.Errorf("upper dir after Reset: %d entries, %v; want empty", len(entries), err)
	}
	if _, err := os.Lstat(filepath.Join(s.Dir(), patchedDir)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("kept patched tree after Reset: %v", err)
	}
	if _, err := os.Lstat(filepath.Join(s.Dir(), stateFile)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("state after Reset: %v", err)
	}
}

// TestReadInfo reads back what Commit recorded.
func TestReadInfo(t *testing.T) {
	s := openSlot(t)
	if _, err := ReadInfo(s.Dir()); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("ReadInfo before Commit: %v, want not exist", err)
	}
	want := Info{Target: "6.6.1 aarch64 -foo", Builder: "lkbuild/builder:1@sha256:abcd", Used: time.Date(2026, 3, 4, 5, 6, 7, 8, time.UTC)}
	if err := s.Reset(os.RemoveAll); err != nil {
		t.Fatal(err)
	}
	patched := filepath.Join(t.TempDir(), "patched")
	if err := os.Mkdir(patched, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := s.Commit(patched, want, os.RemoveAll); err != nil {
		t.Fatal(err)
	}
	got, err := ReadInfo(s.Dir())
	if err != nil {
		t.Fatal(err)
	}
	if got.Target != want.Target || got.Builder != want.Builder || !got.Used.Equal(want.Used) {
		t.Errorf("ReadInfo %+v, want %+v", got, want)
	}
}

// TestReadUpper: what an upper dir can hold, and what patch never makes.
func TestReadUpper(t *testing.T) {
	tests := []struct {
		name    string
		prepare func(t *testing.T, dir string)
		want    map[string]kind
		err     string // a substring of the error; "" wants none
	}{
		{
			name: "files, dirs and symlinks",
			prepare: func(t *testing.T, dir string) {
				put(t, dir, "a.c", "v1", 0o644, keptTime())
				put(t, dir, "d/e/x.c", "v1", 0o644, keptTime())
				putLink(t, dir, "d/l", "../a.c", keptTime())
				putLink(t, dir, "dl", "/", keptTime())
			},
			want: map[string]kind{"a.c": kindFile, "d": kindDir, "d/e": kindDir, "d/e/x.c": kindFile, "d/l": kindSymlink, "dl": kindSymlink},
		},
		{
			name:    "whiteout",
			prepare: func(t *testing.T, dir string) { putWhiteout(t, dir, "d/gone.c") },
			want:    map[string]kind{"d": kindDir, "d/gone.c": kindWhiteout},
		},
		{
			name: "fifo",
			prepare: func(t *testing.T, dir string) {
				if err := unix.Mkfifo(filepath.Join(dir, "fifo"), 0o644); err != nil {
					t.Fatal(err)
				}
			},
			err: "fifo: unexpected file type",
		},
		{
			name: "opaque directory",
			prepare: func(t *testing.T, dir string) {
				if os.Getuid() != 0 {
					t.Skip("needs root to set trusted.overlay.opaque; scripts/test.sh runs it as root")
				}
				d := filepath.Join(dir, "d")
				if err := os.Mkdir(d, 0o755); err != nil {
					t.Fatal(err)
				}
				if err := unix.Lsetxattr(d, "trusted.overlay.opaque", []byte("y"), 0); err != nil {
					t.Fatal(err)
				}
			},
			err: "d: an opaque directory",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			tt.prepare(t, dir)
			m, err := readUpper(dir)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want one saying %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]kind{}
			for rel, e := range m {
				got[rel] = e.kind
			}
			if len(got) != len(tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
			for rel, k := range tt.want {
				if got[rel] != k {
					t.Errorf("%s: kind %v, want %v", rel, got[rel], k)
				}
			}
			if e := m["a.c"]; e != nil && (string(e.data) != "v1" || !e.mtime.Equal(keptTime()) || e.mode != 0o644) {
				t.Errorf("a.c: %+v", e)
			}
			if e := m["d/l"]; e != nil && string(e.data) != "../a.c" {
				t.Errorf("d/l: target %q", e.data)
			}
		})
	}
}

// TestNoFollow: copyUp and setMtime, whatever Reconcile decided, resolve
// no symlink in the upper dir, so that nothing outside it changes.
func TestNoFollow(t *testing.T) {
	tests := []struct {
		name string
		rel  string
		op   func(upper, pristine, rel string) error
	}{
		{name: "copyUp", rel: "d/y.c", op: copyUp},
		{name: "copyUp nested", rel: "d/e/y.c", op: copyUp},
		{name: "setMtime", rel: "d/x.c", op: func(upper, _, rel string) error { return setMtime(upper, rel, time.Now()) }},
		{name: "setMtime dotdot", rel: "../outside/x.c", op: func(upper, _, rel string) error { return setMtime(upper, rel, time.Now()) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base := t.TempDir()
			pristine := filepath.Join(base, "pristine")
			put(t, pristine, "d/y.c", "v0", 0o644, pristineTime())
			put(t, pristine, "d/e/y.c", "v0", 0o644, pristineTime())
			outside := filepath.Join(base, "outside")
			put(t, outside, "x.c", "v0", 0o644, pristineTime())
			put(t, outside, "e/keep", "v0", 0o644, pristineTime())
			if err := os.Chtimes(outside, pristineTime(), pristineTime()); err != nil {
				t.Fatal(err)
			}
			upper := filepath.Join(base, "upper")
			putLink(t, upper, "d", "../outside", keptTime())
			before := snapshot(t, outside)
			if err := tt.op(upper, pristine, tt.rel); err == nil {
				t.Errorf("%s of %s through a symlink succeeded", tt.name, tt.rel)
			}
			if !sameSnapshot(before, snapshot(t, outside)) {
				t.Errorf("%s changed %s", tt.name, outside)
			}
			if got := lstat(t, outside).ModTime(); !got.Equal(pristineTime()) {
				t.Errorf("%s: mtime %v, want it untouched", outside, got)
			}
		})
	}
}
