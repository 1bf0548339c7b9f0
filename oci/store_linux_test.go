package oci

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestOpenStoreRemovesStaleTemps: a partial blob a SIGKILLed pull left
// goes at the next open; one a live writer holds, or one just created,
// stays.
func TestOpenStoreRemovesStaleTemps(t *testing.T) {
	dir := t.TempDir()
	if _, err := OpenStore(dir); err != nil {
		t.Fatal(err)
	}
	blobs := filepath.Join(dir, "blobs", "sha256")
	old := time.Now().Add(-time.Hour)
	mk := func(name string, mtime time.Time) string {
		p := filepath.Join(blobs, name)
		if err := os.WriteFile(p, make([]byte, 1<<20), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, mtime, mtime); err != nil {
			t.Fatal(err)
		}
		return p
	}
	stale := mk(".tmp-killed", old)
	held := mk(".tmp-live", old)
	fresh := mk(".tmp-new", time.Now())
	blob := mk("0000000000000000000000000000000000000000000000000000000000000000", old)
	f, err := os.Open(held)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenStore(dir); err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]bool{stale: false, held: true, fresh: true, blob: true} {
		if _, err := os.Stat(p); (err == nil) != want {
			t.Errorf("%s: exists %v, want %v", filepath.Base(p), err == nil, want)
		}
	}
	// A writer's own temp file is locked while it writes.
	s, _ := OpenStore(dir)
	w, err := s.newBlobWriter()
	if err != nil {
		t.Fatal(err)
	}
	defer w.abort()
	os.Chtimes(w.f.Name(), old, old)
	OpenStore(dir)
	if _, err := os.Stat(w.f.Name()); err != nil {
		t.Errorf("a temp blob being written was removed: %v", err)
	}
}
