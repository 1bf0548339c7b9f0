package toolchain

import (
	"errors"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"testing"
)

func TestParseDpkgStatus(t *testing.T) {
	tests := []struct {
		name, status string
		want         map[string]string
	}{
		{"installed", "Package: make\nStatus: install ok installed\nVersion: 4.4.1-2\n", map[string]string{"make": "4.4.1-2"}},
		{"two, with a continuation line", "Package: sed\nStatus: install ok installed\nVersion: 4.9-2\nDescription: x\n GNU sed: y\n\nPackage: grep\nVersion: 3.11-4+b1\nStatus: install ok installed\n",
			map[string]string{"sed": "4.9-2", "grep": "3.11-4+b1"}},
		{"removed, config files left", "Package: gzip\nStatus: deinstall ok config-files\nVersion: 1.13-1\n", map[string]string{}},
		{"half configured", "Package: gzip\nStatus: install ok half-configured\nVersion: 1.13-1\n", map[string]string{}},
		{"no package name", "Status: install ok installed\nVersion: 1\n", map[string]string{}},
		{"empty", "", map[string]string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseDpkgStatus([]byte(tt.status))
			if err != nil {
				t.Fatal(err)
			}
			if !maps.Equal(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func FuzzParseDpkgStatus(f *testing.F) {
	f.Add([]byte("Package: make\nStatus: install ok installed\nVersion: 4.4.1-2\n\n"))
	f.Add([]byte("Package: : \n\n\n: x"))
	f.Fuzz(func(t *testing.T, data []byte) {
		versions, err := ParseDpkgStatus(data)
		if err == nil && versions == nil {
			t.Fatal("no map and no error")
		}
	})
}

func TestLibDir(t *testing.T) {
	for dir, want := range map[string]bool{
		"/lib": true, "/usr/lib": true, "/lib64": true, "/usr/lib/x86_64-linux-gnu": true, "/lib/aarch64-linux-gnu": true,
		"/usr/aarch64-linux-gnu/lib": false, "/usr/lib/x86_64-linux-gnu/perl": false, "/usr/lib/": false, "/usr/bin": false,
	} {
		if got := libDir(dir); got != want {
			t.Errorf("libDir(%q) = %v, want %v", dir, got, want)
		}
	}
}

func TestOpenDpkg(t *testing.T) {
	root := t.TempDir()
	if _, err := OpenDpkg(root); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("no database: err %v, want fs.ErrNotExist", err)
	}
	info := filepath.Join(root, "var/lib/dpkg/info")
	os.MkdirAll(info, 0o755)
	os.WriteFile(filepath.Join(root, "var/lib/dpkg/status"), []byte(
		"Package: libc6\nStatus: install ok installed\nVersion: 2.41-12\n\nPackage: libc6-arm64-cross\nStatus: install ok installed\nVersion: 2.41-6cross1\n\nPackage: coreutils\nStatus: install ok installed\nVersion: 9.7-3\n"), 0o644)
	os.WriteFile(filepath.Join(info, "libc6:amd64.list"), []byte("/usr/lib/x86_64-linux-gnu/libc.so.6\n/usr/lib64/ld-linux-x86-64.so.2\n"), 0o644)
	os.WriteFile(filepath.Join(info, "libc6-arm64-cross.list"), []byte("/usr/aarch64-linux-gnu/lib/libc.so.6\n"), 0o644)
	os.WriteFile(filepath.Join(info, "coreutils.list"), []byte("/bin/rm\n/usr/bin/mv\n"), 0o644)
	d, err := OpenDpkg(root)
	if err != nil {
		t.Fatal(err)
	}
	if got := d.Library("libc.so.6"); got != "libc6 2.41-12" {
		t.Errorf("Library(libc.so.6) = %q, want the image's own libc6, not the cross toolchain's", got)
	}
	if got := d.Version("coreutils"); got != "9.7-3" {
		t.Errorf("Version(coreutils) = %q", got)
	}
	for p, want := range map[string]bool{"/usr/bin/rm": true, "/usr/bin/mv": true, "/usr/bin/cp": false, "/usr": false} {
		if got := d.Owns("coreutils", p); got != want {
			t.Errorf("Owns(coreutils, %s) = %v, want %v", p, got, want)
		}
	}
}
