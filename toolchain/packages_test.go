package toolchain

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"

	"github.com/lkbuild/lkbuild/kernel"
)

// writeTree writes files (name -> content) under root.
func writeTree(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for name, data := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// apkIndex makes an APKINDEX.tar.gz as abuild-sign leaves it: a gzip
// stream holding the signature, then one holding the index.
func apkIndex(t *testing.T, index string) string {
	t.Helper()
	var out bytes.Buffer
	for _, m := range []struct{ name, data string }{{".SIGN.RSA.key.rsa.pub", "sig"}, {"DESCRIPTION", "mirror"}, {"APKINDEX", index}} {
		var tb bytes.Buffer
		tw := tar.NewWriter(&tb)
		if err := tw.WriteHeader(&tar.Header{Name: m.name, Mode: 0o644, Size: int64(len(m.data))}); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(m.data))
		tw.Flush() // no end-of-archive blocks: the streams are one tar
		zw := gzip.NewWriter(&out)
		zw.Write(tb.Bytes())
		zw.Close()
	}
	return out.String()
}

func TestReadPackages(t *testing.T) {
	x86 := kernel.Arch{Uname: "x86_64", OCI: "amd64"}
	tests := []struct {
		name    string
		manager string
		files   map[string]string
		want    Packages
		pkgs    []string
		install []string
		missing []string
	}{{
		name:    "apt with a flat local repository",
		manager: kernel.ManagerApt,
		files: map[string]string{
			"usr/bin/apt-get":      "",
			"var/lib/dpkg/status":  "Package: bash\nStatus: install ok installed\nVersion: 5.2\n\nPackage: gone\nStatus: deinstall ok config-files\nVersion: 1\n",
			"etc/apt/sources.list": "# only the mirror\ndeb [trusted=yes] file:/mirror ./\n",
			"mirror/Packages":      "Package: gcc\nVersion: 12\nProvides: c-compiler, gcc-x86-64-linux-gnu (= 12)\n\nPackage: make\nVersion: 4\n",
		},
		want: Packages{Manager: kernel.ManagerApt, Program: "/usr/bin/apt-get", Local: []string{"/mirror"},
			Installed: map[string]bool{"bash": true},
			Available: map[string]bool{"gcc": true, "make": true, "c-compiler": true, "gcc-x86-64-linux-gnu": true}},
		pkgs:    []string{"bash", "gcc=12", "make", "gone", "bc"},
		install: []string{"gcc=12", "make"},
		missing: []string{"gone", "bc"},
	}, {
		name:    "apt with a deb822 source in dists and a remote one",
		manager: kernel.ManagerApt,
		files: map[string]string{
			"usr/bin/apt-get": "",
			"etc/apt/sources.list.d/debian.sources": "Types: deb\nURIs: http://deb.debian.org/debian\nSuites: bookworm\nComponents: main\n\n" +
				"Types: deb\nURIs: file:///srv/repo\nSuites: stable\nComponents: main\n  contrib\n",
			"srv/repo/dists/stable/main/binary-amd64/Packages":  "Package: flex\n",
			"srv/repo/dists/stable/contrib/binary-all/Packages": "Package: iucode-tool\n",
		},
		want: Packages{Manager: kernel.ManagerApt, Program: "/usr/bin/apt-get", Local: []string{"/srv/repo"}, Remote: []string{"http://deb.debian.org/debian"},
			Installed: map[string]bool{}, Available: map[string]bool{"flex": true, "iucode-tool": true}},
		pkgs:    []string{"flex", "iucode-tool"},
		install: []string{"flex", "iucode-tool"},
	}, {
		name:    "apk with /mirror, as linuxkit/alpine",
		manager: kernel.ManagerApk,
		files: map[string]string{
			"sbin/apk":                       "",
			"lib/apk/db/installed":           "C:Q1abc\nP:musl\nV:1.2\n\nP:busybox\nV:1.36\n",
			"etc/apk/repositories":           "/mirror\n",
			"etc/apk/repositories.upstream":  "https://dl-cdn.alpinelinux.org/alpine/v3.22/main\n",
			"mirror/x86_64/APKINDEX.tar.gz":  "", // written below
			"mirror/aarch64/APKINDEX.tar.gz": "not read",
		},
		want: Packages{Manager: kernel.ManagerApk, Program: "/sbin/apk", Local: []string{"/mirror"},
			Installed: map[string]bool{"musl": true, "busybox": true},
			Available: map[string]bool{"build-base": true, "gcc": true, "cc": true, "libgcc": true}},
		pkgs:    []string{"build-base", "gcc>=13", "busybox", "argp-standalone"},
		install: []string{"build-base", "gcc>=13"},
		missing: []string{"argp-standalone"},
	}, {
		name:    "no manager at all",
		manager: kernel.ManagerApk,
		files:   map[string]string{"etc/os-release": "ID=debian\n"},
		want:    Packages{Manager: kernel.ManagerApk, Installed: map[string]bool{}, Available: map[string]bool{}},
		pkgs:    []string{"gcc"},
		missing: []string{"gcc"},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			if _, ok := tc.files["mirror/x86_64/APKINDEX.tar.gz"]; ok {
				tc.files["mirror/x86_64/APKINDEX.tar.gz"] = apkIndex(t, "C:Q1x\nP:build-base\nV:0.5\n\nP:gcc\nV:14\np:cc cmd:gcc=14 so:libgcc.so\n\nP:libgcc\n")
			}
			writeTree(t, root, tc.files)
			got, err := ReadPackages(root, tc.manager, x86)
			if err != nil {
				t.Fatal(err)
			}
			delete(got.Available, "cmd")
			delete(got.Available, "so")
			if !reflect.DeepEqual(*got, tc.want) {
				t.Errorf("got %+v\nwant %+v", *got, tc.want)
			}
			install, missing := got.Missing(tc.pkgs)
			if !reflect.DeepEqual(install, tc.install) || !reflect.DeepEqual(missing, tc.missing) {
				t.Errorf("Missing(%v) = %v, %v; want %v, %v", tc.pkgs, install, missing, tc.install, tc.missing)
			}
		})
	}
}

// A hostile builder image's links and special files: nothing outside the
// tree is read, and nothing blocks.
func TestReadPackagesHostile(t *testing.T) {
	x86 := kernel.Arch{Uname: "x86_64", OCI: "amd64"}
	outside := filepath.Join(t.TempDir(), "Packages")
	writeTree(t, filepath.Dir(outside), map[string]string{"Packages": "Package: from-the-host\n"})
	tests := []struct {
		name  string
		setup func(t *testing.T, root string)
		err   string
	}{{
		name: "a Packages link out of the tree",
		setup: func(t *testing.T, root string) {
			writeTree(t, root, map[string]string{"etc/apt/sources.list": "deb file:/mirror ./\n"})
			os.MkdirAll(filepath.Join(root, "mirror"), 0o755)
			if err := os.Symlink(outside, filepath.Join(root, "mirror", "Packages")); err != nil {
				t.Fatal(err)
			}
		},
		err: "escapes",
	}, {
		name: "a repository directory linked out of the tree",
		setup: func(t *testing.T, root string) {
			writeTree(t, root, map[string]string{"etc/apt/sources.list": "deb file:/mirror ./\n"})
			if err := os.Symlink(filepath.Dir(outside), filepath.Join(root, "mirror")); err != nil {
				t.Fatal(err)
			}
		},
		err: "escapes",
	}, {
		name: "a FIFO as the status file",
		setup: func(t *testing.T, root string) {
			os.MkdirAll(filepath.Join(root, "var/lib/dpkg"), 0o755)
			if err := syscall.Mkfifo(filepath.Join(root, "var/lib/dpkg/status"), 0o644); err != nil {
				t.Fatal(err)
			}
		},
		err: "not a regular file",
	}, {
		name: "a repository path with dot-dots",
		setup: func(t *testing.T, root string) {
			writeTree(t, root, map[string]string{"etc/apt/sources.list": "deb file:/../../../" + filepath.Dir(outside) + " ./\n"})
		},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			tc.setup(t, root)
			got, err := ReadPackages(root, kernel.ManagerApt, x86)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Available["from-the-host"] {
				t.Errorf("read the host's file through the tree: %+v", got)
			}
		})
	}
}

func TestInstallCommand(t *testing.T) {
	tests := []struct {
		manager string
		pkgs    []string
		want    string
		err     string
	}{
		{kernel.ManagerApk, []string{"build-base", "gcc>=13"}, "apk add --no-network --no-progress --quiet 'build-base' 'gcc>=13'", ""},
		{kernel.ManagerApt, []string{"gcc", "libssl-dev:amd64"}, "apt-get -q -o APT::Sandbox::User=root -o Dpkg::Use-Pty=0 -o Acquire::Languages=none -o Dpkg::Options::=--force-unsafe-io update && " +
			"apt-get -q -o APT::Sandbox::User=root -o Dpkg::Use-Pty=0 -o Acquire::Languages=none -o Dpkg::Options::=--force-unsafe-io install -y --no-install-recommends 'gcc' 'libssl-dev:amd64' && apt-get clean && rm -rf /var/lib/apt/lists/partial /var/cache/apt/archives/partial", ""},
		{kernel.ManagerApk, []string{"gcc'; rm -rf /; '"}, "", "not a package name"},
		{kernel.ManagerApt, []string{"--allow-unauthenticated"}, "", "not a package name"},
		{"dnf", []string{"gcc"}, "", "unknown package manager"},
	}
	for _, tc := range tests {
		got, err := InstallCommand(tc.manager, tc.pkgs)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("InstallCommand(%s, %q) err = %v, want %q", tc.manager, tc.pkgs, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("InstallCommand(%s, %q) = %q, %v\nwant %q", tc.manager, tc.pkgs, got, err, tc.want)
		}
	}
}
