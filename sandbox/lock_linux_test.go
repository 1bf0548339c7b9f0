package sandbox

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestSandboxReadOnlyBindsAreLocked is the escape an adversarial run found:
// a command that remounts a read-only bind read-write and writes through
// it. The kernel must refuse: the mounts are locked (made in the init's
// namespaces; a writable rootfs's command uses them from nested ones) and
// a build step's command has no CAP_SYS_ADMIN, nor inheritable or ambient
// capabilities an exec could pass on (the init, with subordinate ids,
// holds all as ambient). Unmounting a bind to reach what is below fails
// too.
func TestSandboxReadOnlyBindsAreLocked(t *testing.T) {
	root := tinyRootfs(t)
	for _, tt := range []struct {
		name     string
		writable bool
		args     []string
	}{
		{"build step", false, nil},
		{"writable rootfs", true, nil},
		// The builder's in-sandbox Go actions: lkbuild itself, started
		// as /proc/self/exe from outside the rootfs.
		{"lkbuild action", false, []string{"/proc/self/exe", toolName}},
	} {
		writable := tt.writable
		t.Run(tt.name, func(t *testing.T) {
			host := t.TempDir()
			if err := os.WriteFile(filepath.Join(host, "a"), []byte("pristine"), 0o644); err != nil {
				t.Fatal(err)
			}
			r := root
			if writable {
				r = tinyRootfs(t) // changed in place
			}
			spec := Spec{Rootfs: r, Writable: writable, Args: tt.args, Mounts: []Mount{{Source: host, Target: "/ro", ReadOnly: true}}}
			out := mustTool(t, spec,
				"remount-rw", "/ro", "write", "/ro/b", "z", "write", "/ro/a", "changed",
				"umount", "/ro", "write", "/ro/c", "z",
				"status", "CapEff", "status", "CapInh", "status", "CapAmb", "status", "NoNewPrivs", "append", "/proc/1/fd/2", "x", "stat", "/proc/1/root/")
			for _, want := range []string{"remount-rw /ro: EPERM", "write /ro/b: EROFS", "write /ro/a: EROFS", "write /ro/c: EROFS", "NoNewPrivs=1", "CapInh=0000000000000000", "CapAmb=0000000000000000", "append /proc/1/fd/2: EACCES", "stat /proc/1/root/: EACCES"} {
				if !strings.Contains(out, want+"\n") {
					t.Errorf("want %q in:\n%s", want, out)
				}
			}
			if !strings.Contains(out, "umount /ro: EPERM") && !strings.Contains(out, "umount /ro: EINVAL") {
				t.Errorf("umount of a locked bind not refused:\n%s", out)
			}
			capEff := capField(t, out)
			const sysAdmin = 1 << 21
			if hasAdmin := capEff&sysAdmin != 0; hasAdmin != writable {
				t.Errorf("CapEff %x: CAP_SYS_ADMIN %v, want %v", capEff, hasAdmin, writable)
			}
			ents, _ := os.ReadDir(host)
			if len(ents) != 1 {
				t.Errorf("the host directory changed: %v", ents)
			}
			if b, _ := os.ReadFile(filepath.Join(host, "a")); string(b) != "pristine" {
				t.Errorf("the host file changed: %q", b)
			}
		})
	}
}

func capField(t *testing.T, out string) uint64 {
	t.Helper()
	for _, l := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(l, "CapEff="); ok {
			n, err := strconv.ParseUint(v, 16, 64)
			if err != nil {
				t.Fatalf("CapEff %q: %v", v, err)
			}
			return n
		}
	}
	t.Fatalf("no CapEff in %q", out)
	return 0
}
