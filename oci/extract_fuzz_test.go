package oci

import (
	"archive/tar"
	"bytes"
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

// FuzzExtractLayer feeds arbitrary bytes to ExtractLayer in a fresh root
// whose parent also holds a sentinel file and directory, and checks that
// nothing outside the root was created, changed or removed. Errors are fine;
// escapes and panics are not. Findings land in testdata/fuzz/FuzzExtractLayer.
//
// Devices are off so that a fuzzing run as root does not create arbitrary
// device nodes; everything else runs with the defaults of the current user.
func FuzzExtractLayer(f *testing.F) {
	if runtime.GOOS != "linux" {
		f.Skip("extraction is only supported on Linux")
	}
	seeds := [][]tarEntry{
		{
			tSymlink("link", "../../.."),
			tFile("link/sentinel", "pwned", 0o644),
			tFile("link/outside/secret", "pwned", 0o644),
		},
		{
			tSymlink("up", "../outside"),
			tFile("up/secret", "pwned", 0o644),
			tDir("up/d/", 0o755),
			tFile("up/.wh.secret", "", 0o644),
			tFile("up/.wh..wh..opq", "", 0o644),
		},
		{
			tSymlink("etc", "/etc"),
			tFile("etc/passwd", "pwned", 0o644),
			tHardlink("hl", "/etc/passwd"),
			tHardlink("hl2", "../sentinel"),
		},
		{
			tFile("../sentinel", "pwned", 0o644),
		},
		{
			tFile(".wh...", "", 0o644),
			tFile("a/.wh..", "", 0o644),
		},
		{
			tSymlink("a", "b"),
			tSymlink("b", "a"),
			tFile("a/x", "x", 0o644),
		},
		{
			tSymlink("s", "../sentinel"),
			tFile("s", "replaced", 0o644),
			tSymlink("t", "../sentinel"),
			tHardlink("t", "s"),
			tDir("s/", 0o755),
		},
		{
			tDir("ro/", 0o555),
			tFile("ro/f", "f", 0o4755),
			tNode("ro/fifo", tar.TypeFifo, 0, 0),
			tNode("ro/null", tar.TypeChar, 1, 3),
			tDir("ro/sub/", 0o000),
			tFile("ro/sub/f", "g", 0o000),
			tFile("ro/.wh.f", "", 0o644),
		},
	}
	for _, s := range seeds {
		f.Add(buildTar(f, s...))
	}
	hostPasswd := hashFile(f, "/etc/passwd")
	f.Fuzz(func(t *testing.T, data []byte) {
		parent := t.TempDir()
		root := filepath.Join(parent, "root")
		sentinel := filepath.Join(parent, "sentinel")
		secret := filepath.Join(parent, "outside", "secret")
		if err := os.Mkdir(root, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Mkdir(filepath.Dir(secret), 0o755); err != nil {
			t.Fatal(err)
		}
		for _, p := range []string{sentinel, secret} {
			if err := os.WriteFile(p, []byte(sentinelBody), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		want := map[string]bool{"root": true, "sentinel": true, "outside": true, "outside/secret": true}
		_, _ = ExtractLayer(context.Background(), bytes.NewReader(data), root, WithDevices(false))

		err := filepath.WalkDir(parent, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if p == parent {
				return nil
			}
			rel, _ := filepath.Rel(parent, p)
			if !want[rel] {
				t.Errorf("created outside the root: %s (%v)", rel, d.Type())
			}
			delete(want, rel)
			if p == root {
				if !d.IsDir() {
					t.Errorf("root replaced by %v", d.Type())
				}
				return fs.SkipDir
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(want) != 0 {
			t.Errorf("removed outside the root: %v", want)
		}
		for _, p := range []string{sentinel, secret} {
			fi, err := os.Lstat(p)
			if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm() != 0o644 {
				t.Errorf("sentinel %s changed: %v, %v", p, fi, err)
				continue
			}
			if b, err := os.ReadFile(p); err != nil || string(b) != sentinelBody {
				t.Errorf("sentinel %s changed: %q, %v", p, b, err)
			}
		}
		if hashFile(t, "/etc/passwd") != hostPasswd {
			t.Fatal("host /etc/passwd changed")
		}
		// Let t.TempDir remove what the archive left, whatever its modes.
		_ = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				_ = os.Chmod(p, 0o700)
			}
			return nil
		})
	})
}
