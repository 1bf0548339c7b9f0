package sandbox

import (
	"bytes"
	"context"
	"errors"
	"fmt"
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
			cmd := initCommand(tt.m, tt.hostNet, 40)
			a := cmd.SysProcAttr
			if a.Cloneflags != tt.wantFlags {
				t.Errorf("clone flags %#x, want %#x", a.Cloneflags, tt.wantFlags)
			}
			if len(a.UidMappings) != len(tt.m.uids) || len(a.GidMappings) != len(tt.m.gids) {
				t.Errorf("maps %+v %+v, want %+v %+v", a.UidMappings, a.GidMappings, tt.m.uids, tt.m.gids)
			}
			// Only real root's full map may allow setgroups(2).
			if a.GidMappingsEnableSetgroups != (tt.name == "root") || a.Pdeathsig != syscall.SIGKILL {
				t.Errorf("setgroups %v, pdeathsig %v", a.GidMappingsEnableSetgroups, a.Pdeathsig)
			}
			// Capabilities 0-40 kept across the exec before the maps, so
			// the init needs no second one; none where no exec precedes
			// the maps.
			wantAmbient := 0
			if tt.m.helper() {
				wantAmbient = 41
			}
			if len(a.AmbientCaps) != wantAmbient || wantAmbient > 0 && a.AmbientCaps[40] != 40 {
				t.Errorf("ambient capabilities %v, want 0 to %d", a.AmbientCaps, wantAmbient-1)
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
	m := chooseIDMapping(os.Getuid(), os.Getgid())
	testenv.Need(t, os.Getuid() == 0 || m.helper(), "no subordinate id range: needs newuidmap/newgidmap (uidmap) and /etc/subuid, /etc/subgid entries for this user")
	state := t.TempDir()
	out := mustTool(t, Spec{Rootfs: tinyRootfs(t), StateDir: state},
		"lines", "/proc/self/uid_map",
		"write", "/tmp/x", "", "write", "/owned", "",
		"chown", "/tmp/x", "42", "42", "chown", "/owned", "42", "42",
		"owner", "/tmp/x", "owner", "/owned", "chmod", "/owned", "700")
	// Real root maps one range onto itself; a user with the helpers maps
	// itself and the subordinate range.
	maps := "1"
	if m.helper() {
		maps = "2"
	}
	want := "lines /proc/self/uid_map: " + maps + "\n" +
		"write /tmp/x: ok\nwrite /owned: ok\nchown /tmp/x: ok\nchown /owned: ok\n" +
		"owner /tmp/x: 42:42\nowner /owned: 42:42\nchmod /owned: ok\n"
	if out != want {
		t.Errorf("inside:\n%s\nwant:\n%s", out, want)
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
	// A variable of the caller's must not leak in.
	t.Setenv("LKBUILD_TEST_LEAK", "leaked")
	out := mustTool(t, Spec{Rootfs: tinyRootfs(t), Env: []string{"HOME=/root"}}, "uid", "gid", "hostname", "cmdline", "1", "env")
	// The environment is exactly what the spec gives.
	init := InitName
	if chooseIDMapping(os.Getuid(), os.Getgid()).helper() {
		init += " " + awaitIDMap // its only exec, made before the maps
	}
	want := "uid=0\ngid=0\nhostname=lkbuild\ncmdline 1=" + init + "\nenv=" + testPath + " HOME=/root\n"
	if out != want {
		t.Errorf("inside:\n%s\nwant uid 0, gid 0, hostname lkbuild, our init as pid 1 and only the spec's environment:\n%s", out, want)
	}
}

func TestSandboxNetwork(t *testing.T) {
	// A listener on the host's loopback: from inside, 127.0.0.1 is the
	// sandbox's own loopback, so the host's service must be unreachable.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	addr := ln.Addr().String()
	out := mustTool(t, Spec{Rootfs: tinyRootfs(t)}, "ifaces", "routes", "dial", addr, "loopback")
	want := "ifaces=lo:up\nroutes=0\ndial " + addr + ": ECONNREFUSED\nloopback: ok\n"
	if out != want {
		t.Errorf("network view:\n%s\nwant:\n%s", out, want)
	}
}

func TestSandboxHostNetwork(t *testing.T) {
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
	addr := ln.Addr().String()
	out := mustTool(t, Spec{Rootfs: tinyRootfs(t), HostNetwork: true}, "dial", addr)
	if out != "dial "+addr+": ok\n" {
		t.Errorf("with HostNetwork the host's loopback service was not reachable: %q", out)
	}
}

func TestSandboxSeesOnlyBinds(t *testing.T) {
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
	spec := Spec{Rootfs: tinyRootfs(t), Mounts: []Mount{{Source: shared, Target: "/shared"}, {Source: ro, Target: "/in", ReadOnly: true}}}
	out := mustTool(t, spec, "stat", secret, "stat", host, "write", "/shared/out", "written\n", "cat", "/in/in", "write", "/in/new", "x")
	want := "stat " + secret + ": ENOENT\nstat " + host + ": ENOENT\nwrite /shared/out: ok\ncat /in/in: \"ro-content\"\nwrite /in/new: EROFS\n"
	if out != want {
		t.Errorf("inside:\n%s\nwant:\n%s", out, want)
	}
	if b, err := os.ReadFile(filepath.Join(shared, "out")); err != nil || string(b) != "written\n" {
		t.Errorf("write through read-write bind: %q, %v", b, err)
	}
}

func TestSandboxKeepsRootfsPristine(t *testing.T) {
	for _, noOverlay := range []bool{false, true} {
		t.Run(map[bool]string{false: "overlay", true: "copy"}[noOverlay], func(t *testing.T) {
			root := tinyRootfs(t)
			before := "ID=lkbuild-test\n"
			for name, content := range map[string]string{"etc/os-release": before, "etc/debian_version": "13\n"} {
				if err := os.WriteFile(filepath.Join(root, name), []byte(content), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			var notes []string
			spec := Spec{Rootfs: root, noOverlay: noOverlay, Notify: func(s string) { notes = append(notes, s) }}
			out := mustTool(t, spec,
				"append", "/etc/os-release", "changed\n",
				"write", "/etc/lkbuild-new", "new\n",
				"rm", "/etc/debian_version",
				"mkdir", "/lkbuild-dir",
				"cat", "/etc/os-release")
			want := "append /etc/os-release: ok\nwrite /etc/lkbuild-new: ok\nrm /etc/debian_version: ok\nmkdir /lkbuild-dir: ok\n" +
				"cat /etc/os-release: \"ID=lkbuild-test\\nchanged\\n\"\n"
			if out != want {
				t.Errorf("inside:\n%s\nwant:\n%s", out, want)
			}
			after, err := os.ReadFile(filepath.Join(root, "etc/os-release"))
			if err != nil || string(after) != before {
				t.Errorf("pristine os-release changed to %q: %v", after, err)
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

// TestSandboxScratchUpperOffDisk checks that a run which keeps nothing
// (no UpperDir) writes the command's changes to the rootfs to a tmpfs of
// its own: while the command runs, having written a file into the
// rootfs, the per-run state dir on the host is empty, and after the run
// it is gone. A kernel whose tmpfs has no user.* xattrs (before 6.6) takes
// the disk instead.
func TestSandboxScratchUpperOffDisk(t *testing.T) {
	shared, state := t.TempDir(), t.TempDir()
	spec := Spec{Rootfs: tinyRootfs(t), StateDir: state, Mounts: []Mount{{Source: shared, Target: "/shared"}}}
	type result struct {
		out, stderr string
		err         error
	}
	done := make(chan result, 1)
	go func() {
		out, stderr, err := tool(t, spec, "write", "/etc/lkbuild-scratch", "in the upper dir",
			"write", "/shared/ready", "1", "wait-file", "/shared/go", "cat", "/etc/lkbuild-scratch")
		done <- result{out, stderr, err}
	}()
	var r result
	for ready := false; !ready; {
		select {
		case r = <-done:
			t.Fatalf("the command ended first: %v\nstdout:\n%s\nstderr:\n%s", r.err, r.out, r.stderr)
		case <-time.After(50 * time.Millisecond):
			_, err := os.Stat(filepath.Join(shared, "ready"))
			ready = err == nil
		}
	}
	var seen []string
	filepath.WalkDir(state, func(p string, d os.DirEntry, err error) error {
		if p != state {
			rel, _ := filepath.Rel(state, p)
			seen = append(seen, rel)
		}
		return nil
	})
	var uts unix.Utsname
	unix.Uname(&uts)
	var major, minor int
	fmt.Sscanf(unix.ByteSliceToString(uts.Release[:]), "%d.%d", &major, &minor)
	if major > 6 || major == 6 && minor >= 6 {
		if len(seen) != 1 || !strings.HasPrefix(seen[0], "lkbuild-run-") {
			t.Errorf("the state dir on the host holds %q during the run, want only the run's empty dir", seen)
		}
	} else {
		t.Logf("Linux %d.%d: no user xattrs on tmpfs, the run's dirs are on the disk: %q", major, minor, seen)
	}
	if err := os.WriteFile(filepath.Join(shared, "go"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	r = <-done
	if r.err != nil || !strings.Contains(r.out, "cat /etc/lkbuild-scratch: \"in the upper dir\"\n") {
		t.Errorf("run: %v\nstdout:\n%s\nstderr:\n%s", r.err, r.out, r.stderr)
	}
	if ents, err := os.ReadDir(state); err != nil || len(ents) != 0 {
		t.Errorf("left in the state dir: %v, %v", ents, err)
	}
}

// TestSandboxCopyFallbackDebian runs a Debian userland from the copy
// fallback: copyTree must keep what a real rootfs holds (links, modes,
// owners) well enough for bash and coreutils, and leave the tree pristine.
func TestSandboxCopyFallbackDebian(t *testing.T) {
	// Copying 500 MB would be slow: copy a smaller tree.
	root := rootfstest.SmallTree(t, fixtures.Need(t, rootfstest.AMD64))
	before, err := os.ReadFile(filepath.Join(root, "etc/passwd"))
	if err != nil {
		t.Fatal(err)
	}
	var notes []string
	spec := Spec{Rootfs: root, noOverlay: true, Notify: func(s string) { notes = append(notes, s) }}
	out := mustSh(t, spec, `echo changed >> /etc/passwd && rm /etc/debian_version && tail -n 1 /etc/passwd`)
	if out != "changed\n" {
		t.Errorf("inside: %q", out)
	}
	if after, err := os.ReadFile(filepath.Join(root, "etc/passwd")); err != nil || !bytes.Equal(before, after) {
		t.Errorf("pristine passwd changed: %v", err)
	}
	if _, err := os.Stat(filepath.Join(root, "etc/debian_version")); err != nil {
		t.Errorf("file deleted in the sandbox is gone from the pristine rootfs: %v", err)
	}
	if len(notes) != 1 || !strings.Contains(notes[0], "copying the rootfs") {
		t.Errorf("copy fallback not reported: %q", notes)
	}
}

func TestSandboxExitStatus(t *testing.T) {
	root := tinyRootfs(t)
	tests := []struct {
		action []string
		want   int
	}{
		{[]string{"exit", "0"}, 0},
		{[]string{"exit", "7"}, 7},
		{[]string{"exit", "255"}, 255},
		{[]string{"kill", "9"}, 128 + 9},
		{[]string{"kill", "15"}, 128 + 15},
	}
	for _, tt := range tests {
		out, _, err := tool(t, Spec{Rootfs: root}, tt.action...)
		var ee *ExitError
		switch {
		case tt.want == 0 && err != nil:
			t.Errorf("%s: %v", tt.action, err)
		case tt.want != 0 && (!errors.As(err, &ee) || ee.Code != tt.want):
			t.Errorf("%s: got %v (output %q), want exit status %d", tt.action, err, out, tt.want)
		}
	}
}

// TestSandboxStartErrors checks that a command that cannot be started
// comes back as a *StartError that says why: its errno, and whether the
// program is missing from the rootfs.
func TestSandboxStartErrors(t *testing.T) {
	root := tinyRootfs(t)
	for name, f := range map[string]struct {
		content string
		mode    os.FileMode
	}{
		"etc/not-executable": {"#!/bin/sh\n", 0o644},
		"etc/garbage":        {"\x00\x01\x02\x03 not a program\n", 0o755},
	} {
		if err := os.WriteFile(filepath.Join(root, name), []byte(f.content), f.mode); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name     string
		prog     string
		errno    syscall.Errno
		notFound bool
	}{
		{"not in PATH", "no-such-command", syscall.ENOENT, true},
		{"no such file", "/usr/bin/no-such-command", syscall.ENOENT, true},
		{"not executable", "/etc/not-executable", syscall.EACCES, false},
		{"not a program", "/etc/garbage", syscall.ENOEXEC, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Run(context.Background(), Spec{Rootfs: root, Args: []string{tt.prog}, Env: []string{testPath}, StateDir: t.TempDir()})
			var se *StartError
			if !errors.As(err, &se) {
				t.Fatalf("got %v (%T), want a *StartError", err, err)
			}
			if se.Name != tt.prog {
				t.Errorf("StartError.Name = %q, want %q", se.Name, tt.prog)
			}
			if !errors.Is(err, tt.errno) {
				t.Errorf("%v: not %s", err, unix.ErrnoName(tt.errno))
			}
			if errors.Is(err, ErrCommandNotFound) != tt.notFound {
				t.Errorf("%v: errors.Is(err, ErrCommandNotFound) = %v, want %v", err, !tt.notFound, tt.notFound)
			}
			var ee *ExitError
			if errors.As(err, &ee) {
				t.Errorf("%v is also an ExitError", err)
			}
			// The message is for people: it must name the program.
			if !strings.Contains(err.Error(), tt.prog) {
				t.Errorf("%q does not name %s", err, tt.prog)
			}
		})
	}
}

// TestSandboxSetupErrno checks that a setup step that failed with an errno
// returns a *SetupError that wraps it, whether the parent found the fault
// or the init did, in the sandbox's namespaces, across the re-exec.
func TestSandboxSetupErrno(t *testing.T) {
	root := tinyRootfs(t)
	missing := filepath.Join(t.TempDir(), "missing")
	src := t.TempDir()
	tests := []struct {
		name  string
		spec  Spec
		step  string
		errno syscall.Errno
	}{
		{"missing bind source", Spec{Mounts: []Mount{{Source: missing, Target: "/mnt"}}}, "bind " + missing + " to /mnt", syscall.ENOENT},
		{"missing working directory", Spec{Dir: "/no/such/dir"}, "change to working directory", syscall.ENOENT},
		{"bind target under a file", Spec{Mounts: []Mount{{Source: src, Target: "/usr/bin/" + toolName + "/mnt"}}}, "bind " + src + " to /usr/bin/" + toolName + "/mnt", syscall.ENOTDIR},
		{"host name too long", Spec{Hostname: strings.Repeat("h", 65)}, "set hostname", syscall.EINVAL},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.spec.Rootfs = root
			out, _, err := tool(t, tt.spec, "echo", "ran")
			var se *SetupError
			if !errors.As(err, &se) {
				t.Fatalf("got %v (%T), output %q; want a *SetupError", err, err, out)
			}
			if se.Step != tt.step {
				t.Errorf("step %q, want %q", se.Step, tt.step)
			}
			if !errors.Is(err, tt.errno) {
				t.Errorf("%v: not %s", err, unix.ErrnoName(tt.errno))
			}
			if out != "" {
				t.Errorf("the command ran: %q", out)
			}
		})
	}
}

func TestSandboxCancelKillsEverything(t *testing.T) {
	root := tinyRootfs(t)
	marker := strconv.Itoa(40000 + os.Getpid()%10000)
	ctx, cancel := context.WithCancel(context.Background())
	started := make(chan struct{})
	var out bytes.Buffer
	w := &signalWriter{w: &out, seen: started, want: "started"}
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Spec{
			Rootfs: root, Env: []string{testPath}, StateDir: t.TempDir(), Stdout: w,
			// Two background processes, one of them ignoring SIGTERM,
			// and the foreground one waiting for them: none of them
			// may survive. Only the background ones have "sleep" and
			// the marker as separate arguments, which countProcs seeks.
			Args: []string{toolName, "bg", "ignore-term sleep " + marker, "bg", "sleep " + marker, "echo", "started", "wait"},
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
	arm64, err := kernel.ParseArch("arm64")
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
	root := tinyRootfs(t)
	host := t.TempDir()
	for link, target := range map[string]string{"proc": "/proc", "tmp": "/tmp", "escape": host} {
		os.RemoveAll(filepath.Join(root, link))
		if err := os.Symlink(target, filepath.Join(root, link)); err != nil {
			t.Fatal(err)
		}
	}
	src := t.TempDir()
	out := mustTool(t, Spec{Rootfs: root, Mounts: []Mount{{Source: src, Target: "/escape/mnt"}}},
		"stat", "/proc/self", "stat", "/escape/mnt", "write", "/escape/mnt/f", "bound", "write", "/tmp/x", "")
	if want := "stat /proc/self: dir\nstat /escape/mnt: dir\nwrite /escape/mnt/f: ok\nwrite /tmp/x: ok\n"; out != want {
		t.Errorf("inside:\n%s\nwant:\n%s", out, want)
	}
	if b, err := os.ReadFile(filepath.Join(src, "f")); err != nil || string(b) != "bound" {
		t.Errorf("write through the bind: %q, %v", b, err)
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
	arm64, _ := kernel.ParseArch("arm64")
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
	rootfs := tinyRootfs(t)
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
	got := mustTool(t, rw, "cat", "/src/a", "write", "/src/a", "changed\n", "write", "/src/b", "new\n", "rm", "/src/gone")
	if want := "cat /src/a: \"pristine\\n\"\nwrite /src/a: ok\nwrite /src/b: ok\nrm /src/gone: ok\n"; got != want {
		t.Errorf("read-write overlay:\n%s\nwant:\n%s", got, want)
	}
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
	got = mustTool(t, ro, "cat", "/src/a", "cat", "/src/b", "stat", "/src/gone", "write", "/src/x", "")
	if want := "cat /src/a: \"changed\\n\"\ncat /src/b: \"new\\n\"\nstat /src/gone: ENOENT\nwrite /src/x: EROFS\n"; got != want {
		t.Errorf("read-only overlay:\n%s\nwant:\n%s", got, want)
	}

	bad := Spec{Rootfs: rootfs, Args: []string{toolName}, Mounts: []Mount{{Target: "/src", Overlay: &Overlay{Lower: []string{lower}, Upper: upper}}}}
	if err := Run(context.Background(), bad); err == nil || !strings.Contains(err.Error(), "work directory") {
		t.Errorf("upper without work: %v", err)
	}
	bad.Mounts[0].Overlay = &Overlay{Lower: []string{filepath.Join(dir, "a:b")}}
	if err := Run(context.Background(), bad); err == nil {
		t.Errorf("a lower dir with ':' was taken")
	}
}
