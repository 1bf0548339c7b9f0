package cachedir

import (
	"os"
	"path/filepath"
	"testing"
)

// TestOpenIsPrivate: in a directory everyone may write (a shared --cache-dir
// parent), the cache and all its subdirectories are 0700, also those that
// existed with a wider mode.
func TestOpenIsPrivate(t *testing.T) {
	shared := t.TempDir()
	if err := os.Chmod(shared, 0o1777); err != nil {
		t.Fatal(err)
	}
	for name, prepare := range map[string]func(root string){
		"new":      func(string) {},
		"existing": func(root string) { os.MkdirAll(filepath.Join(root, "rootfs"), 0o755); os.Chmod(root, 0o755) },
	} {
		root := filepath.Join(shared, name, "lkbuild")
		prepare(root)
		d, err := Open(root)
		if err != nil {
			t.Fatal(err)
		}
		if d.Root() != root {
			t.Errorf("root %s, want %s", d.Root(), root)
		}
		for _, p := range append([]string{root}, d.subdirs()...) {
			fi, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm() != 0o700 {
				t.Errorf("%s: %s: mode %v, want 0700", name, p, fi.Mode().Perm())
			}
		}
	}
	file := filepath.Join(shared, "file")
	os.WriteFile(file, nil, 0o644)
	if _, err := Open(file); err == nil {
		t.Errorf("a file as the cache directory was taken")
	}
	if _, err := New(""); err == nil {
		t.Errorf("an empty cache directory was taken")
	}
}
