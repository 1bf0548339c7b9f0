package sandbox

import (
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"strconv"
	"syscall"

	"github.com/lkbuild/lkbuild/toolchain"
)

// subIDs is how many ids the sandbox maps when it can: root plus the
// 65535 ids a Debian-like rootfs uses.
const subIDs = 65536

// idMapping is how the sandbox's user namespace maps ids.
type idMapping struct {
	// direct maps are written by the Go runtime at clone time.
	uids, gids []syscall.SysProcIDMap
	// helper mode: newuidmap/newgidmap (setuid) write a map with the
	// caller's subordinate ids while the child waits.
	newuidmap, newgidmap string
	uidArgs, gidArgs     []string
	// host ids and subordinate range starts, to map owners back
	uid, gid, subUID, subGID int
	// setgroups allows setgroups(2) in the namespace, as package
	// managers' privilege drops need (apt's _apt). Only real root may
	// allow it on a direct map; newgidmap decides for a helper map; a
	// single-id map must deny it (user_namespaces(7)).
	setgroups bool
}

// containerOwner turns the owner of a file the sandbox wrote (as the host
// sees it) into the owner inside the sandbox.
func (m idMapping) containerOwner(uid, gid int) (int, int) {
	if len(m.uids) == 1 && m.uids[0].HostID == 0 {
		return uid, gid // real root: identity
	}
	back := func(id, self, sub int) int {
		if m.helper() && id >= sub && id < sub+subIDs-1 {
			return 1 + id - sub
		}
		return 0 // the caller, or anything unmapped, is root inside
	}
	return back(uid, m.uid, m.subUID), back(gid, m.gid, m.subGID)
}

func (m idMapping) helper() bool { return m.newuidmap != "" }

// chooseIDMapping picks the mapping: real root maps ids 0-65535 onto
// themselves; an unprivileged user with /etc/subuid and /etc/subgid ranges
// and the uidmap tools gets itself as root plus 65535 subordinate ids (so
// package managers can chown); otherwise only itself, as root.
func chooseIDMapping(uid, gid int) idMapping {
	if uid == 0 {
		full := []syscall.SysProcIDMap{{ContainerID: 0, HostID: 0, Size: subIDs}}
		return idMapping{uids: full, gids: full, setgroups: true}
	}
	single := idMapping{
		uids: []syscall.SysProcIDMap{{ContainerID: 0, HostID: uid, Size: 1}},
		gids: []syscall.SysProcIDMap{{ContainerID: 0, HostID: gid, Size: 1}},
	}
	nu, err1 := exec.LookPath("newuidmap")
	ng, err2 := exec.LookPath("newgidmap")
	u, err3 := user.LookupId(strconv.Itoa(uid))
	if err1 != nil || err2 != nil || err3 != nil {
		return single
	}
	subuid, _ := os.ReadFile("/etc/subuid")
	subgid, _ := os.ReadFile("/etc/subgid")
	su, ok1 := toolchain.SubIDRange(string(subuid), u.Username, strconv.Itoa(uid), subIDs-1)
	sg, ok2 := toolchain.SubIDRange(string(subgid), u.Username, strconv.Itoa(uid), subIDs-1)
	if !ok1 || !ok2 {
		return single
	}
	return idMapping{
		newuidmap: nu, newgidmap: ng,
		uid: uid, gid: gid, subUID: su, subGID: sg,
		uidArgs: []string{"0", strconv.Itoa(uid), "1", "1", strconv.Itoa(su), strconv.Itoa(subIDs - 1)},
		gidArgs: []string{"0", strconv.Itoa(gid), "1", "1", strconv.Itoa(sg), strconv.Itoa(subIDs - 1)},
	}
}

// writeMaps runs newuidmap and newgidmap for the waiting child pid.
func (m idMapping) writeMaps(pid int) error {
	for _, c := range []struct {
		tool string
		args []string
	}{{m.newuidmap, m.uidArgs}, {m.newgidmap, m.gidArgs}} {
		out, err := exec.Command(c.tool, append([]string{strconv.Itoa(pid)}, c.args...)...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("%s %d %v: %w: %s", c.tool, pid, c.args, err, out)
		}
	}
	return nil
}

// OwnerMap says how owners in an upper dir the sandbox wrote become
// owners in a layer.
func OwnerMap() func(int, int) (int, int) {
	return chooseIDMapping(os.Getuid(), os.Getgid()).containerOwner
}
