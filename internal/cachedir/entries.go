package cachedir

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/lkbuild/lkbuild/internal/flock"
)

// Kinds of cache entries, as Entries lists them.
const (
	KindRootfs  = "rootfs"  // an unpacked builder or cross image, by manifest digest
	KindSource  = "source"  // a verified kernel tarball and its extracted tree
	KindGit     = "git"     // a checked-out tag (the Intel microcode)
	KindArchive = "archive" // a src/linux.tar.xz
	KindTree    = "tree"    // a target's kept object tree
	KindBlobs   = "blobs"   // the image blob store, as a whole
	KindLog     = "log"     // a build log
	KindWork    = "work"    // scratch space of a running build, or one killed
)

// Entry is one thing in the cache that can be removed on its own.
type Entry struct {
	Kind string `json:"kind"`
	// Name says what it is: a digest, "linux-6.12.117", a target.
	Name string `json:"name"`
	// Paths are what removing it removes.
	Paths []string `json:"paths"`
	// Size is the disk space of Paths, in bytes (hard links once).
	Size int64 `json:"size"`
	// Used is when a build last used it (or made it).
	Used time.Time `json:"used"`
	// InUse is true when a running build held it as Entries looked:
	// Select does not pick it.
	InUse bool `json:"inUse,omitempty"`
	// lock is held shared by a build that uses the entry, exclusively by
	// Remove; "" for an entry no build holds (a log).
	lock string
}

// Use marks the entry kind/name as in use by a build until release is
// called: Remove will not take it meanwhile. It also records the use, for
// Entries' Used. The caller must check that the entry still exists after
// Use returns (a prune may have removed it just before) and make it again
// if not.
func (d Dir) Use(kind, name string) (release func(), err error) {
	lock := d.useLock(kind, name)
	if err := os.MkdirAll(filepath.Dir(lock), 0o700); err != nil {
		return nil, fmt.Errorf("cache: %w", err)
	}
	release, err = flock.Shared(lock)
	if err != nil {
		return nil, fmt.Errorf("cache: %w", err)
	}
	now := time.Now()
	_ = os.Chtimes(lock, now, now)
	return release, nil
}

// useLock is the lock file of an entry.
func (d Dir) useLock(kind, name string) string {
	if kind == KindTree {
		return filepath.Join(d.Trees(), name, "lock") // objtree's own
	}
	return filepath.Join(d.Locks(), kind+"-"+strings.NewReplacer("/", "_", ":", "_").Replace(name)+".lock")
}

// Entries lists what the cache holds, by kind, newest use first within a
// kind. Entries being written (temporary names) are left out.
func (d Dir) Entries() ([]Entry, error) {
	var out []Entry
	add := func(e Entry) {
		for _, p := range e.Paths {
			n, used := usage(p)
			e.Size += n
			if used.After(e.Used) {
				e.Used = used
			}
		}
		if e.lock != "" {
			if fi, err := os.Stat(e.lock); err == nil && fi.ModTime().After(e.Used) {
				e.Used = fi.ModTime()
			}
			// Listing creates no lock file; one it cannot probe counts as
			// in use, so that nothing is pruned on a guess.
			if held, err := flock.Held(e.lock); held || err != nil {
				e.InUse = true
			}
		}
		if e.Kind == KindWork {
			e.InUse = true // nothing says otherwise
		}
		out = append(out, e)
	}
	list := func(dir string) []os.DirEntry {
		es, _ := os.ReadDir(dir)
		return slices.DeleteFunc(es, func(e os.DirEntry) bool {
			n := e.Name()
			return strings.HasPrefix(n, ".") || strings.HasSuffix(n, ".lock") || strings.Contains(n, ".tmp")
		})
	}

	for _, alg := range list(d.Rootfs()) {
		for _, e := range list(filepath.Join(d.Rootfs(), alg.Name())) {
			name := alg.Name() + ":" + e.Name()
			p := filepath.Join(d.Rootfs(), alg.Name(), e.Name())
			add(Entry{Kind: KindRootfs, Name: name, Paths: []string{p}, lock: d.useLock(KindRootfs, name)})
		}
	}
	for _, e := range list(filepath.Join(d.Sources(), "sha256")) {
		sum := e.Name()
		name := "sha256:" + sum
		tree := filepath.Join(d.Sources(), "trees", sum)
		if tops, _ := os.ReadDir(tree); len(tops) == 1 {
			name = tops[0].Name() + " (" + name[:min(len(name), 19)] + "...)"
		}
		paths := []string{filepath.Join(d.Sources(), "sha256", sum)}
		if _, err := os.Lstat(tree); err == nil {
			paths = append(paths, tree)
		}
		add(Entry{Kind: KindSource, Name: name, Paths: paths, lock: d.useLock(KindSource, sum)})
	}
	for _, e := range list(d.Git()) {
		name := e.Name()
		if c, err := os.ReadFile(filepath.Join(d.Git(), name, "commit")); err == nil {
			name += " (commit " + strings.TrimSpace(string(c)) + ")"
		}
		add(Entry{Kind: KindGit, Name: name, Paths: []string{filepath.Join(d.Git(), e.Name())}, lock: d.useLock(KindGit, e.Name())})
	}
	for _, e := range list(d.Archives()) {
		add(Entry{Kind: KindArchive, Name: e.Name(), Paths: []string{filepath.Join(d.Archives(), e.Name())}})
	}
	for _, e := range list(d.Trees()) {
		name := e.Name()
		var info struct {
			Target, Builder string
			Used            time.Time
		}
		data, err := os.ReadFile(filepath.Join(d.Trees(), e.Name(), "info.json"))
		if err == nil && json.Unmarshal(data, &info) == nil && info.Target != "" {
			name = info.Target + " (" + e.Name() + ")"
		}
		add(Entry{Kind: KindTree, Name: name, Paths: []string{filepath.Join(d.Trees(), e.Name())}, Used: info.Used, lock: d.useLock(KindTree, e.Name())})
	}
	// Open makes an empty blobs/: that is no entry.
	if es, _ := os.ReadDir(d.BlobsDir()); len(es) > 0 {
		add(Entry{Kind: KindBlobs, Name: "image blobs", Paths: []string{d.BlobsDir()}, lock: d.useLock(KindBlobs, "store")})
	}
	for _, e := range list(d.Logs()) {
		add(Entry{Kind: KindLog, Name: e.Name(), Paths: []string{filepath.Join(d.Logs(), e.Name())}})
	}
	for _, e := range list(d.Work()) {
		add(Entry{Kind: KindWork, Name: e.Name(), Paths: []string{filepath.Join(d.Work(), e.Name())}})
	}
	order := []string{KindRootfs, KindSource, KindGit, KindArchive, KindTree, KindBlobs, KindLog, KindWork}
	slices.SortStableFunc(out, func(a, b Entry) int {
		if c := slices.Index(order, a.Kind) - slices.Index(order, b.Kind); c != 0 {
			return c
		}
		return b.Used.Compare(a.Used)
	})
	return out, nil
}

// ErrInUse is returned by Remove for an entry a build is using.
var ErrInUse = errors.New("in use by a running build")

// tryLockExclusive takes an exclusive lock on file, or fails with ErrInUse
// while a build holds it.
func tryLockExclusive(file string) (func(), error) {
	unlock, err := flock.TryExclusive(file)
	switch {
	case errors.Is(err, flock.ErrBusy):
		return nil, ErrInUse
	case errors.Is(err, fs.ErrNotExist):
		return func() {}, nil // the entry's directory is gone: nobody holds it
	}
	return unlock, err
}

// Remove removes an entry Entries listed, unless a build uses it
// (ErrInUse). remove deletes a tree that may hold files of other owners
// (a rootless build's subordinate ids). Scratch space (KindWork) has no
// lock and is never removed: a build may be writing it.
func (d Dir) Remove(e Entry, remove func(string) error) error {
	if e.Kind == KindWork {
		return ErrInUse
	}
	for _, p := range e.Paths {
		if !within(d.root, p) {
			return fmt.Errorf("cache: %s is not in %s", p, d.root)
		}
	}
	if e.lock != "" {
		unlock, err := tryLockExclusive(e.lock)
		if err != nil {
			return err
		}
		defer unlock()
	}
	// Renamed out of the way first, so that no build finds half an entry.
	trash, err := os.MkdirTemp(d.Work(), "prune-")
	if err != nil {
		return fmt.Errorf("cache: %w", err)
	}
	defer remove(trash)
	for i, p := range e.Paths {
		if err := os.Rename(p, filepath.Join(trash, fmt.Sprint(i))); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("cache: remove %s: %w", p, err)
		}
	}
	if err := remove(trash); err != nil {
		return fmt.Errorf("cache: remove %s: %w", e.Name, err)
	}
	return nil
}

func within(root, p string) bool {
	rel, err := filepath.Rel(root, p)
	return err == nil && rel != "." && !strings.HasPrefix(rel, "..")
}

// PruneOptions say what Prune removes.
type PruneOptions struct {
	// OlderThan removes what no build used for that long; 0 keeps all.
	OlderThan time.Duration
	// MaxSize then removes the least recently used entries until the
	// cache holds at most that many bytes; 0 sets no limit.
	MaxSize int64
	// Now is the time OlderThan counts from.
	Now time.Time
}

// Select picks the entries to remove, oldest use first. What is in use
// (scratch space always) is never picked, but counts towards the size.
func Select(entries []Entry, o PruneOptions) []Entry {
	byAge := slices.Clone(entries)
	slices.SortStableFunc(byAge, func(a, b Entry) int { return a.Used.Compare(b.Used) })
	var total int64
	for _, e := range entries {
		total += e.Size
	}
	var out []Entry
	for _, e := range byAge {
		if e.InUse || e.Kind == KindWork {
			continue
		}
		old := o.OlderThan > 0 && o.Now.Sub(e.Used) > o.OlderThan
		big := o.MaxSize > 0 && total > o.MaxSize
		if old || big {
			out = append(out, e)
			total -= e.Size
		}
	}
	return out
}
