// Package objtree keeps the object tree of a kernel build for the next
// build of the same target, so that a changed patch costs the objects it
// touches and not a whole build.
//
// A build's source tree is an overlay: the verified release at the bottom,
// the patches' upper dir over it, and the build's own upper dir (config,
// objects, generated files) on top. A Slot keeps that top dir and a copy
// of the patches' dir it was built over. The next build applies its
// patches into a fresh dir as always; Reconcile then compares it with the
// kept one and sets the modification times kbuild compares: a file whose
// bytes did not change gets back the time it had when the kept objects
// were built, a changed one gets a time after all of them. kbuild's own
// dependency tracking (fixdep's .cmd files, the per-symbol files of
// include/config, if_changed) then rebuilds exactly what a change
// reaches.
//
// Where that would not give what a clean build gives, Reconcile refuses
// and the caller builds clean: when the patches add or remove a file
// (kbuild does not remove what an old Makefile line built, and
// kernel-dev.tar ships include/ and scripts/ whole), or change a
// Makefile, Kbuild or Kconfig file. A config change is not reconciled at
// all: the slot's key covers the config, for the same reason.
package objtree

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/lkbuild/lkbuild/internal/flock"
)

// ErrBusy is returned by Open when another build holds the slot.
var ErrBusy = errors.New("object tree is in use by another build")

// Names inside a slot directory.
const (
	buildDir   = "build"
	patchedDir = "patched"
	stateFile  = "state.json"
	infoFile   = "info.json"
	lockFile   = "lock"
)

// formatVersion changes when what a slot holds changes meaning; a slot of
// another version is rebuilt clean.
const formatVersion = 1

// Slot is the kept object tree of one target, locked for one build.
type Slot struct {
	dir    string
	unlock func()
	st     *state // nil: nothing usable is kept
}

// state says that build/ is consistent: every object in it was built from
// the patched tree in patched/ as its modification times say.
type state struct {
	Format int `json:"format"`
	// Finished is when the build that left the tree ended; every file it
	// wrote is older.
	Finished time.Time `json:"finished"`
}

// Info describes a slot for people (lkbuild cache): what it was built
// for. It does not decide anything.
type Info struct {
	Target  string    `json:"target"`
	Builder string    `json:"builder"`
	Used    time.Time `json:"used"`
}

// Open locks the slot at dir (created if missing) for one build. It
// returns ErrBusy at once if another build holds it: waiting for a whole
// build is worse than building without it.
func Open(dir string) (*Slot, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("object tree: %w", err)
	}
	unlock, err := flock.TryExclusive(filepath.Join(dir, lockFile))
	if errors.Is(err, flock.ErrBusy) {
		return nil, ErrBusy
	}
	if err != nil {
		return nil, fmt.Errorf("object tree: %w", err)
	}
	s := &Slot{dir: dir, unlock: unlock}
	var st state
	data, err := os.ReadFile(filepath.Join(dir, stateFile))
	if err == nil && json.Unmarshal(data, &st) == nil && st.Format == formatVersion {
		s.st = &st
	}
	return s, nil
}

// Close releases the lock.
func (s *Slot) Close() {
	if s.unlock != nil {
		s.unlock()
		s.unlock = nil
	}
}

// Dir is the slot's directory.
func (s *Slot) Dir() string { return s.dir }

// Upper is the build's upper dir: objects and everything else a build
// writes into the source tree after the patches.
func (s *Slot) Upper() string { return filepath.Join(s.dir, buildDir) }

// Kept reports whether the slot holds a consistent tree to build on.
func (s *Slot) Kept() bool { return s.st != nil }

// Reset empties the slot for a clean build. remove deletes a tree that
// may hold files of other owners (the sandbox's subordinate ids); it is
// called only for trees that exist.
func (s *Slot) Reset(remove func(string) error) error {
	if err := s.invalidate(); err != nil {
		return err
	}
	for _, name := range []string{buildDir, patchedDir} {
		p := filepath.Join(s.dir, name)
		if _, err := os.Lstat(p); errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err := remove(p); err != nil {
			return fmt.Errorf("object tree: empty %s: %w", p, err)
		}
	}
	return os.MkdirAll(s.Upper(), 0o755)
}

// Begin marks the tree as being written: until Commit, a crash or a kill
// leaves it unusable, and the next build starts clean.
func (s *Slot) Begin() error { return s.invalidate() }

func (s *Slot) invalidate() error {
	s.st = nil
	if err := os.Remove(filepath.Join(s.dir, stateFile)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("object tree: %w", err)
	}
	return nil
}

// Commit records that the tree is consistent with patched, the patches'
// upper dir of the build that just wrote it, which it moves into the
// slot (same file system). remove is as for Reset.
func (s *Slot) Commit(patched string, info Info, remove func(string) error) error {
	dst := filepath.Join(s.dir, patchedDir)
	if _, err := os.Lstat(dst); err == nil {
		if err := remove(dst); err != nil {
			return fmt.Errorf("object tree: %w", err)
		}
	}
	if err := os.Rename(patched, dst); err != nil {
		return fmt.Errorf("object tree: keep the patched tree: %w", err)
	}
	if info.Used.IsZero() {
		info.Used = time.Now().UTC().Truncate(time.Second)
	}
	if data, err := json.Marshal(info); err == nil {
		_ = writeAtomic(filepath.Join(s.dir, infoFile), data)
	}
	st := state{Format: formatVersion, Finished: time.Now()}
	data, err := json.Marshal(st)
	if err != nil {
		return err
	}
	if err := writeAtomic(filepath.Join(s.dir, stateFile), data); err != nil {
		return fmt.Errorf("object tree: %w", err)
	}
	s.st = &st
	return nil
}

func writeAtomic(file string, data []byte) error {
	tmp := file + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, file)
}

// ReadInfo reads what Commit recorded about the slot at dir.
func ReadInfo(dir string) (Info, error) {
	var i Info
	data, err := os.ReadFile(filepath.Join(dir, infoFile))
	if err != nil {
		return i, err
	}
	return i, json.Unmarshal(data, &i)
}

// Plan is what Reconcile found: the files whose bytes changed since the
// kept build, or why the tree cannot be built on.
type Plan struct {
	// Changed are the changed files, relative to the tree.
	Changed []string
	// Refused, when not "", says why the build must start clean.
	Refused string
}

// Reconcile compares newPatched, this build's patches' upper dir over the
// release at pristine, with the kept one, and prepares newPatched for the
// kept objects: unchanged files get their kept modification times, changed
// ones a time after the kept build, and a file the old patches changed and
// the new ones do not is copied up from pristine, so that it too looks
// changed. With Plan.Refused set it has changed nothing.
func (s *Slot) Reconcile(newPatched, pristine string) (Plan, error) {
	if s.st == nil {
		return Plan{Refused: "no object tree is kept for this target"}, nil
	}
	old, err := readUpper(filepath.Join(s.dir, patchedDir))
	if err != nil {
		return Plan{}, fmt.Errorf("object tree: read the kept patches: %w", err)
	}
	cur, err := readUpper(newPatched)
	if err != nil {
		return Plan{}, fmt.Errorf("object tree: read the patched tree: %w", err)
	}
	p, err := diff(old, cur, func(rel string) bool {
		_, err := os.Lstat(filepath.Join(pristine, filepath.FromSlash(rel)))
		return err == nil
	})
	if err != nil || p.Refused != "" {
		return p, err
	}
	// After the kept build and after now: the clock may have been set back.
	changedAt := time.Now()
	if f := s.st.Finished.Add(time.Second); changedAt.Before(f) {
		changedAt = f
	}
	for _, rel := range p.Changed {
		if cur[rel] == nil {
			if err := copyUp(newPatched, pristine, rel); err != nil {
				return Plan{}, fmt.Errorf("object tree: %s: %w", rel, err)
			}
		}
		if err := setMtime(newPatched, rel, changedAt); err != nil {
			return Plan{}, fmt.Errorf("object tree: %s: %w", rel, err)
		}
	}
	for rel, n := range cur {
		o := old[rel]
		if n.kind == kindDir || o == nil || slices.Contains(p.Changed, rel) {
			continue
		}
		if err := setMtime(newPatched, rel, o.mtime); err != nil {
			return Plan{}, fmt.Errorf("object tree: %s: %w", rel, err)
		}
	}
	return p, nil
}

type kind int

const (
	kindDir kind = iota + 1
	kindFile
	kindSymlink
	kindWhiteout
)

// entry is one entry of an overlay upper dir.
type entry struct {
	kind  kind
	mode  fs.FileMode
	mtime time.Time
	data  []byte // a file's bytes, a symlink's target
}

// maxPatched bounds what readUpper reads: patches change source files,
// not gigabytes.
const maxPatched = 512 << 20

// readUpper reads an overlay upper dir, following no symlink. An opaque
// directory or an entry of another type is an error: patch makes
// neither.
func readUpper(dir string) (map[string]*entry, error) {
	out := map[string]*entry{}
	var total int64
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == dir {
			return nil
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		e := &entry{mode: info.Mode(), mtime: info.ModTime()}
		switch {
		case info.IsDir():
			e.kind = kindDir
			if opaque(p) {
				return fmt.Errorf("%s: an opaque directory", rel)
			}
		case info.Mode().IsRegular():
			e.kind = kindFile
			if total += info.Size(); total > maxPatched {
				return fmt.Errorf("more than %d MiB of patched files", maxPatched>>20)
			}
			if e.data, err = os.ReadFile(p); err != nil {
				return err
			}
		case info.Mode()&fs.ModeSymlink != 0:
			e.kind = kindSymlink
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			e.data = []byte(target)
		case isWhiteout(info):
			e.kind = kindWhiteout
		default:
			return fmt.Errorf("%s: unexpected file type %v", rel, info.Mode().Type())
		}
		out[rel] = e
		return nil
	})
	return out, err
}

// same reports whether two entries give the tree the same file.
func same(a, b *entry) bool {
	return a.kind == b.kind && a.mode == b.mode && bytes.Equal(a.data, b.data)
}

// diff compares the kept and the new patches' upper dirs. inPristine
// reports whether the release has a path. A path absent from an upper dir
// is the release's file there.
func diff(old, cur map[string]*entry, inPristine func(string) bool) (Plan, error) {
	var p Plan
	paths := map[string]bool{}
	for rel := range old {
		paths[rel] = true
	}
	for rel := range cur {
		paths[rel] = true
	}
	sorted := make([]string, 0, len(paths))
	for rel := range paths {
		sorted = append(sorted, rel)
	}
	slices.Sort(sorted)
	exists := func(e *entry, rel string) bool {
		if e == nil {
			return inPristine(rel)
		}
		return e.kind != kindWhiteout
	}
	for _, rel := range sorted {
		o, n := old[rel], cur[rel]
		if o != nil && n != nil && same(o, n) {
			continue
		}
		if (o != nil && o.kind == kindDir) || (n != nil && n.kind == kindDir) {
			if o != nil && n != nil && o.kind == n.kind {
				continue // a directory's mode: nothing kbuild looks at
			}
			if exists(o, rel) != exists(n, rel) {
				return Plan{Refused: "the patches add or remove directory " + rel}, nil
			}
			if o != nil && n != nil {
				// A directory in one, a file or symlink in the other.
				return Plan{Refused: "the patches change the type of " + rel}, nil
			}
			continue
		}
		if exists(o, rel) != exists(n, rel) {
			return Plan{Refused: "the patches add or remove " + rel}, nil
		}
		if o != nil && n != nil && o.kind != n.kind {
			return Plan{Refused: "the patches change the type of " + rel}, nil
		}
		if (o != nil && o.kind == kindSymlink) || (n != nil && n.kind == kindSymlink) {
			// make looks at the time of what a link points to, which
			// Reconcile does not set.
			return Plan{Refused: "the patches change symlink " + rel}, nil
		}
		if structural(rel) {
			return Plan{Refused: "the patches change " + rel + ", which decides what kbuild builds"}, nil
		}
		p.Changed = append(p.Changed, rel)
	}
	return p, nil
}

// structural reports whether a change to rel can change what kbuild
// builds or which symbols exist, leaving the old build's products behind.
func structural(rel string) bool {
	base := path.Base(rel)
	for _, prefix := range []string{"Makefile", "Kbuild", "Kconfig"} {
		if strings.HasPrefix(base, prefix) {
			return true
		}
	}
	return false
}
