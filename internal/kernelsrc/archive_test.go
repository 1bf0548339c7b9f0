package kernelsrc

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lkbuild/lkbuild/kernel"
)

// archiveMirror writes a mirror holding zfs-1.2.3/zfs-1.2.3.tar.gz (the
// entries given, under zfs-1.2.3/) signed by a new key, and returns the
// mirror, the archive and the keyring that trusts the key.
func archiveMirror(t *testing.T, entries []tar.Header) (string, Archive, *kernel.Keyring) {
	t.Helper()
	var b bytes.Buffer
	gz := gzip.NewWriter(&b)
	tw := tar.NewWriter(gz)
	for _, h := range entries {
		h.ModTime = time.Unix(1700000000, 0)
		body := []byte(h.Name + "\n")
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(body))
		}
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			tw.Write(body)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := gz.Close(); err != nil {
		t.Fatal(err)
	}
	key := newKey(t, "OpenZFS")
	sig, err := key.DetachSign(bytes.NewReader(b.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	mirror := t.TempDir()
	a := Archive{Name: "OpenZFS 1.2.3", Tarball: "zfs-1.2.3/zfs-1.2.3.tar.gz", Signature: "zfs-1.2.3/zfs-1.2.3.tar.gz.asc"}
	os.MkdirAll(filepath.Join(mirror, "zfs-1.2.3"), 0o755)
	if err := os.WriteFile(filepath.Join(mirror, a.Tarball), b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(mirror, a.Signature), sig, 0o644); err != nil {
		t.Fatal(err)
	}
	return mirror, a, keyringOf(t, key)
}

var goodArchive = []tar.Header{
	{Typeflag: tar.TypeDir, Name: "zfs-1.2.3/", Mode: 0o755},
	{Typeflag: tar.TypeReg, Name: "zfs-1.2.3/configure", Mode: 0o755},
	{Typeflag: tar.TypeReg, Name: "zfs-1.2.3/META", Mode: 0o644},
	{Typeflag: tar.TypeDir, Name: "zfs-1.2.3/module/", Mode: 0o755},
	{Typeflag: tar.TypeReg, Name: "zfs-1.2.3/module/Makefile.in", Mode: 0o644},
	{Typeflag: tar.TypeSymlink, Name: "zfs-1.2.3/module/link", Linkname: "Makefile.in"},
}

func TestFetchArchive(t *testing.T) {
	mirror, a, keys := archiveMirror(t, goodArchive)
	var requests int
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests++
		http.ServeFile(w, r, filepath.Join(mirror, filepath.FromSlash(strings.TrimPrefix(r.URL.Path, "/"))))
	}))
	defer srv.Close()
	for _, tc := range []struct{ name, mirror string }{{"directory", mirror}, {"http", srv.URL}} {
		t.Run(tc.name, func(t *testing.T) {
			o := Options{Mirror: tc.mirror, Dir: t.TempDir(), Keyring: keys, retryDelay: time.Millisecond}
			tree, err := FetchArchive(context.Background(), o, a)
			if err != nil {
				t.Fatal(err)
			}
			if filepath.Base(tree.Dir) != "zfs-1.2.3" || tree.Cached || len(tree.SHA256) != 64 || !strings.HasSuffix(tree.URL, a.Tarball) {
				t.Errorf("tree %+v", tree)
			}
			if data, err := os.ReadFile(filepath.Join(tree.Dir, "module", "Makefile.in")); err != nil || string(data) != "zfs-1.2.3/module/Makefile.in\n" {
				t.Errorf("Makefile.in: %q, %v", data, err)
			}
			if fi, err := os.Stat(filepath.Join(tree.Dir, "configure")); err != nil || fi.Mode().Perm()&0o100 == 0 {
				t.Errorf("configure is not executable: %v %v", fi, err)
			}
			if l, _ := os.Readlink(filepath.Join(tree.Dir, "module", "link")); l != "Makefile.in" {
				t.Errorf("link -> %q", l)
			}
			// Again, with the mirror gone: from the cache, no request.
			before := requests
			o.Mirror = filepath.Join(t.TempDir(), "gone")
			o.Offline = true
			again, err := FetchArchive(context.Background(), o, a)
			if err != nil || !again.Cached || again.Dir != tree.Dir || again.SHA256 != tree.SHA256 || requests != before {
				t.Errorf("second fetch: %+v, %v (requests %d -> %d)", again, err, before, requests)
			}
			// With keys that do not sign it, the cached tree is not taken on
			// trust: the fetch goes to the mirror (gone: an error).
			o.Keyring = keyringOf(t, newKey(t, "Someone Else"))
			if other, err := FetchArchive(context.Background(), o, a); err == nil {
				t.Errorf("a tree cached under other keys was used: %+v", other)
			}
		})
	}
}

// TestFetchArchiveRefuses: what a hostile or broken mirror sends is
// refused with its reason, and nothing stays in the cache.
func TestFetchArchiveRefuses(t *testing.T) {
	tests := []struct {
		name    string
		entries []tar.Header
		tamper  func(t *testing.T, mirror string, a Archive, keys **kernel.Keyring)
		want    string
		is      error
	}{
		{name: "tarball changed after signing", entries: goodArchive, tamper: func(t *testing.T, m string, a Archive, _ **kernel.Keyring) {
			data, _ := os.ReadFile(filepath.Join(m, a.Tarball))
			data[len(data)-9] ^= 1
			replace(t, filepath.Join(m, a.Tarball), data)
		}, is: kernel.ErrBadSignature},
		{name: "signed by a key not trusted", entries: goodArchive, tamper: func(t *testing.T, _ string, _ Archive, keys **kernel.Keyring) {
			*keys = keyringOf(t, newKey(t, "Someone Else"))
		}, is: kernel.ErrUnknownKey},
		{name: "no signature", entries: goodArchive, tamper: func(t *testing.T, m string, a Archive, _ **kernel.Keyring) {
			os.Remove(filepath.Join(m, a.Signature))
		}, is: ErrNotFound},
		{name: "no tarball", entries: goodArchive, tamper: func(t *testing.T, m string, a Archive, _ **kernel.Keyring) {
			os.Remove(filepath.Join(m, a.Tarball))
		}, is: ErrNotFound},
		{name: "entry outside the tree", entries: append(append([]tar.Header(nil), goodArchive...),
			tar.Header{Typeflag: tar.TypeReg, Name: "zfs-1.2.3/../../evil", Mode: 0o644}), want: "evil"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			mirror, a, keys := archiveMirror(t, tc.entries)
			if tc.tamper != nil {
				tc.tamper(t, mirror, a, &keys)
			}
			cache := t.TempDir()
			o := Options{Mirror: mirror, Dir: cache, Keyring: keys, retryDelay: time.Millisecond}
			tree, err := FetchArchive(context.Background(), o, a)
			if err == nil {
				t.Fatalf("fetched %+v, want an error", tree)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("error %v, want %v", err, tc.is)
			}
			if !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "OpenZFS 1.2.3") {
				t.Errorf("error %q does not say %q and name the archive", err, tc.want)
			}
			checkClean(t, cache)
			if ents, _ := os.ReadDir(filepath.Join(cache, "archives")); len(ents) != 0 {
				t.Errorf("a record was written: %v", ents)
			}
		})
	}
}

// TestFetchArchiveSymlinkStaysInside: a symlink to an absolute path and a
// file written through it land inside the tree, as in a container layer,
// never on the host's path.
func TestFetchArchiveSymlinkStaysInside(t *testing.T) {
	outside := t.TempDir()
	mirror, a, keys := archiveMirror(t, append(append([]tar.Header(nil), goodArchive...),
		tar.Header{Typeflag: tar.TypeSymlink, Name: "zfs-1.2.3/out", Linkname: outside},
		tar.Header{Typeflag: tar.TypeReg, Name: "zfs-1.2.3/out/evil", Mode: 0o644}))
	cache := t.TempDir()
	tree, err := FetchArchive(context.Background(), Options{Mirror: mirror, Dir: cache, Keyring: keys}, a)
	if ents, _ := os.ReadDir(outside); len(ents) != 0 {
		t.Fatalf("written outside the cache: %v", ents)
	}
	if err == nil && !strings.HasPrefix(tree.Dir, cache) {
		t.Errorf("tree %s is outside the cache", tree.Dir)
	}
}
