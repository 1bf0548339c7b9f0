package sbom

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestPackagesHostile reads rootfs trees an image could carry to make a
// naive reader read host files or hang.
func TestPackagesHostile(t *testing.T) {
	// A status file outside the root, listing a package that must never
	// show up.
	outside := filepath.Join(t.TempDir(), "status")
	if err := os.WriteFile(outside, []byte("Package: from-outside\nStatus: install ok installed\nVersion: 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	symlink := func(target, name string) func(t *testing.T, root string) {
		return func(t *testing.T, root string) {
			p := filepath.Join(root, name)
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(target, p); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, root string)
		// want is what a read confined to the root finds; wantErr says an
		// error is the right answer instead.
		want    []string
		wantErr bool
	}{
		{name: "status is an absolute symlink out", setup: symlink(outside, dpkgStatus)},
		{name: "status is a relative symlink out", setup: func(t *testing.T, root string) {
			rel, err := filepath.Rel(filepath.Join(root, "var/lib/dpkg"), outside)
			if err != nil {
				t.Fatal(err)
			}
			symlink(rel, dpkgStatus)(t, root)
		}},
		{name: "dpkg dir is a symlink out", setup: symlink(filepath.Dir(outside), "var/lib/dpkg")},
		// The host has a /var/lib/dpkg/status on Debian; this root does not.
		{name: "var is a symlink to /", setup: symlink("/", "var")},
		// In the root, /var -> /var is a loop; a reader that leaves the
		// root reads the host's dpkg database instead.
		{name: "var is a symlink to /var", setup: symlink("/var", "var"), wantErr: true},
		{name: "lib is a symlink to /usr/lib", setup: symlink("/usr/lib", "lib")},
		{name: "symlink to /etc/shadow", setup: symlink("/etc/shadow", dpkgStatus)},
		{
			// Absolute symlinks resolve inside the root, as they would
			// after chroot: this one finds the root's own copy.
			name: "absolute symlink inside the root",
			setup: func(t *testing.T, root string) {
				writeFile(t, root, "srv/status", "Package: inside\nStatus: install ok installed\nVersion: 2\n")
				symlink("/srv/status", dpkgStatus)(t, root)
			},
			want: []string{"inside"},
		},
		{name: "symlink loop", setup: symlink("status", dpkgStatus), wantErr: true},
		{name: "status is a directory", setup: func(t *testing.T, root string) {
			if err := os.MkdirAll(filepath.Join(root, dpkgStatus), 0o755); err != nil {
				t.Fatal(err)
			}
		}, wantErr: true},
		{name: "status is a FIFO", setup: func(t *testing.T, root string) {
			p := filepath.Join(root, dpkgStatus)
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := unix.Mkfifo(p, 0o644); err != nil {
				t.Fatal(err)
			}
		}, wantErr: true},
		{name: "status is a symlink to a FIFO", setup: func(t *testing.T, root string) {
			if err := unix.Mkfifo(filepath.Join(root, "fifo"), 0o644); err != nil {
				t.Fatal(err)
			}
			symlink("/fifo", dpkgStatus)(t, root)
		}, wantErr: true},
		{name: "status is a symlink to /dev/zero", setup: symlink("/dev/zero", dpkgStatus)},
		{name: "installed is a symlink to a device in the root", setup: func(t *testing.T, root string) {
			// A device node needs privilege to make; a symlink to the
			// host's /dev/zero is what an unprivileged test can build,
			// and resolves to <root>/dev/zero, which is absent.
			symlink("../../../dev/zero", apkInstalled)(t, root)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			tc.setup(t, root)
			type result struct {
				ps  []Package
				err error
			}
			done := make(chan result, 1)
			go func() {
				ps, err := Packages(root)
				done <- result{ps, err}
			}()
			var r result
			select {
			case r = <-done:
			case <-time.After(10 * time.Second):
				// The goroutine stays blocked; unblock it by opening the
				// FIFO's other end so the test binary can exit.
				if f, err := os.OpenFile(filepath.Join(root, dpkgStatus), os.O_WRONLY|unix.O_NONBLOCK, 0); err == nil {
					f.Close()
				}
				t.Fatal("Packages did not return within 10s")
			}
			var names []string
			for _, p := range r.ps {
				names = append(names, p.Name)
				if strings.Contains(p.Name, "outside") {
					t.Errorf("read a package from outside the root: %+v", p)
				}
			}
			if tc.wantErr {
				if r.err == nil {
					t.Errorf("no error, got %q", names)
				}
				return
			}
			if r.err != nil {
				t.Fatalf("error: %v", r.err)
			}
			if strings.Join(names, " ") != strings.Join(tc.want, " ") {
				t.Errorf("got %q, want %q", names, tc.want)
			}
		})
	}
}
