package oci

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

// FuzzExtractLayer feeds arbitrary bytes to ExtractLayer in a fresh root
// whose parent also holds a sentinel file and directory, and checks that
// nothing outside the root was created, changed or removed. Errors are fine;
// escapes and panics are not. Findings land in testdata/fuzz/FuzzExtractLayer.
//
// A mutated header almost never has a valid checksum, so archive/tar would
// reject nearly every input at once. When the checksums are wrong, the
// input is extracted a second time with them repaired (fixTarChecksums), so
// that mutations of names, types, link targets and modes reach the
// extractor.
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
		checkExtractContained(t, data, hostPasswd)
		if fixed := fixTarChecksums(data); !bytes.Equal(fixed, data) {
			checkExtractContained(t, fixed, hostPasswd)
		}
	})
}

// checkExtractContained extracts data into a fresh root and fails if
// anything outside the root changed.
func checkExtractContained(t *testing.T, data []byte, hostPasswd string) {
	t.Helper()
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
}

// fixTarChecksums returns a copy of b in which every header block, found by
// following the size fields from the start, has a correct checksum.
func fixTarChecksums(b []byte) []byte {
	out := bytes.Clone(b)
	for off := 0; off+512 <= len(out); {
		blk := out[off : off+512]
		off += 512
		if bytes.Count(blk, []byte{0}) == 512 {
			continue
		}
		copy(blk[148:156], "        ")
		sum := 0
		for _, c := range blk {
			sum += int(c)
		}
		copy(blk[148:156], fmt.Sprintf("%06o\x00 ", sum))
		size, err := strconv.ParseInt(strings.Trim(string(blk[124:136]), " \x00"), 8, 64)
		if err != nil || size < 0 || size > int64(len(out)) {
			size = 0
		}
		off += int(size+511) / 512 * 512
	}
	return out
}

func TestExtractFixTarChecksums(t *testing.T) {
	good := buildTar(t, tFile("a", "x", 0o644), tSymlink("l", "a"))
	bad := bytes.Clone(good)
	for i := 0; i+512 <= len(bad); i += 512 {
		if bytes.HasPrefix(bad[i:], []byte("l\x00")) {
			bad[i] = 'm' // a mutated name, the checksum now wrong
		}
	}
	var err error
	for tr := tar.NewReader(bytes.NewReader(bad)); err == nil; {
		_, err = tr.Next()
	}
	if !errors.Is(err, tar.ErrHeader) {
		t.Fatalf("mutated archive: %v, want a header error", err)
	}
	var names []string
	tr := tar.NewReader(bytes.NewReader(fixTarChecksums(bad)))
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("repaired archive: %v", err)
		}
		names = append(names, hdr.Name)
	}
	if strings.Join(names, ",") != "a,m" {
		t.Errorf("repaired archive has %q, want a,m", names)
	}
}
