package cachedir

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestSetuidTreeIsUnreachable is the attack an adversarial run made as
// root: a cache in a shared place (/tmp/lkbuild), a builder rootfs
// unpacked into it with its setuid-root binaries, and another local user
// running one of them. With the cache private, the user cannot even reach
// the file. Runs in the root pass of scripts/test.sh; other users cannot
// make a root-owned setuid file.
func TestSetuidTreeIsUnreachable(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root to plant a setuid-root file (scripts/test.sh runs it as root)")
	}
	shared := t.TempDir()
	if err := os.Chmod(shared, 0o1777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Dir(shared), 0o755); err != nil {
		t.Fatal(err)
	}
	d, err := Open(filepath.Join(shared, "lkbuild"))
	if err != nil {
		t.Fatal(err)
	}
	// What an unpacked builder looks like as root: world-readable
	// directories from the image, a setuid-root shell inside.
	bin := filepath.Join(d.Rootfs(), "sha256-0123", "usr", "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	suid := filepath.Join(bin, "su-shell")
	sh, err := os.ReadFile("/bin/sh")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(suid, sh, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(suid, os.ModeSetuid|0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(suid, "-c", "id -u")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("another user ran %s from the cache: %q", suid, out)
	}
	if !strings.Contains(err.Error(), "permission denied") {
		t.Errorf("%s as nobody: %v (%q), want permission denied", suid, err, out)
	}
}
