package oci

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// tarEntry is one entry of a test archive: a header and, for regular files,
// a body (Size is set from it).
type tarEntry struct {
	hdr  tar.Header
	body string
}

var testMtime = time.Unix(1700000000, 0)

func tDir(name string, mode int64) tarEntry {
	return tarEntry{hdr: tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: mode, ModTime: testMtime}}
}

func tFile(name, body string, mode int64) tarEntry {
	return tarEntry{hdr: tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, ModTime: testMtime}, body: body}
}

func tSymlink(name, target string) tarEntry {
	return tarEntry{hdr: tar.Header{Typeflag: tar.TypeSymlink, Name: name, Linkname: target, Mode: 0o777, ModTime: testMtime}}
}

func tHardlink(name, target string) tarEntry {
	return tarEntry{hdr: tar.Header{Typeflag: tar.TypeLink, Name: name, Linkname: target, ModTime: testMtime}}
}

func tNode(name string, typ byte, major, minor int64) tarEntry {
	return tarEntry{hdr: tar.Header{Typeflag: typ, Name: name, Mode: 0o640, Devmajor: major, Devminor: minor, ModTime: testMtime}}
}

// buildTar writes the entries as a tar archive in memory. Names are used as
// given, however hostile.
func buildTar(t testing.TB, entries ...tarEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		hdr := e.hdr
		hdr.Size = int64(len(e.body))
		hdr.Format = tar.FormatPAX
		if err := tw.WriteHeader(&hdr); err != nil {
			t.Fatalf("tar header %q: %v", hdr.Name, err)
		}
		if _, err := io.WriteString(tw, e.body); err != nil {
			t.Fatalf("tar body %q: %v", hdr.Name, err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// privileged says whether the extractor's defaults preserve ownership and
// create devices here: as root in CI, not as an unprivileged user. Each
// mode-dependent test checks the behaviour of the mode it runs in.
func privileged() bool { return runningAsRealRoot() }

// sandbox is a parent directory holding the extraction root and an
// "outside" directory with a sentinel file next to it.
type sandbox struct {
	parent, root, outside string
	before                map[string]string
}

const sentinelBody = "sentinel: must not change\n"

func newSandbox(t testing.TB) *sandbox {
	t.Helper()
	parent := t.TempDir()
	s := &sandbox{
		parent:  parent,
		root:    filepath.Join(parent, "root"),
		outside: filepath.Join(parent, "outside"),
	}
	if err := os.MkdirAll(filepath.Join(s.outside, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"secret", "etc/passwd"} {
		if err := os.WriteFile(filepath.Join(s.outside, f), []byte(sentinelBody), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(s.root, 0o755); err != nil {
		t.Fatal(err)
	}
	s.before = s.snapshotOutside(t)
	return s
}

// snapshotOutside describes everything in parent except root/, with file
// contents, modes and mtimes.
func (s *sandbox) snapshotOutside(t testing.TB) map[string]string {
	t.Helper()
	snap := map[string]string{}
	err := filepath.WalkDir(s.parent, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == s.root {
			return fs.SkipDir
		}
		rel, _ := filepath.Rel(s.parent, p)
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		desc := fi.Mode().String() + " " + fi.ModTime().String()
		if fi.Mode().IsRegular() {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			desc += " " + string(b)
		}
		snap[rel] = desc
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return snap
}

// checkOutside fails if anything outside the root was created, removed or
// changed, or if the root is no longer a real directory.
func (s *sandbox) checkOutside(t testing.TB) {
	t.Helper()
	if after := s.snapshotOutside(t); !reflect.DeepEqual(s.before, after) {
		t.Errorf("outside the root changed:\nbefore %v\nafter  %v", s.before, after)
	}
	if fi, err := os.Lstat(s.root); err != nil || !fi.IsDir() {
		t.Errorf("root is no longer a directory: %v, %v", fi, err)
	}
}

func hashFile(t testing.TB, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		return "error: " + err.Error()
	}
	sum := sha256.Sum256(b)
	return string(sum[:])
}

func readFile(t testing.TB, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Errorf("read %s: %v", p, err)
	}
	return string(b)
}

func TestExtractLayerHostile(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("extraction is only supported on Linux")
	}
	hostPasswd := hashFile(t, "/etc/passwd")
	// OUT is replaced by the absolute path of the outside directory.
	tests := []struct {
		name    string
		entries []tarEntry
		wantErr error // nil, or matched with errors.Is
		check   func(t *testing.T, root, outside string)
	}{{
		name:    "dotdot name",
		entries: []tarEntry{tFile("../escape", "pwned", 0o644)},
		wantErr: ErrUnsafePath,
	}, {
		name:    "dotdot inside name",
		entries: []tarEntry{tFile("a/../../outside/secret", "pwned", 0o644)},
		wantErr: ErrUnsafePath,
	}, {
		name:    "dotdot after absolute",
		entries: []tarEntry{tFile("/../outside/secret", "pwned", 0o644)},
		wantErr: ErrUnsafePath,
	}, {
		name:    "absolute name is clamped",
		entries: []tarEntry{tFile("/abs/name", "inside", 0o644)},
		check: func(t *testing.T, root, _ string) {
			if got := readFile(t, filepath.Join(root, "abs/name")); got != "inside" {
				t.Errorf("abs/name = %q", got)
			}
		},
	}, {
		name:    "harmless dotdot",
		entries: []tarEntry{tFile("a/../b", "inside", 0o644)},
		check: func(t *testing.T, root, _ string) {
			if got := readFile(t, filepath.Join(root, "b")); got != "inside" {
				t.Errorf("b = %q", got)
			}
		},
	}, {
		name: "write through absolute symlink",
		entries: []tarEntry{
			tSymlink("link", "OUT"),
			tFile("link/secret", "pwned", 0o644),
		},
		check: func(t *testing.T, root, outside string) {
			// The link resolves inside the root, as in a chroot.
			if got := readFile(t, filepath.Join(root, outside, "secret")); got != "pwned" {
				t.Errorf("root%s/secret = %q", outside, got)
			}
		},
	}, {
		name: "write through relative symlink",
		entries: []tarEntry{
			tSymlink("link", "../../.."),
			tFile("link/escape", "pwned", 0o644),
			tFile("link/outside/secret", "pwned", 0o644),
		},
		check: func(t *testing.T, root, _ string) {
			if got := readFile(t, filepath.Join(root, "escape")); got != "pwned" {
				t.Errorf("escape = %q", got)
			}
		},
	}, {
		name: "write through /etc symlink",
		entries: []tarEntry{
			tSymlink("link", "/etc"),
			tFile("link/passwd", "pwned", 0o644),
		},
		check: func(t *testing.T, root, _ string) {
			if got := readFile(t, filepath.Join(root, "etc/passwd")); got != "pwned" {
				t.Errorf("etc/passwd = %q", got)
			}
		},
	}, {
		name: "symlinked parent dir",
		entries: []tarEntry{
			tDir("d/", 0o755),
			tSymlink("d/up", "../../outside"),
			tFile("d/up/sub/secret", "pwned", 0o644),
			tDir("d/up/newdir/", 0o755),
		},
		check: func(t *testing.T, root, _ string) {
			if got := readFile(t, filepath.Join(root, "outside/sub/secret")); got != "pwned" {
				t.Errorf("outside/sub/secret = %q", got)
			}
		},
	}, {
		name: "symlink chain",
		entries: []tarEntry{
			tSymlink("a", "/"),
			tSymlink("b", "a/../../../outside"),
			tSymlink("c", "b/etc"),
			tFile("c/passwd", "pwned", 0o644),
		},
		check: func(t *testing.T, root, _ string) {
			if got := readFile(t, filepath.Join(root, "outside/etc/passwd")); got != "pwned" {
				t.Errorf("outside/etc/passwd = %q", got)
			}
		},
	}, {
		name:    "hard link to /etc/passwd",
		entries: []tarEntry{tHardlink("hl", "/etc/passwd")},
		wantErr: fs.ErrNotExist, // read as <root>/etc/passwd, which is missing
	}, {
		name: "hard link to /etc/passwd of the root",
		entries: []tarEntry{
			tFile("etc/passwd", "inside", 0o644),
			tHardlink("hl", "/etc/passwd"),
		},
		check: func(t *testing.T, root, _ string) {
			if got := readFile(t, filepath.Join(root, "hl")); got != "inside" {
				t.Errorf("hl = %q", got)
			}
		},
	}, {
		name:    "hard link to outside",
		entries: []tarEntry{tHardlink("hl", "../../outside/secret")},
		wantErr: ErrUnsafePath,
	}, {
		name: "hard link through symlink",
		entries: []tarEntry{
			tSymlink("link", "OUT"),
			tHardlink("hl", "link/secret"),
		},
		wantErr: fs.ErrNotExist,
	}, {
		name: "hard link to symlink",
		entries: []tarEntry{
			tSymlink("link", "OUT/secret"),
			tHardlink("hl", "link"),
		},
		wantErr: ErrUnsafePath,
	}, {
		name: "hard link to dir",
		entries: []tarEntry{
			tDir("d/", 0o755),
			tHardlink("hl", "d"),
		},
		wantErr: ErrUnsafePath,
	}, {
		name: "hard link replaces symlink",
		entries: []tarEntry{
			tSymlink("link", "OUT/secret"),
			tFile("f", "inside", 0o644),
			tHardlink("link", "f"),
		},
		check: func(t *testing.T, root, _ string) {
			if got := readFile(t, filepath.Join(root, "link")); got != "inside" {
				t.Errorf("link = %q", got)
			}
		},
	}, {
		name:    "whiteout dotdot",
		entries: []tarEntry{tFile(".wh...", "", 0o644)},
		wantErr: ErrUnsafePath,
	}, {
		name:    "whiteout dot",
		entries: []tarEntry{tFile("a/.wh..", "", 0o644)},
		wantErr: ErrUnsafePath,
	}, {
		name:    "whiteout in escaping dir",
		entries: []tarEntry{tFile("../outside/.wh.secret", "", 0o644)},
		wantErr: ErrUnsafePath,
	}, {
		name: "whiteout through symlink",
		entries: []tarEntry{
			tSymlink("link", "OUT"),
			tFile("link/.wh.secret", "", 0o644),
			tSymlink("up", "../outside"),
			tFile("up/.wh.secret", "", 0o644),
		},
	}, {
		name: "opaque dir through symlink",
		entries: []tarEntry{
			tSymlink("link", "OUT"),
			tFile("link/.wh..wh..opq", "", 0o644),
			tSymlink("up", "../outside"),
			tFile("up/.wh..wh..opq", "", 0o644),
		},
	}, {
		name: "symlink loop",
		entries: []tarEntry{
			tSymlink("a", "b"),
			tSymlink("b", "a"),
			tFile("a/x", "pwned", 0o644),
		},
		wantErr: syscall.ELOOP,
	}, {
		name: "file replaces absolute symlink",
		entries: []tarEntry{
			tSymlink("link", "OUT/secret"),
			tFile("link", "replaced", 0o644),
		},
		check: func(t *testing.T, root, _ string) {
			if fi, err := os.Lstat(filepath.Join(root, "link")); err != nil || !fi.Mode().IsRegular() {
				t.Fatalf("link: %v %v", fi, err)
			}
			if got := readFile(t, filepath.Join(root, "link")); got != "replaced" {
				t.Errorf("link = %q", got)
			}
		},
	}, {
		name: "file replaces relative symlink",
		entries: []tarEntry{
			tSymlink("link", "../outside/secret"),
			tFile("link", "replaced", 0o644),
		},
		check: func(t *testing.T, root, _ string) {
			if got := readFile(t, filepath.Join(root, "link")); got != "replaced" {
				t.Errorf("link = %q", got)
			}
		},
	}, {
		name: "dir replaces symlink",
		entries: []tarEntry{
			tSymlink("link", "OUT"),
			tFile("link/secret", "inside", 0o644),
			tDir("link/", 0o755),
			tFile("link/secret", "replaced", 0o644),
		},
		check: func(t *testing.T, root, _ string) {
			if fi, err := os.Lstat(filepath.Join(root, "link")); err != nil || !fi.IsDir() {
				t.Fatalf("link: %v %v", fi, err)
			}
			if got := readFile(t, filepath.Join(root, "link/secret")); got != "replaced" {
				t.Errorf("link/secret = %q", got)
			}
		},
	}, {
		name: "symlink replaced after use as parent",
		entries: []tarEntry{
			tDir("real/", 0o755),
			tSymlink("link", "real"),
			tFile("link/a", "a", 0o644),
			tSymlink("link", "OUT"),
			tFile("link/secret", "pwned", 0o644),
		},
		check: func(t *testing.T, root, outside string) {
			if got := readFile(t, filepath.Join(root, "real/a")); got != "a" {
				t.Errorf("real/a = %q", got)
			}
			if got := readFile(t, filepath.Join(root, outside, "secret")); got != "pwned" {
				t.Errorf("root%s/secret = %q", outside, got)
			}
		},
	}, {
		name: "fifo through symlink",
		entries: []tarEntry{
			tSymlink("link", "OUT"),
			tNode("link/fifo", tar.TypeFifo, 0, 0),
		},
	}, {
		name:    "file replaces root",
		entries: []tarEntry{tFile(".", "x", 0o644)},
		wantErr: ErrUnsafePath,
	}, {
		name:    "symlink replaces root",
		entries: []tarEntry{tSymlink("a/..", "OUT")},
		wantErr: ErrUnsafePath,
	}, {
		name:    "file under a file",
		entries: []tarEntry{tFile("f", "x", 0o644), tFile("f/g", "y", 0o644)},
		wantErr: syscall.ENOTDIR,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSandbox(t)
			for i := range tt.entries {
				h := &tt.entries[i].hdr
				h.Linkname = strings.ReplaceAll(h.Linkname, "OUT", s.outside)
			}
			_, err := ExtractLayer(context.Background(), bytes.NewReader(buildTar(t, tt.entries...)), s.root)
			t.Logf("error: %v", err)
			switch {
			case tt.wantErr == nil && err != nil:
				t.Errorf("ExtractLayer: %v", err)
			case tt.wantErr != nil && !errors.Is(err, tt.wantErr):
				t.Errorf("ExtractLayer: got error %v, want %v", err, tt.wantErr)
			}
			s.checkOutside(t)
			if got := hashFile(t, "/etc/passwd"); got != hostPasswd {
				t.Fatalf("host /etc/passwd changed")
			}
			if tt.check != nil {
				tt.check(t, s.root, s.outside)
			}
		})
	}
}

// treeOf describes the tree under root, one line per entry, for comparisons.
func treeOf(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == root {
			return nil
		}
		rel, _ := filepath.Rel(root, p)
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			out = append(out, rel+" -> "+target)
		case d.IsDir():
			out = append(out, rel+"/")
		default:
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			out = append(out, rel+" = "+string(b))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

// gzipBytes and zstdBytes compress a layer for the in-memory images.
func gzipBytes(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func zstdBytes(t testing.TB, b []byte) []byte {
	t.Helper()
	zw, err := zstd.NewWriter(nil)
	if err != nil {
		t.Fatal(err)
	}
	return zw.EncodeAll(b, nil)
}

// imageOf builds an image from layers given as tar bytes, compressed as
// named: "gzip", "zstd" or "none".
func imageOf(t testing.TB, compression string, layers ...[]byte) v1.Image {
	t.Helper()
	img := empty.Image
	for _, b := range layers {
		var (
			l   v1.Layer
			err error
		)
		switch compression {
		case "gzip":
			z := gzipBytes(t, b)
			l, err = tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(z)), nil },
				tarball.WithMediaType(types.OCILayer))
		case "zstd":
			z := zstdBytes(t, b)
			l, err = tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(z)), nil },
				tarball.WithMediaType(types.OCILayerZStd))
		default:
			l = static.NewLayer(b, types.OCIUncompressedLayer)
		}
		if err != nil {
			t.Fatal(err)
		}
		if img, err = mutate.AppendLayers(img, l); err != nil {
			t.Fatal(err)
		}
	}
	return img
}

func TestExtractWhiteouts(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("extraction is only supported on Linux")
	}
	lower := buildTar(t,
		tDir("a/", 0o755),
		tFile("a/f1", "1", 0o644),
		tFile("a/f2", "2", 0o644),
		tFile("c", "c", 0o644),
		tDir("d/", 0o755),
		tFile("d/old", "old", 0o644),
		tDir("d/sub/", 0o755),
		tFile("d/sub/old", "old", 0o644),
		tDir("e/", 0o755),
		tDir("e/deep/", 0o755),
		tFile("e/deep/x", "x", 0o644),
		tDir("o/", 0o755),
		tFile("o/old", "old", 0o644),
		tSymlink("s", "a"),
		tFile("kept", "lower", 0o644),
		tDir("ro/", 0o555),
		tFile("ro/gone", "gone", 0o444),
	)
	upper := buildTar(t,
		tFile("a/.wh.f1", "", 0o644),
		tFile(".wh.c", "", 0o644),
		// Opaque dir whose new entries come before the marker.
		tFile("d/new", "new", 0o644),
		tFile("d/sub/new", "new", 0o644),
		tFile("d/.wh..wh..opq", "", 0o644),
		tFile("d/after", "after", 0o644),
		// A whole directory removed.
		tFile(".wh.e", "", 0o644),
		// Opaque marker first, new entries after.
		tDir("o/", 0o755),
		tFile("o/.wh..wh..opq", "", 0o644),
		tFile("o/new", "new", 0o644),
		// A whiteout applies to lower layers only, not to a sibling
		// entry of its own layer, in either order.
		tFile("kept", "upper", 0o644),
		tFile(".wh.kept", "", 0o644),
		tFile(".wh.fresh", "", 0o644),
		tFile("fresh", "fresh", 0o644),
		// A whiteout of something absent, and aufs metadata.
		tFile(".wh.nothing", "", 0o644),
		tFile("nowhere/.wh.x", "", 0o644),
		tFile(".wh..wh.plnk", "", 0o644),
		// The symlink removed, not its target.
		tFile(".wh.s", "", 0o644),
		// A whiteout inside a read-only directory.
		tFile("ro/.wh.gone", "", 0o644),
	)
	want := []string{
		"a/", "a/f2 = 2",
		"d/", "d/after = after", "d/new = new", "d/sub/", "d/sub/new = new",
		"fresh = fresh", "kept = upper",
		"o/", "o/new = new",
		"ro/",
	}
	for _, comp := range []string{"gzip", "zstd", "none"} {
		t.Run(comp, func(t *testing.T) {
			s := newSandbox(t)
			var progress []int
			stats, err := Extract(context.Background(), imageOf(t, comp, lower, upper), s.root,
				WithLayerProgress(func(i, n int) { progress = append(progress, i, n) }))
			if err != nil {
				t.Fatalf("Extract: %v", err)
			}
			if got := treeOf(t, s.root); !reflect.DeepEqual(got, want) {
				t.Errorf("tree:\n got %q\nwant %q", got, want)
			}
			// f1, c, d/old, d/sub/old, e, o/old, s, ro/gone.
			if stats.Whiteouts != 8 {
				t.Errorf("Whiteouts = %d, want 8", stats.Whiteouts)
			}
			if !reflect.DeepEqual(progress, []int{1, 2, 2, 2}) {
				t.Errorf("progress = %v", progress)
			}
			s.checkOutside(t)
		})
	}
}

func TestExtractLayerKinds(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("extraction is only supported on Linux")
	}
	s := newSandbox(t)
	mtime := time.Unix(1600000000, 123456789)
	entries := []tarEntry{
		tDir("./", 0o755),
		tDir("usr/", 0o755),
		tDir("usr/bin/", 0o755),
		tFile("usr/bin/busybox", "bb", 0o755),
		tHardlink("usr/bin/ls", "usr/bin/busybox"),
		tHardlink("usr/bin/cat", "/usr/bin/busybox"),
		tSymlink("bin", "/usr/bin"),
		// Written through the absolute symlink: lands in usr/bin.
		tFile("bin/sh", "sh", 0o755),
		tSymlink("sbin", "usr/bin"),
		tHardlink("bin/true", "sbin/busybox"),
		tSymlink("dangling", "/nowhere"),
		tFile("implicit/parent/file", "x", 0o600),
		// Replacements within the layer.
		tFile("twice", "first", 0o644),
		tFile("twice", "second", 0o600),
		tDir("dirthenfile/", 0o755),
		tFile("dirthenfile/x", "x", 0o644),
		tFile("dirthenfile", "file", 0o644),
	}
	last := tSymlink("timed", "usr")
	last.hdr.ModTime = mtime
	entries = append(entries, last)
	stats, err := ExtractLayer(context.Background(), bytes.NewReader(buildTar(t, entries...)), s.root)
	if err != nil {
		t.Fatalf("ExtractLayer: %v", err)
	}
	want := []string{
		"bin -> /usr/bin", "dangling -> /nowhere", "dirthenfile = file",
		"implicit/", "implicit/parent/", "implicit/parent/file = x",
		"sbin -> usr/bin", "timed -> usr", "twice = second",
		"usr/", "usr/bin/", "usr/bin/busybox = bb", "usr/bin/cat = bb", "usr/bin/ls = bb",
		"usr/bin/sh = sh", "usr/bin/true = bb",
	}
	if got := treeOf(t, s.root); !reflect.DeepEqual(got, want) {
		t.Errorf("tree:\n got %q\nwant %q", got, want)
	}
	wantStats := ExtractStats{Files: 7, Dirs: 4, Symlinks: 4, Hardlinks: 3, Bytes: 2 + 2 + 1 + 5 + 6 + 1 + 4}
	if stats != wantStats {
		t.Errorf("stats = %+v, want %+v", stats, wantStats)
	}
	bb, err := os.Stat(filepath.Join(s.root, "usr/bin/busybox"))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range []string{"ls", "cat", "true"} {
		fi, err := os.Stat(filepath.Join(s.root, "usr/bin", l))
		if err != nil || !os.SameFile(bb, fi) {
			t.Errorf("usr/bin/%s is not a hard link of busybox: %v", l, err)
		}
	}
	if !bb.ModTime().Equal(testMtime) {
		t.Errorf("busybox mtime = %v, want %v", bb.ModTime(), testMtime)
	}
	if fi, err := os.Lstat(filepath.Join(s.root, "timed")); err != nil || !fi.ModTime().Equal(mtime) {
		t.Errorf("symlink mtime = %v (%v), want %v", fi.ModTime(), err, mtime)
	}
	if fi, err := os.Stat(filepath.Join(s.root, "usr")); err != nil || !fi.ModTime().Equal(testMtime) {
		t.Errorf("dir mtime = %v (%v), want %v", fi.ModTime(), err, testMtime)
	}
	for p, mode := range map[string]fs.FileMode{"implicit": 0o755, "implicit/parent/file": 0o600, "twice": 0o600} {
		if fi, err := os.Lstat(filepath.Join(s.root, p)); err != nil || fi.Mode().Perm() != mode {
			t.Errorf("%s mode = %v (%v), want %v", p, fi.Mode(), err, mode)
		}
	}
	s.checkOutside(t)
}

func TestExtractLayerHardlinkCopy(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("extraction is only supported on Linux")
	}
	s := newSandbox(t)
	layer := buildTar(t,
		tFile("a", "content", 0o751),
		tSymlink("b", "/x/secret"),
		tHardlink("b", "a"),
		tHardlink("a", "a"),
	)
	noLink := func(int, string, int, string) error { return syscall.EMLINK }
	stats, err := ExtractLayer(context.Background(), bytes.NewReader(layer), s.root, withLinkFunc(noLink))
	if err != nil {
		t.Fatalf("ExtractLayer: %v", err)
	}
	if stats.Hardlinks != 2 {
		t.Errorf("Hardlinks = %d, want 2", stats.Hardlinks)
	}
	a, errA := os.Lstat(filepath.Join(s.root, "a"))
	b, errB := os.Lstat(filepath.Join(s.root, "b"))
	if errA != nil || errB != nil {
		t.Fatal(errA, errB)
	}
	if os.SameFile(a, b) || b.Mode() != 0o751 || !b.ModTime().Equal(testMtime) {
		t.Errorf("copy: same file %v, mode %v, mtime %v", os.SameFile(a, b), b.Mode(), b.ModTime())
	}
	if got := readFile(t, filepath.Join(s.root, "b")); got != "content" {
		t.Errorf("b = %q", got)
	}
	s.checkOutside(t)
}

func TestExtractLayerModes(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("extraction is only supported on Linux")
	}
	priv := privileged()
	t.Logf("euid %d, privileged defaults: %v", os.Geteuid(), priv)
	owned := func(e tarEntry, uid, gid int) tarEntry {
		e.hdr.Uid, e.hdr.Gid = uid, gid
		return e
	}
	layer := buildTar(t,
		tDir("ro/", 0o555),
		tFile("ro/file", "x", 0o444),
		tDir("ro/sub/", 0o500),
		tFile("ro/sub/file", "y", 0o400),
		tFile("suid", "s", 0o4755),
		tDir("sgid/", 0o2775),
		tDir("tmp/", 0o1777),
		owned(tFile("owned", "o", 0o644), 1234, 5678),
		owned(tSymlink("ownedlink", "owned"), 1234, 5678),
		tNode("dev/null", tar.TypeChar, 1, 3),
		tNode("dev/loop0", tar.TypeBlock, 7, 0),
		tNode("fifo", tar.TypeFifo, 0, 0),
	)
	// A second layer writes into the read-only directories.
	layer2 := buildTar(t,
		tFile("ro/new", "n", 0o644),
		tFile("ro/sub/.wh.file", "", 0o644),
	)
	run := func(t *testing.T, priv bool, opts ...ExtractOption) {
		s := newSandbox(t)
		stats, err := Extract(context.Background(), imageOf(t, "gzip", layer, layer2), s.root, opts...)
		if err != nil {
			t.Fatalf("Extract: %v", err)
		}
		modes := map[string]fs.FileMode{
			"ro/file": 0o444, "ro/new": 0o644, "fifo": fs.ModeNamedPipe | 0o640,
		}
		if priv {
			modes["ro"] = fs.ModeDir | 0o555
			modes["ro/sub"] = fs.ModeDir | 0o500
			modes["suid"] = fs.ModeSetuid | 0o755
			modes["sgid"] = fs.ModeDir | fs.ModeSetgid | 0o775
			modes["tmp"] = fs.ModeDir | fs.ModeSticky | 0o777
			modes["dev/null"] = fs.ModeDevice | fs.ModeCharDevice | 0o640
			modes["dev/loop0"] = fs.ModeDevice | 0o640
		} else {
			// Special bits stripped; directories keep owner rwx.
			modes["ro"] = fs.ModeDir | 0o755
			modes["ro/sub"] = fs.ModeDir | 0o700
			modes["suid"] = 0o755
			modes["sgid"] = fs.ModeDir | 0o775
			modes["tmp"] = fs.ModeDir | 0o777
		}
		for p, want := range modes {
			fi, err := os.Lstat(filepath.Join(s.root, p))
			if err != nil {
				t.Errorf("%s: %v", p, err)
				continue
			}
			if fi.Mode() != want {
				t.Errorf("%s mode = %v, want %v", p, fi.Mode(), want)
			}
		}
		if _, err := os.Lstat(filepath.Join(s.root, "ro/sub/file")); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("ro/sub/file survived its whiteout: %v", err)
		}
		wantDevs, wantSkipped := 1, 2
		if priv {
			wantDevs, wantSkipped = 3, 0
		}
		if stats.Devices != wantDevs || stats.SkippedDevices != wantSkipped {
			t.Errorf("Devices, SkippedDevices = %d, %d, want %d, %d", stats.Devices, stats.SkippedDevices, wantDevs, wantSkipped)
		}
		if !priv {
			if _, err := os.Lstat(filepath.Join(s.root, "dev/null")); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("dev/null created without privilege: %v", err)
			}
		}
		wantUID, wantGID := os.Geteuid(), os.Getegid()
		if priv {
			wantUID, wantGID = 1234, 5678
		}
		for _, p := range []string{"owned", "ownedlink"} {
			fi, err := os.Lstat(filepath.Join(s.root, p))
			if err != nil {
				t.Fatal(err)
			}
			st := fi.Sys().(*syscall.Stat_t)
			if int(st.Uid) != wantUID || int(st.Gid) != wantGID {
				t.Errorf("%s owner = %d:%d, want %d:%d", p, st.Uid, st.Gid, wantUID, wantGID)
			}
		}
		s.checkOutside(t)
		// The same user can remove the tree (t.TempDir would fail otherwise).
		if err := os.RemoveAll(s.root); err != nil {
			t.Errorf("remove extracted tree: %v", err)
		}
	}
	t.Run("defaults", func(t *testing.T) { run(t, priv) })
	if priv {
		t.Run("no ownership, no devices", func(t *testing.T) {
			o, err := makeExtractOptions([]ExtractOption{WithOwnership(false), WithDevices(false)})
			if err != nil || o.ownership || o.devices || o.rootless {
				t.Fatalf("options = %+v, %v", o, err)
			}
			s := newSandbox(t)
			stats, err := ExtractLayer(context.Background(), bytes.NewReader(layer), s.root, WithOwnership(false), WithDevices(false))
			if err != nil {
				t.Fatal(err)
			}
			if stats.SkippedDevices != 2 {
				t.Errorf("SkippedDevices = %d, want 2", stats.SkippedDevices)
			}
			fi, err := os.Lstat(filepath.Join(s.root, "suid"))
			if err != nil || fi.Mode() != 0o755 {
				t.Errorf("suid mode = %v (%v), want stripped", fi.Mode(), err)
			}
			if st := fi.Sys().(*syscall.Stat_t); st.Uid != 0 {
				t.Errorf("suid owner = %d, want 0", st.Uid)
			}
		})
	}
}

func TestExtractOptions(t *testing.T) {
	if _, err := makeExtractOptions([]ExtractOption{WithLayerProgress(nil)}); err == nil {
		t.Error("WithLayerProgress(nil) accepted")
	}
	o, err := makeExtractOptions(nil)
	if err != nil {
		t.Fatal(err)
	}
	if priv := privileged(); o.ownership != priv || o.devices != priv || o.rootless == priv {
		t.Errorf("defaults %+v for privileged=%v", o, priv)
	}
}

func TestExtractCleanEntryName(t *testing.T) {
	tests := []struct {
		in, want string
		unsafe   bool
	}{
		{"a/b", "a/b", false},
		{"./a/b/", "a/b", false},
		{"/a//b/./c", "a/b/c", false},
		{"././/./a", "a", false},
		{"", "", false},
		{".", "", false},
		{"./", "", false},
		{"/", "", false},
		{"a/..", "", false},
		{"a/../b", "b", false},
		{"a/b/../../c", "c", false},
		{"..", "", true},
		{"../a", "", true},
		{"/../a", "", true},
		{"a/../../b", "", true},
		{"a/../..", "", true},
		{"a\x00b", "", true},
		{"...", "...", false},
		{"..a/b..", "..a/b..", false},
	}
	for _, tt := range tests {
		got, err := cleanEntryName(tt.in)
		if tt.unsafe {
			if !errors.Is(err, ErrUnsafePath) {
				t.Errorf("cleanEntryName(%q) = %q, %v; want ErrUnsafePath", tt.in, got, err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("cleanEntryName(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

func TestExtractParseWhiteout(t *testing.T) {
	tests := []struct {
		base   string
		kind   whiteoutKind
		target string
		unsafe bool
	}{
		{"file", notWhiteout, "", false},
		{".wh.file", whiteoutFile, "file", false},
		{".wh..hidden", whiteoutFile, ".hidden", false},
		{".wh..wh..opq", whiteoutOpaqueDir, "", false},
		{".wh..wh.plnk", whiteoutIgnored, "", false},
		{".wh.", whiteoutFile, "", true},
		{".wh..", whiteoutFile, "", true},
		{".wh...", whiteoutFile, "", true},
	}
	for _, tt := range tests {
		kind, target, err := parseWhiteout(tt.base)
		if kind != tt.kind || target != tt.target || errors.Is(err, ErrUnsafePath) != tt.unsafe {
			t.Errorf("parseWhiteout(%q) = %v, %q, %v", tt.base, kind, target, err)
		}
	}
}

func TestExtractInitialIDMap(t *testing.T) {
	for in, want := range map[string]bool{
		"         0          0 4294967295\n": true,
		"0 1000 1\n":                         false,
		"0 100000 65536\n":                   false,
		"0 0 4294967295\n1 1 1\n":            false,
		"":                                   false,
	} {
		if got := initialIDMap(in); got != want {
			t.Errorf("initialIDMap(%q) = %v", in, got)
		}
	}
}

func TestExtractErrors(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("extraction is only supported on Linux")
	}
	good := buildTar(t, tFile("a", "a", 0o644))
	tests := []struct {
		name    string
		layer   []byte
		wantErr error
	}{
		{"truncated", buildTar(t, tFile("big", strings.Repeat("x", 1000), 0o644))[:1000], io.ErrUnexpectedEOF},
		{"sparse", sparseTar(1 << 40), errors.ErrUnsupported},
		{"unknown type", buildTar(t, tarEntry{hdr: tar.Header{Typeflag: 'Z', Name: "z"}}), errors.ErrUnsupported},
		{"bad owner", buildTar(t, tarEntry{hdr: tar.Header{Typeflag: tar.TypeReg, Name: "o", Uid: 1 << 40}}), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSandbox(t)
			_, err := ExtractLayer(context.Background(), bytes.NewReader(tt.layer), s.root)
			if err == nil || (tt.wantErr != nil && !errors.Is(err, tt.wantErr)) {
				t.Errorf("ExtractLayer: %v, want %v", err, tt.wantErr)
			}
			s.checkOutside(t)
		})
	}
	t.Run("canceled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		s := newSandbox(t)
		if _, err := Extract(ctx, imageOf(t, "gzip", good), s.root); !errors.Is(err, context.Canceled) {
			t.Errorf("Extract: %v, want context.Canceled", err)
		}
	})
	t.Run("long names are shortened", func(t *testing.T) {
		for _, layer := range [][]byte{
			buildTar(t, tFile(strings.Repeat("a", 10000), "x", 0o644)),
			buildTar(t, tFile("f", "x", 0o644), tHardlink("l", strings.Repeat("../", 3000)+"f")),
		} {
			s := newSandbox(t)
			_, err := ExtractLayer(context.Background(), bytes.NewReader(layer), s.root)
			if err == nil {
				t.Fatal("ExtractLayer of a hostile long name succeeded")
			}
			if n := len(err.Error()); n > 1000 {
				t.Errorf("error is %d bytes long: %.200s...", n, err)
			}
			s.checkOutside(t)
		}
	})
	for _, compression := range []string{"gzip", "zstd", "none"} {
		t.Run("diff_id mismatch "+compression, func(t *testing.T) {
			honest := imageOf(t, compression, good)
			layers, err := honest.Layers()
			if err != nil {
				t.Fatal(err)
			}
			other, err := v1.NewHash("sha256:" + strings.Repeat("ab", 32))
			if err != nil {
				t.Fatal(err)
			}
			img, err := mutate.AppendLayers(empty.Image, lyingLayer{layers[0], other})
			if err != nil {
				t.Fatal(err)
			}
			s := newSandbox(t)
			_, err = Extract(context.Background(), img, s.root)
			if !errors.Is(err, ErrDiffIDMismatch) {
				t.Fatalf("Extract: %v, want ErrDiffIDMismatch", err)
			}
			if !strings.Contains(err.Error(), other.String()) {
				t.Errorf("error %q does not name the config's diff_id", err)
			}
			s.checkOutside(t)
		})
	}
	t.Run("corrupt gzip", func(t *testing.T) {
		z := gzipBytes(t, good)
		z[len(z)-5] ^= 0xff // the CRC
		l := static.NewLayer(z, types.OCILayer)
		img, err := mutate.AppendLayers(empty.Image, l)
		if err != nil {
			t.Fatal(err)
		}
		s := newSandbox(t)
		if _, err := Extract(context.Background(), img, s.root); err == nil {
			t.Error("Extract of a layer with a bad CRC succeeded")
		}
	})
}

// sparseTar hand-writes an old GNU sparse entry (which tar.Writer refuses to
// encode) of the given logical size, all hole, followed by the end marker.
func sparseTar(size int64) []byte {
	blk := make([]byte, 512)
	copy(blk, "sparse")
	copy(blk[100:], "0000644\x00")
	copy(blk[108:], "0000000\x00")
	copy(blk[116:], "0000000\x00")
	copy(blk[124:], "00000000000\x00")
	copy(blk[136:], "00000000000\x00")
	blk[156] = tar.TypeGNUSparse
	copy(blk[257:], "ustar  \x00")
	copy(blk[483:], fmt.Sprintf("%011o\x00", size))
	copy(blk[148:], "        ")
	sum := 0
	for _, c := range blk {
		sum += int(c)
	}
	copy(blk[148:], fmt.Sprintf("%06o\x00 ", sum))
	return append(blk, make([]byte, 1024)...)
}

func TestExtractReadahead(t *testing.T) {
	src := bytes.Repeat([]byte("0123456789abcdef"), 100000)
	ra := newReadahead(bytes.NewReader(src), 4096, 3)
	got, err := io.ReadAll(ra)
	ra.Close()
	if err != nil || !bytes.Equal(got, src) {
		t.Fatalf("readahead: %d bytes, %v", len(got), err)
	}
	// Closing early stops the producer.
	ra = newReadahead(bytes.NewReader(src), 4096, 3)
	if _, err := io.ReadFull(ra, make([]byte, 10000)); err != nil {
		t.Fatal(err)
	}
	ra.Close()
}

// lyingLayer is a layer whose image config gives another diff_id than its
// contents have.
type lyingLayer struct {
	v1.Layer
	diffID v1.Hash
}

func (l lyingLayer) DiffID() (v1.Hash, error) { return l.diffID, nil }
