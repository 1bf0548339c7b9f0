package builder

import (
	"context"
	"fmt"
	"os"
	"os/user"
	"strconv"
	"strings"

	"github.com/lkbuild/lkbuild/kernel"
	"github.com/lkbuild/lkbuild/sandbox"
	"github.com/lkbuild/lkbuild/toolchain"
)

// Status is the outcome of one doctor check.
type Status string

const (
	StatusOK   Status = "ok"
	StatusWarn Status = "warn" // works, but slower or with less
	StatusFail Status = "FAIL" // builds cannot run until fixed
)

// Check is one line of lkbuild doctor: a capability, its state and, when
// it is missing, how to get it.
type Check struct {
	Name   string
	Status Status
	Detail string
	Fix    string
}

// Doctor checks what the sandbox needs from this host, by trying it where
// it can: a user namespace, overlayfs and binfmt_misc inside one, QEMU for
// each foreign architecture, subordinate id ranges and the CPU limit.
func Doctor(ctx context.Context) []Check {
	var checks []Check
	userns := Check{Name: "user namespaces", Status: StatusOK, Detail: "can create user, mount, pid, uts, ipc and network namespaces"}
	if err := sandbox.Probe(ctx, "userns"); err != nil {
		userns = Check{Name: "user namespaces", Status: StatusFail, Detail: err.Error(), Fix: toolchain.UsernsHint(os.ReadFile)}
	}
	checks = append(checks, userns)
	if userns.Status == StatusOK {
		c := Check{Name: "overlayfs in a user namespace", Status: StatusOK, Detail: "builds share one unpacked rootfs"}
		if err := sandbox.Probe(ctx, "overlay"); err != nil {
			c = Check{Name: c.Name, Status: StatusWarn, Detail: err.Error(),
				Fix: "needs Linux 5.11+ (userxattr); without it every build copies the rootfs first"}
		}
		checks = append(checks, c)
		c = Check{Name: "binfmt_misc in a user namespace", Status: StatusOK, Detail: "QEMU is registered per build; the host's binfmt_misc is untouched"}
		if err := sandbox.Probe(ctx, "binfmt"); err != nil {
			c = Check{Name: c.Name, Status: StatusWarn, Detail: err.Error(),
				Fix: "needs Linux 6.7+; otherwise foreign arches need a host registration with the F flag (apt-get install qemu-user-static binfmt-support)"}
		}
		checks = append(checks, c)
	}
	host, _ := toolchain.HostArch()
	for _, name := range []string{"x86_64", "aarch64", "riscv64"} {
		a, _ := kernel.ParseArch(name)
		if a.Uname == host.Uname {
			continue
		}
		c := Check{Name: "qemu for " + name, Status: StatusOK}
		e, err := toolchain.FindEmulator(a, toolchain.Host())
		switch {
		case err != nil:
			c.Status, c.Detail, c.Fix = StatusWarn, "foreign builds for "+name+" cannot run", strings.TrimPrefix(err.Error(), toolchain.ErrNoEmulator.Error()+": ")
		case e.Register:
			c.Detail = e.Interpreter + ", registered inside each sandbox; emulated builds run 6-8x slower than native, --cross-image (the fast path) about as fast as native"
		default:
			c.Detail = e.Interpreter + ", through the host's binfmt_misc registration; emulated builds run 6-8x slower than native, --cross-image (the fast path) about as fast as native"
		}
		checks = append(checks, c)
	}
	checks = append(checks, subIDCheck(), cpuCheck())
	return checks
}

func subIDCheck() Check {
	c := Check{Name: "subordinate ids", Status: StatusOK}
	u, err := user.Current()
	if err != nil || u.Uid == "0" {
		c.Detail = "running as root: ids 0-65535 map onto themselves"
		return c
	}
	b, err := os.ReadFile("/etc/subuid")
	n := 0
	if err == nil {
		n = toolchain.SubIDCount(string(b), u.Username, u.Uid)
	}
	if n >= 65536 {
		c.Detail = fmt.Sprintf("%d subordinate uids for %s: the sandbox maps you to root and 65535 more ids (newuidmap), so package managers can chown", n, u.Username)
		return c
	}
	c.Status = StatusWarn
	c.Detail = "no /etc/subuid range of 65536: the sandbox maps only you, to root; kernel builds need no more, but chown to other ids fails (e.g. apt in builder-image)"
	c.Fix = "add ranges: usermod --add-subuids 100000-165535 --add-subgids 100000-165535 " + u.Username + " (and apt-get install uidmap)"
	return c
}

func cpuCheck() Check {
	l := toolchain.UsableCPUs()
	d := fmt.Sprintf("make -j%d: %d CPUs in the affinity mask", l.Jobs(), l.Affinity)
	if l.Quota > 0 {
		d += fmt.Sprintf(", cgroup %s limits to %s CPUs", l.Cgroup, strconv.FormatFloat(l.Quota, 'f', -1, 64))
	} else {
		d += ", no cgroup CPU quota"
	}
	return Check{Name: "CPU limit", Status: StatusOK, Detail: d}
}
