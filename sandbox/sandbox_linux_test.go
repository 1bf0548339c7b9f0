package sandbox

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/lkbuild/lkbuild/internal/rmtree"
	"github.com/lkbuild/lkbuild/internal/rootfstest"
	"github.com/lkbuild/lkbuild/internal/testenv"
	"github.com/lkbuild/lkbuild/kernel"
	"github.com/lkbuild/lkbuild/toolchain"
)

var testPath = "PATH=" + kernel.DefaultPath

// sh runs a bash script in the sandbox and returns its stdout, stderr and
// error.
func sh(t *testing.T, spec Spec, script string) (string, string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	spec.Args = []string{"/bin/bash", "-c", script}
	spec.Env = append([]string{testPath, "HOME=/root"}, spec.Env...)
	spec.Stdout, spec.Stderr = &out, &errb
	spec.StateDir = t.TempDir()
	err := Run(context.Background(), spec)
	return out.String(), errb.String(), err
}

func mustSh(t *testing.T, spec Spec, script string) string {
	t.Helper()
	out, stderr, err := sh(t, spec, script)
	if err != nil {
		t.Fatalf("%s: %v\nstdout:\n%s\nstderr:\n%s", script, err, out, stderr)
	}
	return out
}

func TestInitCommand(t *testing.T) {
	all := uintptr(unix.CLONE_NEWUSER | unix.CLONE_NEWNS | unix.CLONE_NEWPID | unix.CLONE_NEWUTS | unix.CLONE_NEWIPC | unix.CLONE_NEWNET)
	single := idMapping{
		uids: []syscall.SysProcIDMap{{ContainerID: 0, HostID: 1000, Size: 1}},
		gids: []syscall.SysProcIDMap{{ContainerID: 0, HostID: 1000, Size: 1}},
	}
	helper := idMapping{newuidmap: "/usr/bin/newuidmap", newgidmap: "/usr/bin/newgidmap"}
	tests := []struct {
		name      string
		m         idMapping
		hostNet   bool
		wantFlags uintptr
		wantArgs  []string
	}{
		{"single id", single, false, all, []string{InitName}},
		{"root", chooseIDMapping(0, 0), false, all, []string{InitName}},
		{"host network", single, true, all &^ unix.CLONE_NEWNET, []string{InitName}},
		{"subordinate ids", helper, false, all, []string{InitName, awaitIDMap}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := initCommand(tt.m, tt.hostNet)
			a := cmd.SysProcAttr
			if a.Cloneflags != tt.wantFlags {
				t.Errorf("clone flags %#x, want %#x", a.Cloneflags, tt.wantFlags)
			}
			if len(a.UidMappings) != len(tt.m.uids) || len(a.GidMappings) != len(tt.m.gids) {
				t.Errorf("maps %+v %+v, want %+v %+v", a.UidMappings, a.GidMappings, tt.m.uids, tt.m.gids)
			}
			if a.GidMappingsEnableSetgroups || a.Pdeathsig != syscall.SIGKILL {
				t.Errorf("setgroups %v, pdeathsig %v", a.GidMappingsEnableSetgroups, a.Pdeathsig)
			}
			if cmd.Path != "/proc/self/exe" || strings.Join(cmd.Args, " ") != strings.Join(tt.wantArgs, " ") || len(cmd.Env) != 0 {
				t.Errorf("cmd %s %q env %q", cmd.Path, cmd.Args, cmd.Env)
			}
		})
	}
	root := chooseIDMapping(0, 0)
	if len(root.uids) != 1 || root.uids[0] != (syscall.SysProcIDMap{ContainerID: 0, HostID: 0, Size: 65536}) || root.helper() {
		t.Errorf("root mapping %+v", root)
	}
}

// TestSandboxSubordinateIDs checks that the sandbox maps a whole id range
// where it can (root, or a user with subuid/subgid ranges and newuidmap),
// so chown to other ids works, and that files left owned by such ids are
// still cleaned up.
func TestSandboxSubordinateIDs(t *testing.T) {
	root := fixtures.Need(t, rootfstest.AMD64)
	m := chooseIDMapping(os.Getuid(), os.Getgid())
	testenv.Need(t, os.Getuid() == 0 || m.helper(), "no subordinate id range: needs newuidmap/newgidmap (uidmap) and /etc/subuid, /etc/subgid entries for this user")
	state := t.TempDir()
	var out bytes.Buffer
	err := Run(context.Background(), Spec{
		Rootfs: root, StateDir: state, Env: []string{testPath}, Stdout: &out, Stderr: &out,
		Args: []string{"/bin/bash", "-c", `wc -l < /proc/self/uid_map; touch /tmp/x /owned && chown 42:42 /tmp/x /owned && stat -c %u:%g /tmp/x /owned && chmod 700 /owned`},
	})
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 3 || lines[1] != "42:42" || lines[2] != "42:42" {
		t.Errorf("inside: %q", lines)
	}
	if m.helper() && lines[0] != "2" {
		t.Errorf("uid_map has %s lines, want 2 (self and the subordinate range)", lines[0])
	}
	if ents, _ := os.ReadDir(state); len(ents) != 0 {
		t.Errorf("state dir not cleaned up: %v", ents)
	}
}

func TestParseMount(t *testing.T) {
	tests := []struct {
		in      string
		want    Mount
		wantErr bool
	}{
		{"/a:/b", Mount{Source: "/a", Target: "/b"}, false},
		{"a:/b:ro", Mount{Source: "a", Target: "/b", ReadOnly: true}, false},
		{"/a:/b:rw", Mount{Source: "/a", Target: "/b"}, false},
		{"/a:b", Mount{}, true},
		{"/a", Mount{}, true},
		{"/a:/b:rx", Mount{}, true},
		{":/b", Mount{}, true},
	}
	for _, tt := range tests {
		got, err := ParseMount(tt.in)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("ParseMount(%q) = %+v, %v; want %+v, err %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestSandboxIdentity(t *testing.T) {
	root := fixtures.Need(t, rootfstest.AMD64)
	out := mustSh(t, Spec{Rootfs: root}, `id -u; id -g; hostname; tr '\0' ' ' </proc/1/cmdline; echo; env | sort`)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) < 4 || lines[0] != "0" || lines[1] != "0" || lines[2] != "lkbuild" {
		t.Fatalf("inside: %q, want uid 0, gid 0, hostname lkbuild", lines)
	}
	if !strings.HasPrefix(lines[3], InitName) {
		t.Errorf("pid 1 is %q, want our init", lines[3])
	}
	// The environment is exactly what the spec gives (plus what sh sets).
	for _, kv := range lines[4:] {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "PATH", "HOME", "PWD", "SHLVL", "_":
		default:
			t.Errorf("unexpected variable in the sandbox: %s", kv)
		}
	}
}

func TestSandboxNetwork(t *testing.T) {
	root := fixtures.Need(t, rootfstest.AMD64)
	// A listener on the host's loopback: from inside, 127.0.0.1 is the
	// sandbox's own loopback, so the host's service must be unreachable.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	out := mustSh(t, Spec{Rootfs: root}, `
		tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '
		echo routes=$(tail -n +2 /proc/net/route | wc -l)
		if (exec 3<>/dev/tcp/127.0.0.1/`+port+`) 2>/dev/null; then echo host-reachable; else echo host-unreachable; fi
		python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); s.listen(); socket.create_connection(s.getsockname()); print("loopback-ok")'
	`)
	want := "lo\nroutes=0\nhost-unreachable\nloopback-ok\n"
	if out != want {
		t.Errorf("network view:\n%s\nwant:\n%s", out, want)
	}
}

func TestSandboxHostNetwork(t *testing.T) {
	root := fixtures.Need(t, rootfstest.AMD64)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		if c, err := ln.Accept(); err == nil {
			c.Close()
		}
	}()
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	out := mustSh(t, Spec{Rootfs: root, HostNetwork: true}, `(exec 3<>/dev/tcp/127.0.0.1/`+port+`) && echo reached`)
	if out != "reached\n" {
		t.Errorf("with HostNetwork the host's loopback service was not reachable: %q", out)
	}
}

func TestSandboxSeesOnlyBinds(t *testing.T) {
	root := fixtures.Need(t, rootfstest.AMD64)
	host := t.TempDir()
	secret := filepath.Join(host, "secret")
	shared := filepath.Join(host, "shared")
	ro := filepath.Join(host, "ro")
	for _, d := range []string{shared, ro} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(secret, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(ro, "in"), []byte("ro-content"), 0o644); err != nil {
		t.Fatal(err)
	}
	spec := Spec{Rootfs: root, Mounts: []Mount{{Source: shared, Target: "/shared"}, {Source: ro, Target: "/in", ReadOnly: true}}}
	out := mustSh(t, spec, `
		test -e `+secret+` && echo secret-visible
		test -e `+host+` && echo host-dir-visible
		echo written > /shared/out
		cat /in/in; echo
		if echo x 2>/dev/null > /in/new; then echo ro-writable; else echo ro-refused; fi
	`)
	if out != "ro-content\nro-refused\n" {
		t.Errorf("inside: %q", out)
	}
	if b, err := os.ReadFile(filepath.Join(shared, "out")); err != nil || string(b) != "written\n" {
		t.Errorf("write through read-write bind: %q, %v", b, err)
	}
}

func TestSandboxKeepsRootfsPristine(t *testing.T) {
	root := fixtures.Need(t, rootfstest.AMD64)
	for _, noOverlay := range []bool{false, true} {
		t.Run(map[bool]string{false: "overlay", true: "copy"}[noOverlay], func(t *testing.T) {
			before, err := os.ReadFile(filepath.Join(root, "etc/os-release"))
			if err != nil {
				t.Fatal(err)
			}
			var notes []string
			spec := Spec{Rootfs: root, noOverlay: noOverlay, Notify: func(s string) { notes = append(notes, s) }}
			if noOverlay {
				// Copying 500 MB would be slow: copy a smaller tree.
				spec.Rootfs = rootfstest.SmallTree(t, root)
			}
			mustSh(t, spec, `
				echo changed >> /etc/os-release
				echo new > /etc/lkbuild-new
				rm /etc/debian_version
				mkdir /lkbuild-dir
				cat /etc/os-release | tail -n 1
			`)
			after, err := os.ReadFile(filepath.Join(root, "etc/os-release"))
			if err != nil || !bytes.Equal(before, after) {
				t.Errorf("pristine os-release changed: %v", err)
			}
			for _, p := range []string{"etc/lkbuild-new", "lkbuild-dir"} {
				if _, err := os.Lstat(filepath.Join(spec.Rootfs, p)); err == nil {
					t.Errorf("%s appeared in the pristine rootfs", p)
				}
			}
			if _, err := os.Stat(filepath.Join(spec.Rootfs, "etc/debian_version")); err != nil {
				t.Errorf("file deleted in the sandbox is gone from the pristine rootfs: %v", err)
			}
			if noOverlay && (len(notes) != 1 || !strings.Contains(notes[0], "copying the rootfs")) {
				t.Errorf("copy fallback not reported: %q", notes)
			}
			if !noOverlay && len(notes) != 0 {
				t.Errorf("unexpected notes: %q", notes)
			}
		})
	}
}

func TestSandboxExitStatus(t *testing.T) {
	root := fixtures.Need(t, rootfstest.AMD64)
	tests := []struct {
		script string
		want   int
	}{
		{"exit 0", 0},
		{"exit 7", 7},
		{"exit 255", 255},
		{"kill -KILL $$", 128 + 9},
		{"kill -TERM $$", 128 + 15},
	}
	for _, tt := range tests {
		_, _, err := sh(t, Spec{Rootfs: root}, tt.script)
		var ee *ExitError
		switch {
		case tt.want == 0 && err != nil:
			t.Errorf("%s: %v", tt.script, err)
		case tt.want != 0 && (!errors.As(err, &ee) || ee.Code != tt.want):
			t.Errorf("%s: got %v, want exit status %d", tt.script, err, tt.want)
		}
	}
	err := Run(context.Background(), Spec{Rootfs: root, Args: []string{"no-such-command"}, Env: []string{testPath}, StateDir: t.TempDir()})
	var se *SetupError
	if !errors.As(err, &se) || !strings.Contains(se.Error(), "no-such-command") {
		t.Errorf("missing command: got %v, want a SetupError naming it", err)
	}
}

func TestSandboxCancelKillsEverything(t *testing.T) {
	root := fixtures.Need(t, rootfstest.AMD64)
	marker := strconv.Itoa(40000 + os.Getpid()%10000)
	ctx, cancel := context.WithCancel(context.Background())
	started := make(chan struct{})
	var out bytes.Buffer
	w := &signalWriter{w: &out, seen: started, want: "started"}
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Spec{
			Rootfs: root, Env: []string{testPath}, StateDir: t.TempDir(), Stdout: w,
			// A background tree that ignores SIGTERM, and a foreground
			// process: none of them may survive.
			Args: []string{"/bin/sh", "-c", `(trap '' TERM; sleep ` + marker + `) & sh -c 'sleep ` + marker + `' & echo started; wait`},
		})
	}()
	select {
	case <-started:
	case <-time.After(30 * time.Second):
		t.Fatal("sandbox did not start")
	}
	// The background processes may still be starting.
	for deadline := time.Now().Add(10 * time.Second); countProcs(t, marker) < 2; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("found %d marked processes before cancel, want 2", countProcs(t, marker))
		}
	}
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Run after cancel: %v, want context.Canceled", err)
		}
	case <-time.After(killGrace + 10*time.Second):
		t.Fatal("Run did not return after cancel")
	}
	if n := countProcs(t, marker); n != 0 {
		t.Errorf("%d processes still running after cancel", n)
	}
}

// signalWriter closes seen when want has been written.
type signalWriter struct {
	w    *bytes.Buffer
	seen chan struct{}
	want string
	done bool
}

func (s *signalWriter) Write(p []byte) (int, error) {
	n, err := s.w.Write(p)
	if !s.done && strings.Contains(s.w.String(), s.want) {
		s.done = true
		close(s.seen)
	}
	return n, err
}

// countProcs counts host processes whose command line holds marker.
func countProcs(t *testing.T, marker string) int {
	t.Helper()
	ents, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err != nil {
			continue
		}
		if strings.Contains(string(b), "sleep\x00"+marker) {
			n++
		}
	}
	return n
}

const helloC = `#include <stdio.h>
int main(void) { printf("hello from %d-bit C\n", (int)(8 * sizeof(void *))); return 0; }
`

func TestSandboxCompilesC(t *testing.T) {
	root := fixtures.Need(t, rootfstest.AMD64)
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "hello.c"), []byte(helloC), 0o644); err != nil {
		t.Fatal(err)
	}
	out := mustSh(t, Spec{Rootfs: root, Mounts: []Mount{{Source: src, Target: "/src", ReadOnly: true}}},
		`gcc -O2 -o /tmp/hello /src/hello.c && /tmp/hello && uname -m`)
	if out != "hello from 64-bit C\nx86_64\n" {
		t.Errorf("got %q", out)
	}
}

func TestSandboxForeignArch(t *testing.T) {
	root := fixtures.Need(t, rootfstest.ARM64)
	arm64, err := toolchain.ParseArch("arm64")
	if err != nil {
		t.Fatal(err)
	}
	emu, err := toolchain.FindEmulator(arm64, toolchain.Host())
	testenv.Need(t, err == nil, "qemu for arm64: "+errString(err))
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "hello.c"), []byte(helloC), 0o644); err != nil {
		t.Fatal(err)
	}
	spec := Spec{Rootfs: root, Mounts: []Mount{{Source: src, Target: "/src", ReadOnly: true}}}
	useEmulation(&spec, emu)
	out := mustSh(t, spec, `uname -m; gcc -O2 -o /tmp/hello /src/hello.c && /tmp/hello && od -An -tx1 -j18 -N2 /tmp/hello`)
	if out != "aarch64\nhello from 64-bit C\n b7 00\n" {
		t.Errorf("got %q, want aarch64, the program's output and an aarch64 ELF machine (b7 00)", out)
	}
	// The host's binfmt_misc must not have learnt anything.
	if _, err := os.Stat("/proc/sys/fs/binfmt_misc/" + emu.Name); err == nil && emu.Register {
		b, _ := exec.Command("cat", "/proc/sys/fs/binfmt_misc/"+emu.Name).Output()
		t.Logf("note: host has its own %s entry: %s", emu.Name, b)
	}
}

// useEmulation is what builder.Emulate does, without importing builder.
func useEmulation(s *Spec, e toolchain.Emulation) {
	if e.Register {
		s.Emulator = &Emulator{Name: e.Name, Interpreter: e.Interpreter, Magic: e.Magic, Mask: e.Mask, Env: e.Env}
		return
	}
	s.Env = EnvDefaults(s.Env, e.Env)
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// TestSandboxRootfsSymlinksStayInside gives the sandbox a rootfs whose
// mount points are symlinks leading out of it: /proc -> /proc, as
// debootstrap --foreign leaves it, and a directory link to a host path that
// a bind target goes through. Every mount must land inside the root.
func TestSandboxRootfsSymlinksStayInside(t *testing.T) {
	root := rootfstest.SmallTree(t, fixtures.Need(t, rootfstest.AMD64))
	host := t.TempDir()
	for link, target := range map[string]string{"proc": "/proc", "tmp": "/tmp", "escape": host} {
		os.RemoveAll(filepath.Join(root, link))
		if err := os.Symlink(target, filepath.Join(root, link)); err != nil {
			t.Fatal(err)
		}
	}
	src := t.TempDir()
	out := mustSh(t, Spec{Rootfs: root, Mounts: []Mount{{Source: src, Target: "/escape/mnt"}}},
		`test -d /proc/self && echo proc-ok; test -d /escape/mnt && echo bind-ok; touch /tmp/x && echo tmp-ok`)
	if out != "proc-ok\nbind-ok\ntmp-ok\n" {
		t.Errorf("inside: %q", out)
	}
	if ents, _ := os.ReadDir(host); len(ents) != 0 {
		t.Errorf("a mount point was created outside the root, in %s: %v", host, ents)
	}
}

// TestSandboxQEMUFromImage takes qemu-aarch64-static from an OCI image
// instead of PATH, as --qemu-image does, and runs the arm64 rootfs with it.
func TestSandboxQEMUFromImage(t *testing.T) {
	root := fixtures.Need(t, rootfstest.ARM64)
	qemu := testenv.LookPath(t, "qemu-aarch64-static", "qemu-user-static")
	// The image: usr/bin/qemu-aarch64-static, unpacked as PrepareRootfs
	// would leave it.
	imgRoot := t.TempDir()
	if err := os.MkdirAll(filepath.Join(imgRoot, "usr/bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := copyFile(qemu, filepath.Join(imgRoot, "usr/bin/qemu-aarch64-static"), make([]byte, 1<<20)); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(imgRoot, "usr/bin/qemu-aarch64-static"), 0o755); err != nil {
		t.Fatal(err)
	}
	arm64, _ := toolchain.ParseArch("arm64")
	h := toolchain.Host()
	h.LookPath = func(string) (string, error) { return "", errors.New("PATH is not searched here") }
	h.Dirs = toolchain.QEMUImageDirs(imgRoot)
	emu, err := toolchain.FindEmulator(arm64, h)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(emu.Interpreter, imgRoot) {
		t.Fatalf("interpreter %s is not the image's", emu.Interpreter)
	}
	spec := Spec{Rootfs: root}
	useEmulation(&spec, emu)
	if out := mustSh(t, spec, "uname -m"); out != "aarch64\n" {
		t.Errorf("uname -m: %q", out)
	}
}

func TestEnvDefaults(t *testing.T) {
	got := EnvDefaults([]string{"PATH=/bin", "QEMU_CPU=cortex-a72"}, []string{"QEMU_CPU=max", "QEMU_LD_PREFIX=/x"})
	want := []string{"PATH=/bin", "QEMU_CPU=cortex-a72", "QEMU_LD_PREFIX=/x"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("got %q, want %q", got, want)
	}
}

// TestSandboxOverlayMounts checks overlay mounts: changes land in the upper
// dir and never in the lower ones, a mount with no upper dir is read-only,
// and a step action (lkbuild itself, run inside) sees the merged tree.
func TestSandboxOverlayMounts(t *testing.T) {
	rootfs := fixtures.Need(t, rootfstest.AMD64)
	dir := t.TempDir()
	lower, upper, work, out := filepath.Join(dir, "lower"), filepath.Join(dir, "upper"), filepath.Join(dir, "work"), filepath.Join(dir, "out")
	for _, d := range []string{lower, upper, work, out} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// overlayfs leaves work/work with mode 0, which t.TempDir's cleanup
	// cannot enter; rmtree makes it writable first.
	t.Cleanup(func() {
		if err := rmtree.RemoveAll(work); err != nil {
			t.Error(err)
		}
	})
	os.WriteFile(filepath.Join(lower, "a"), []byte("pristine\n"), 0o644)
	os.WriteFile(filepath.Join(lower, "gone"), []byte("x\n"), 0o644)

	rw := Spec{Rootfs: rootfs, Mounts: []Mount{{Target: "/src", Overlay: &Overlay{Lower: []string{lower}, Upper: upper, Work: work}}}}
	mustSh(t, rw, "cat /src/a && echo changed > /src/a && echo new > /src/b && rm /src/gone")
	if got, _ := os.ReadFile(filepath.Join(lower, "a")); string(got) != "pristine\n" {
		t.Errorf("lower file changed to %q", got)
	}
	if _, err := os.Stat(filepath.Join(lower, "gone")); err != nil {
		t.Errorf("lower file removed: %v", err)
	}
	if got, _ := os.ReadFile(filepath.Join(upper, "b")); string(got) != "new\n" {
		t.Errorf("upper b = %q", got)
	}

	ro := Spec{Rootfs: rootfs, Mounts: []Mount{
		{Target: "/src", Overlay: &Overlay{Lower: []string{upper, lower}}},
		{Source: out, Target: "/out"},
	}}
	got := mustSh(t, ro, "cat /src/a /src/b; test -e /src/gone && echo still there; touch /src/x 2>/dev/null && echo writable; true")
	if got != "changed\nnew\n" {
		t.Errorf("read-only overlay shows %q", got)
	}

	bad := Spec{Rootfs: rootfs, Args: []string{"true"}, Mounts: []Mount{{Target: "/src", Overlay: &Overlay{Lower: []string{lower}, Upper: upper}}}}
	if err := Run(context.Background(), bad); err == nil || !strings.Contains(err.Error(), "work directory") {
		t.Errorf("upper without work: %v", err)
	}
	bad.Mounts[0].Overlay = &Overlay{Lower: []string{filepath.Join(dir, "a:b")}}
	if err := Run(context.Background(), bad); err == nil {
		t.Errorf("a lower dir with ':' was taken")
	}
}
