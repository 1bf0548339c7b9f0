package sandbox

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"

	"github.com/lkbuild/lkbuild/internal/testenv"
)

const childTestVar = "LKBUILD_BUILDER_CHILD_TEST"

// runChildTest runs a scenario that must happen in a process of its own,
// started by a test: it reports through its exit status and stderr.
func runChildTest(name string) int {
	switch name {
	case "userns-refused":
		// We are root in a user namespace of our own: forbid nested ones,
		// as a host with user.max_user_namespaces=0 does.
		if err := os.WriteFile("/proc/sys/user/max_user_namespaces", []byte("0"), 0); err != nil {
			fmt.Fprintln(os.Stderr, "cannot set max_user_namespaces:", err)
			return 3
		}
		err := Run(context.Background(), Spec{Rootfs: "/", Args: []string{"/bin/true"}})
		var se *SetupError
		// clone(2) gives ENOSPC for a user namespace over the limit.
		if !errors.As(err, &se) || se.Step != "create user namespace" || !errors.Is(err, syscall.ENOSPC) {
			fmt.Fprintf(os.Stderr, "Run: got %v, want a SetupError at create user namespace wrapping ENOSPC\n", err)
			return 1
		}
		fmt.Fprintln(os.Stderr, err)
		if err := Probe(context.Background(), "userns"); err != nil {
			fmt.Fprintln(os.Stderr, "probe:", err)
			if !errors.Is(err, syscall.ENOSPC) {
				fmt.Fprintln(os.Stderr, "the probe's error does not wrap ENOSPC")
				return 1
			}
		}
		return 0
	}
	fmt.Fprintln(os.Stderr, "unknown child test", name)
	return 2
}

// TestUsernsRefusedIsExplained runs Run where creating a user namespace is
// refused, in a child user namespace whose max_user_namespaces is 0, and
// checks that the error says so and how to fix it.
func TestUsernsRefusedIsExplained(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(self, "-test.run=^$")
	cmd.Env = append(os.Environ(), childTestVar+"=userns-refused")
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags:  syscall.CLONE_NEWUSER,
		UidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getuid(), Size: 1}},
		GidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getgid(), Size: 1}},
	}
	out, err := cmd.CombinedOutput()
	testenv.Need(t, !errors.Is(err, syscall.EPERM), "user namespaces are not available to the tests")
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "user.max_user_namespaces=0") || !strings.Contains(string(out), "sysctl -w user.max_user_namespaces") {
		t.Errorf("error does not name the setting and the fix:\n%s", out)
	}
	if !strings.Contains(string(out), "probe: ") {
		t.Errorf("the userns probe did not fail:\n%s", out)
	}
}

// TestSandboxSetgroups: package managers drop privileges with setgroups(2)
// (apt's _apt, for its downloads), which builder-image --run needs. Real
// root and a subordinate-id map allow it; a single-id map cannot
// (user_namespaces(7) requires "deny" there), and says so as EPERM.
func TestSandboxSetgroups(t *testing.T) {
	m := chooseIDMapping(os.Getuid(), os.Getgid())
	want := "setgroups: ok\n"
	if os.Getuid() != 0 && !m.helper() {
		want = "setgroups: EPERM\n"
	}
	for _, writable := range []bool{false, true} {
		out := mustTool(t, Spec{Rootfs: tinyRootfs(t), Writable: writable}, "setgroups")
		if out != want {
			t.Errorf("writable %v: %q, want %q", writable, out, want)
		}
	}
}
