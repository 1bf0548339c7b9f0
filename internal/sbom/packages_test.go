package sbom

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"
)

const dpkgFixture = `Package: libc6
Status: install ok installed
Priority: optional
Section: libs
Installed-Size: 12985
Maintainer: GNU Libc Maintainers <debian-glibc@lists.debian.org>
Architecture: amd64
Multi-Arch: same
Source: glibc
Version: 2.36-9+deb12u4
Depends: libgcc-s1
Description: GNU C Library: Shared libraries
 Contains the standard libraries that are used by nearly all programs on
 the system. This package includes shared versions of the standard C library
 .
 and the standard math library, as well as many others.
Homepage: https://www.gnu.org/software/libc/libc.html

Package: old-tool
Status: deinstall ok config-files
Priority: optional
Architecture: amd64
Version: 1.0-1
Conffiles:
 /etc/old-tool.conf 0123456789abcdef0123456789abcdef
Description: removed, only its config is left

Package: bsdutils
Essential: yes
Status: install ok installed
Architecture: amd64
Source: util-linux (2.38.1-5)
Version: 1:2.38.1-5+b1
Description: basic utilities from 4.4BSD-Lite
 This package contains the bare minimum of BSD utilities.

Package: held
Status: hold ok installed
Architecture: all
Version: 3
Description: held at its version, still installed

Package: purged
Status: purge ok not-installed
Architecture: amd64
`

const apkFixture = `C:Q1abcdefghijklmnopqrstuvwxyz0123=
P:musl
V:1.2.5-r0
A:x86_64
S:411209
I:655360
T:the musl c library (libc) implementation
U:https://musl.libc.org/
L:MIT
o:musl
m:Natanael Copa <ncopa@alpinelinux.org>
t:1712582015
c:6b1b3e8bd6b33df6b79e6b3c0c4b6d0d9b1e4f4c
F:lib
R:ld-musl-x86_64.so.1
a:0:0:755
Z:Q1abcdefghijklmnopqrstuvwxyz0123=

C:Q1zyxwvutsrqponmlkjihgfedcba3210=
P:busybox-binsh
V:1.36.1-r29
A:x86_64
o:busybox
F:bin
R:sh
`

// writeFile writes data to root/name, creating its directories.
func writeFile(t *testing.T, root, name, data string) {
	t.Helper()
	p := filepath.Join(root, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestPackages(t *testing.T) {
	dpkgWant := []Package{
		{Name: "bsdutils", Version: "1:2.38.1-5+b1", Arch: "amd64", Source: "util-linux", Manager: Dpkg},
		{Name: "held", Version: "3", Arch: "all", Manager: Dpkg},
		{Name: "libc6", Version: "2.36-9+deb12u4", Arch: "amd64", Source: "glibc", Manager: Dpkg},
	}
	apkWant := []Package{
		{Name: "busybox-binsh", Version: "1.36.1-r29", Arch: "x86_64", Source: "busybox", Manager: Apk},
		{Name: "musl", Version: "1.2.5-r0", Arch: "x86_64", Source: "musl", Manager: Apk},
	}
	for _, tc := range []struct {
		name  string
		files map[string]string
		want  []Package
	}{
		{"dpkg", map[string]string{dpkgStatus: dpkgFixture}, dpkgWant},
		{"dpkg CRLF and trailing blanks", map[string]string{dpkgStatus: strings.ReplaceAll(dpkgFixture, "\n", "\r\n") + "\r\n \r\n"}, dpkgWant},
		{"apk", map[string]string{apkInstalled: apkFixture}, apkWant},
		{"both", map[string]string{dpkgStatus: dpkgFixture, apkInstalled: apkFixture}, append(append([]Package{}, apkWant...), dpkgWant...)},
		{"neither", map[string]string{"etc/os-release": "ID=debian\n"}, nil},
		{"empty status", map[string]string{dpkgStatus: ""}, nil},
		{"duplicates", map[string]string{dpkgStatus: dpkgFixture + "\n" + dpkgFixture}, dpkgWant},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			for name, data := range tc.files {
				writeFile(t, root, name, data)
			}
			got, err := Packages(root)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestPackagesNoRoot(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "file", "")
	for _, root := range []string{filepath.Join(dir, "missing"), filepath.Join(dir, "file")} {
		if got, err := Packages(root); err == nil {
			t.Errorf("Packages(%q) = %+v, nil; want an error", root, got)
		}
	}
}

func TestPackagesMalformed(t *testing.T) {
	for name, files := range map[string]map[string]string{
		"dpkg line without colon":   {dpkgStatus: "Package: a\nnonsense\n"},
		"dpkg leading continuation": {dpkgStatus: " continued\n"},
		"apk line without colon":    {apkInstalled: "P:a\nnonsense\n"},
	} {
		t.Run(name, func(t *testing.T) {
			root := t.TempDir()
			for name, data := range files {
				writeFile(t, root, name, data)
			}
			if got, err := Packages(root); err == nil {
				t.Errorf("no error, got %+v", got)
			}
		})
	}
}

func TestPackagesTooLarge(t *testing.T) {
	for name, size := range map[string]int{
		"oversized file": maxDBSize + 1,
		"10 MB line":     10 << 20,
	} {
		t.Run(name, func(t *testing.T) {
			root := t.TempDir()
			p := filepath.Join(root, dpkgStatus)
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			f, err := os.Create(p)
			if err != nil {
				t.Fatal(err)
			}
			if name == "oversized file" {
				// Sparse: the size check must fire before any read.
				err = f.Truncate(int64(size))
			} else {
				_, err = f.WriteString("Package: a\nDescription: " + strings.Repeat("x", size) + "\n")
			}
			if err != nil {
				t.Fatal(err)
			}
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
			got, err := Packages(root)
			if !errors.Is(err, ErrTooLarge) {
				t.Errorf("got %+v, %v; want ErrTooLarge", got, err)
			}
		})
	}
}

// TestCapReader checks the guard for a file that grows after its size was
// checked.
func TestCapReader(t *testing.T) {
	for _, tc := range []struct {
		data string
		left int64
		err  error
	}{
		{"abc", 3, nil},
		{"abcd", 3, ErrTooLarge},
		{"", 0, nil},
		{"a", 0, ErrTooLarge},
	} {
		got, err := io.ReadAll(&capReader{r: iotest.OneByteReader(strings.NewReader(tc.data)), left: tc.left})
		if !errors.Is(err, tc.err) || err == nil && string(got) != tc.data {
			t.Errorf("%q with %d left: %q, %v; want %v", tc.data, tc.left, got, err, tc.err)
		}
	}
}

func FuzzParseDpkgStatus(f *testing.F) {
	f.Add(dpkgFixture)
	f.Add("Package: a\nStatus: install ok installed\n\n\n")
	f.Fuzz(func(t *testing.T, s string) {
		ps, err := parseDpkgStatus(strings.NewReader(s))
		if err != nil {
			return
		}
		for _, p := range ps {
			if p.Name == "" || p.Manager != Dpkg {
				t.Errorf("bad package %+v", p)
			}
		}
	})
}

func FuzzParseApkInstalled(f *testing.F) {
	f.Add(apkFixture)
	f.Fuzz(func(t *testing.T, s string) {
		ps, err := parseApkInstalled(strings.NewReader(s))
		if err != nil {
			return
		}
		for _, p := range ps {
			if p.Name == "" || p.Manager != Apk {
				t.Errorf("bad package %+v", p)
			}
		}
	})
}
