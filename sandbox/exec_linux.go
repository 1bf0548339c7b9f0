package sandbox

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// How the command is started, and with which privileges:
//
//   - A build step's command (the usual case) is started by the init
//     itself, forked from a thread whose capability bounding set has lost
//     what a build step does not need (CAP_SYS_ADMIN above all: no
//     mounts, remounts or unmounts, no namespaces of its own with power
//     over ours) and which has no_new_privs set, so a setuid binary or a
//     file capability in the rootfs gains nothing. The child inherits
//     both; its exec as root gives it only what the bounding set holds.
//     Should it make a user namespace of its own (no capability needed),
//     the mounts it sees there are locked by the kernel: a read-only bind
//     stays read-only and cannot be unmounted to show what is below.
//   - A writable rootfs (bootstrapping: debootstrap's second stage mounts
//     /proc itself) keeps CAP_SYS_ADMIN, so its command runs in a user and
//     mount namespace nested in the init's, entered through execName: the
//     mounts copied into that mount namespace are locked, so
//     `mount -o remount,rw` of a read-only bind fails with EPERM whatever
//     the command holds. The shim drops the rest as above before it
//     executes the command.
//
// Commands keep what package installs need (chown, setuid to a package
// user, mknod).

// execName is argv[0] of the shim that starts the command.
const execName = "lkbuild-sandbox-exec"

// execStatusFD is where the shim reports an exec that failed: the errno
// as 4 bytes. The pipe is close-on-exec, so it ends empty when the
// command started.
const execStatusFD = 3

// droppedCaps are taken from every command's bounding set.
func droppedCaps() []uintptr {
	return []uintptr{
		unix.CAP_SYS_ADMIN, unix.CAP_SYS_PTRACE, unix.CAP_SYS_MODULE, unix.CAP_SYS_RAWIO,
		unix.CAP_SYS_BOOT, unix.CAP_SYS_TIME, unix.CAP_MAC_ADMIN, unix.CAP_MAC_OVERRIDE,
		unix.CAP_SYSLOG, unix.CAP_BPF, unix.CAP_PERFMON, unix.CAP_NET_ADMIN,
	}
}

// execMain is the shim of a writable rootfs's command: argv is
// [execName, path, argv...]. It keeps CAP_SYS_ADMIN (see above).
func execMain(args []string) int {
	// Capabilities and no_new_privs are per thread: do both on the thread
	// that executes the command.
	runtime.LockOSThread()
	status := os.NewFile(execStatusFD, "exec status")
	fail := func(err error) int {
		errno, ok := err.(syscall.Errno)
		if !ok {
			errno = unix.EINVAL
		}
		var b [4]byte
		binary.LittleEndian.PutUint32(b[:], uint32(errno))
		status.Write(b[:])
		fmt.Fprintln(os.Stderr, "lkbuild sandbox:", err)
		if errno == unix.ENOENT {
			return 127
		}
		return 126
	}
	if len(args) < 3 {
		return fail(unix.EINVAL)
	}
	path, argv := args[1], args[2:]
	if err := dropPrivileges(true); err != nil {
		return fail(err)
	}
	unix.CloseOnExec(execStatusFD)
	return fail(unix.Exec(path, argv, os.Environ()))
}

// dropPrivileges clears the calling thread's inheritable and ambient
// capabilities, drops droppedCaps (but CAP_SYS_ADMIN when keepSysAdmin)
// from its bounding set, sets its no_new_privs and sets the process's
// umask: the caller's umask (077 on a careful host) must not
// change the modes of what a step writes, every command starts with 022.
// Both privilege changes are per thread, inherited by what the thread
// forks or executes.
func dropPrivileges(keepSysAdmin bool) error {
	// What an exec as root would add to the bounding set goes first: the
	// inheritable and ambient capabilities (the init's, with subordinate
	// ids, are all of them: ambient ones kept across its own exec).
	if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0); err != nil && err != unix.EINVAL {
		return err
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return err
	}
	data[0].Inheritable, data[1].Inheritable = 0, 0
	if err := unix.Capset(&hdr, &data[0]); err != nil {
		return err
	}
	for _, c := range droppedCaps() {
		if c == unix.CAP_SYS_ADMIN && keepSysAdmin {
			continue
		}
		// EINVAL: a capability this kernel does not know.
		if err := unix.Prctl(unix.PR_CAPBSET_DROP, c, 0, 0, 0); err != nil && err != unix.EINVAL {
			return err
		}
	}
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return err
	}
	unix.Umask(0o022)
	return nil
}

// nestedAttr is how the init starts the shim: in a user namespace that
// maps every id of the sandbox's to itself, and a mount namespace of its
// own, which locks the mounts copied into it.
func nestedAttr() (*syscall.SysProcAttr, error) {
	uids, err := readIDMap("/proc/self/uid_map")
	if err != nil {
		return nil, err
	}
	gids, err := readIDMap("/proc/self/gid_map")
	if err != nil {
		return nil, err
	}
	// A child namespace may allow setgroups(2) only where ours does.
	sg, err := os.ReadFile("/proc/self/setgroups")
	if err != nil {
		return nil, err
	}
	return &syscall.SysProcAttr{
		Cloneflags:                 unix.CLONE_NEWUSER | unix.CLONE_NEWNS,
		UidMappings:                uids,
		GidMappings:                gids,
		GidMappingsEnableSetgroups: strings.TrimSpace(string(sg)) == "allow",
	}, nil
}

// readIDMap reads the id map of our user namespace as an identity map for
// a child namespace: each range the sandbox has, mapped to itself.
func readIDMap(file string) ([]syscall.SysProcIDMap, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return parseIDMap(f)
}

// parseIDMap reads /proc/PID/uid_map lines ("inside outside count").
func parseIDMap(r io.Reader) ([]syscall.SysProcIDMap, error) {
	var m []syscall.SysProcIDMap
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 3 {
			return nil, fmt.Errorf("id map line %q", sc.Text())
		}
		inside, err1 := strconv.Atoi(f[0])
		size, err2 := strconv.Atoi(f[2])
		if err1 != nil || err2 != nil || size <= 0 {
			return nil, fmt.Errorf("id map line %q", sc.Text())
		}
		m = append(m, syscall.SysProcIDMap{ContainerID: inside, HostID: inside, Size: size})
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(m) == 0 {
		return nil, fmt.Errorf("empty id map")
	}
	return m, nil
}

// startCommand starts the command at path and returns its pid once it
// has been executed: an exec that failed comes back as its error. It
// forks with syscall.ForkExec, not os.StartProcess, whose first use in a
// process probes pidfd support by forking a child of its own: a quarter
// of a millisecond of every sandbox's start.
func startCommand(path string, cfg *initConfig, env []string) (int, error) {
	if cfg.Writable {
		return startNested(path, cfg, env)
	}
	type started struct {
		pid int
		err error
	}
	done := make(chan started, 1)
	go func() {
		// The privileges go on this thread only, and the thread with
		// them: a goroutine that ends locked takes its thread along.
		runtime.LockOSThread()
		if err := dropPrivileges(false); err != nil {
			done <- started{err: fmt.Errorf("drop privileges: %w", err)}
			return
		}
		attr := &syscall.SysProcAttr{}
		if cfg.Terminal {
			attr.Setsid, attr.Setctty, attr.Ctty = true, true, 0
		}
		pid, err := syscall.ForkExec(path, cfg.Args, &syscall.ProcAttr{
			Dir:   cfg.Dir,
			Env:   env,
			Files: []uintptr{0, 1, 2},
			Sys:   attr,
		})
		if err != nil {
			err = &os.PathError{Op: "exec", Path: path, Err: err}
		}
		done <- started{pid, err}
	}()
	s := <-done
	return s.pid, s.err
}

// startNested starts the command at path through the shim, in the nested
// namespaces, and returns its pid once it has been executed: an exec that
// failed comes back as its errno.
func startNested(path string, cfg *initConfig, env []string) (int, error) {
	attr, err := nestedAttr()
	if err != nil {
		return 0, fmt.Errorf("id maps for the command: %w", err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		return 0, err
	}
	defer r.Close()
	if cfg.Terminal {
		attr.Setsid, attr.Setctty, attr.Ctty = true, true, 0
	}
	pid, err := syscall.ForkExec("/proc/self/exe", append([]string{execName, path}, cfg.Args...), &syscall.ProcAttr{
		Dir:   cfg.Dir,
		Env:   env,
		Files: []uintptr{0, 1, 2, w.Fd()},
		Sys:   attr,
	})
	w.Close()
	if err != nil {
		return 0, &os.PathError{Op: "exec", Path: "/proc/self/exe", Err: err}
	}
	var b [4]byte
	if n, _ := io.ReadFull(r, b[:]); n == 4 {
		unix.Wait4(pid, nil, 0, nil)
		return 0, &os.PathError{Op: "exec", Path: path, Err: syscall.Errno(binary.LittleEndian.Uint32(b[:]))}
	}
	return pid, nil
}
