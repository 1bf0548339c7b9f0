package sandbox

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/signal"
	"path/filepath"
	"strings"

	securejoin "github.com/cyphar/filepath-securejoin"
	"golang.org/x/sys/unix"
)

// initMain is the sandbox init: it runs in the new namespaces as pid 1,
// sets up the root filesystem, runs the command, reaps every process and
// exits with the command's status.
func initMain() int {
	unix.CloseOnExec(configFD)
	unix.CloseOnExec(reportFD)
	report := os.NewFile(reportFD, "report")
	enc := json.NewEncoder(report)
	fail := func(step string, err error) int {
		enc.Encode(failReport(step, err))
		return ExitSetupFailed
	}
	if len(os.Args) > 1 && os.Args[1] == awaitIDMap {
		if err := awaitMaps(); err != nil {
			return fail("wait for the id maps", err)
		}
	}
	var cfg initConfig
	if err := json.NewDecoder(os.NewFile(configFD, "config")).Decode(&cfg); err != nil {
		return fail("read config", err)
	}
	if cfg.Probe != "" {
		if err := runProbe(&cfg); err != nil {
			return fail("probe "+cfg.Probe, err)
		}
		return 0
	}
	note := func(s string) { enc.Encode(initReport{Note: s}) }
	if step, err := setupRoot(&cfg, note); err != nil {
		return fail(step, err)
	}
	path, err := lookPath(cfg.Args[0], cfg.Env)
	if err != nil {
		enc.Encode(failReport(stepStart, err))
		return 127 // as a shell's "command not found"
	}
	// Catch signals before starting the child so none is lost.
	sigs := make(chan os.Signal, 32)
	signal.Notify(sigs, forwarded()...)
	env := cfg.Env
	if cfg.Emulator != nil {
		env = EnvDefaults(env, cfg.Emulator.Env)
	}
	// The command runs as the same ids as we do: without this, it could
	// read our /proc/1/fd (the caller's streams and pipes). Set before the
	// command starts; its own exec makes it dumpable again.
	unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0)
	pid, err := startCommand(path, &cfg, env)
	if err != nil {
		code := 126
		if errors.Is(err, fs.ErrNotExist) {
			code = 127
		}
		enc.Encode(failReport(stepStart, err))
		return code
	}
	report.Close()
	return superviseChild(pid, sigs)
}

// awaitMaps waits for the parent's go, given once newuidmap and newgidmap
// have written our maps: from then on we are root in the namespace, with
// the capabilities the clone gave us (kept as ambient across our exec).
func awaitMaps() error {
	b := make([]byte, 1)
	n, err := unix.Read(goFD, b)
	unix.Close(goFD)
	if n != 1 {
		if err == nil {
			err = io.ErrUnexpectedEOF // the parent gave up
		}
		return err
	}
	return nil
}

// forwarded are the signals the init catches: SIGCHLD, to reap, and those
// a caller, a terminal or a job-control shell sends to stop or steer a
// command, which go on to the command. As pid 1 the init never gets a
// signal it has no handler for (but SIGKILL and SIGSTOP from outside).
// Not every signal: Go's signal.Notify enables each with a round trip to
// its signal-mask thread, and all 65 took 4-5 ms of every sandbox start.
func forwarded() []os.Signal {
	return []os.Signal{
		unix.SIGCHLD,
		unix.SIGHUP, unix.SIGINT, unix.SIGQUIT, unix.SIGTERM, unix.SIGUSR1, unix.SIGUSR2,
		unix.SIGWINCH, unix.SIGCONT, unix.SIGTSTP, unix.SIGTTIN, unix.SIGTTOU, unix.SIGALRM,
	}
}

// superviseChild forwards signals to the command and reaps every process
// that ends up as our child (orphans are reparented to pid 1). When the
// command exits, whatever is left in the namespace is killed, and its
// status becomes ours.
func superviseChild(pid int, sigs chan os.Signal) int {
	for sig := range sigs {
		if sig != unix.SIGCHLD {
			unix.Kill(pid, sig.(unix.Signal))
			continue
		}
		for {
			var ws unix.WaitStatus
			got, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
			if err != nil || got <= 0 {
				break
			}
			if got != pid {
				continue
			}
			code := ws.ExitStatus()
			if ws.Signaled() {
				code = 128 + int(ws.Signal())
			}
			// kill(-1) from pid 1 reaches every other process in the
			// namespace; then reap them.
			unix.Kill(-1, unix.SIGKILL)
			for {
				if _, err := unix.Wait4(-1, nil, 0, nil); err != nil {
					break
				}
			}
			return code
		}
	}
	return 1
}

// lookPath finds a command the way a shell would, in the PATH of env.
func lookPath(name string, env []string) (string, error) {
	if strings.Contains(name, "/") {
		return name, nil
	}
	path := "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			path = v
		}
	}
	for _, dir := range filepath.SplitList(path) {
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", &notInPathError{name: name, path: path}
}

// notInPathError is lookPath's error. Like a shell's "command not found"
// it wraps ENOENT, which the parent then matches to ErrCommandNotFound.
type notInPathError struct{ name, path string }

func (e *notInPathError) Error() string { return e.name + ": not found in PATH=" + e.path }
func (e *notInPathError) Unwrap() error { return unix.ENOENT }

// setupRoot builds the sandbox's root filesystem and pivots into it. It
// returns the name of the step that failed.
func setupRoot(cfg *initConfig, note func(string)) (string, error) {
	// Nothing we mount may propagate back to the host.
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return "make mounts private", &os.PathError{Op: "mount", Path: "/", Err: err}
	}
	if cfg.Scratch != "" {
		if err := scratchDirs(cfg); err != nil {
			return "make the run's upper dir", err
		}
	}
	if err := mountRootfs(cfg, note); err != nil {
		return "mount root filesystem", err
	}
	root := cfg.Root
	for _, d := range []string{"proc", "dev", "tmp", "sys"} {
		if err := ensureDir(filepath.Join(root, d)); err != nil {
			return "create /" + d, err
		}
	}
	if err := mountAt("proc", root, "/proc", "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return "mount /proc", err
	}
	if !cfg.HostNetwork {
		// sysfs can only be mounted with a network namespace of our own;
		// builds read little from it, so do without where refused.
		mountAt("sysfs", root, "/sys", "sysfs", unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "")
	}
	if err := mountDev(root, cfg.TerminalPath); err != nil {
		return "set up /dev", err
	}
	if err := mountAt("tmpfs", root, "/tmp", "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=1777"); err != nil {
		return "mount /tmp", err
	}
	for _, m := range cfg.Mounts {
		if err := bindMount(root, m); err != nil {
			return bindStep(m), err
		}
	}
	if cfg.HostNetwork {
		// Name resolution for setup commands that fetch packages.
		if _, err := os.Stat("/etc/resolv.conf"); err == nil {
			bindMount(root, Mount{Source: "/etc/resolv.conf", Target: "/etc/resolv.conf", ReadOnly: true})
		}
	}
	if cfg.Emulator != nil {
		if err := registerEmulator(root, cfg.Emulator); err != nil {
			return "register " + cfg.Emulator.Name + " with binfmt_misc", err
		}
	}
	if err := unix.Sethostname([]byte(cfg.Hostname)); err != nil {
		return "set hostname", err
	}
	if !cfg.HostNetwork {
		if err := loopbackUp(); err != nil {
			return "bring up loopback", err
		}
	}
	if err := pivotRoot(root); err != nil {
		return "pivot_root", err
	}
	if err := os.Chdir(cfg.Dir); err != nil {
		return "change to working directory", err
	}
	return "", nil
}

// scratchDirs makes the upper, work and root dirs of a run that keeps
// nothing, on a tmpfs mounted over the state dir in our mount namespace:
// no disk write, and nothing left to remove after. Where that tmpfs
// cannot hold overlayfs's user.* xattrs (before Linux 6.6) the dirs go on
// the disk, in the state dir, as the caller's upper dir would.
func scratchDirs(cfg *initConfig) error {
	if err := unix.Mount("tmpfs", cfg.Scratch, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=0755"); err != nil {
		return &os.PathError{Op: "mount tmpfs", Path: cfg.Scratch, Err: err}
	}
	if err := unix.Setxattr(cfg.Scratch, "user.lkbuild", []byte{1}, 0); err != nil {
		if err := unix.Unmount(cfg.Scratch, unix.MNT_DETACH); err != nil {
			return &os.PathError{Op: "unmount tmpfs", Path: cfg.Scratch, Err: err}
		}
	}
	for _, d := range []string{cfg.Upper, cfg.Work, cfg.Root} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	return nil
}

// mountRootfs mounts the overlay of the pristine rootfs and the upper dir
// on cfg.Root; where overlayfs is refused it copies the rootfs into the
// upper dir and binds that instead.
func mountRootfs(cfg *initConfig, note func(string)) error {
	if cfg.Writable {
		if err := unix.Mount(cfg.Lower, cfg.Root, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return &os.PathError{Op: "bind mount", Path: cfg.Lower, Err: err}
		}
		return nil
	}
	opts := fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s", cfg.Lower, cfg.Upper, cfg.Work)
	err := errors.New("disabled for this run")
	if !cfg.NoOverlay {
		// In a user namespace overlayfs keeps its metadata in user.*
		// xattrs (userxattr, Linux 5.11+); older kernels only know the
		// trusted.* form.
		if err = unix.Mount("overlay", cfg.Root, "overlay", 0, opts+",userxattr"); err == nil {
			return nil
		}
		if unix.Mount("overlay", cfg.Root, "overlay", 0, opts) == nil {
			return nil
		}
	}
	note(fmt.Sprintf("overlayfs refused (%v); copying the rootfs instead, which is slower", err))
	if err := copyTree(cfg.Lower, cfg.Upper); err != nil {
		return fmt.Errorf("copy rootfs: %w", err)
	}
	if err := unix.Mount(cfg.Upper, cfg.Root, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return &os.PathError{Op: "bind mount", Path: cfg.Root, Err: err}
	}
	return nil
}

func mountAt(source, root, target, fstype string, flags uintptr, data string) error {
	p := filepath.Join(root, target)
	if err := unix.Mount(source, p, fstype, flags, data); err != nil {
		return &os.PathError{Op: "mount " + fstype, Path: target, Err: err}
	}
	return nil
}

// mountDev builds a minimal /dev: a tmpfs holding the host's harmless
// character devices bound in, a private devpts instance, and /dev/shm.
// With a terminal (the host's name of the pty that is the init's standard
// input), the pty is bound at /dev/console as well.
func mountDev(root, terminal string) error {
	if err := mountAt("tmpfs", root, "/dev", "tmpfs", unix.MS_NOSUID|unix.MS_NOEXEC, "mode=755,size=65536k"); err != nil {
		return err
	}
	dev := filepath.Join(root, "dev")
	for _, name := range []string{"null", "zero", "full", "random", "urandom", "tty"} {
		p := filepath.Join(dev, name)
		if err := os.WriteFile(p, nil, 0o666); err != nil {
			return err
		}
		if err := unix.Mount("/dev/"+name, p, "", unix.MS_BIND, ""); err != nil {
			return &os.PathError{Op: "bind mount", Path: "/dev/" + name, Err: err}
		}
	}
	for _, d := range []string{"pts", "shm"} {
		if err := os.Mkdir(filepath.Join(dev, d), 0o755); err != nil {
			return err
		}
	}
	if err := mountAt("devpts", root, "/dev/pts", "devpts", unix.MS_NOSUID|unix.MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620"); err != nil {
		return err
	}
	if err := mountAt("shm", root, "/dev/shm", "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=1777,size=65536k"); err != nil {
		return err
	}
	if terminal != "" && sameFile(0, terminal) {
		// The pty is the host devpts' (Terminal), absent from the private
		// instance: ttyname(3) finds no name for it, unless a node of /dev
		// is that very file, which it looks for next (runc binds its
		// console the same way). The command holds the pty already. A
		// name that is not the pty (lkbuild in a container whose
		// /dev/pts is not /dev/ptmx's) binds nothing: tty then finds no
		// name, and the rest works.
		p := filepath.Join(dev, "console")
		if err := os.WriteFile(p, nil, 0o600); err != nil {
			return err
		}
		if err := unix.Mount(terminal, p, "", unix.MS_BIND, ""); err != nil {
			return &os.PathError{Op: "bind mount the terminal " + terminal + " at", Path: "/dev/console", Err: err}
		}
	}
	links := map[string]string{"ptmx": "pts/ptmx", "fd": "/proc/self/fd", "stdin": "/proc/self/fd/0", "stdout": "/proc/self/fd/1", "stderr": "/proc/self/fd/2"}
	for name, target := range links {
		if err := os.Symlink(target, filepath.Join(dev, name)); err != nil {
			return err
		}
	}
	return nil
}

// sameFile reports whether the open file fd is the file at path.
func sameFile(fd int, path string) bool {
	var a, b unix.Stat_t
	if unix.Fstat(fd, &a) != nil || unix.Stat(path, &b) != nil {
		return false
	}
	return a.Dev == b.Dev && a.Ino == b.Ino && a.Rdev == b.Rdev
}

// ensureDir makes p a real directory. A rootfs may hold a symlink where a
// mount point belongs (debootstrap --foreign leaves /proc -> /proc), and a
// mount must never follow a link out of the root: replace it.
func ensureDir(p string) error {
	fi, err := os.Lstat(p)
	if err == nil && fi.IsDir() {
		return nil
	}
	if err == nil {
		if err := os.Remove(p); err != nil {
			return err
		}
	}
	return os.Mkdir(p, 0o755)
}

// bindMount binds m.Source onto m.Target inside root, creating the target
// (a directory, or an empty file for a file source). The target is resolved
// inside root, so symlinks in the rootfs cannot redirect the mount.
func bindMount(root string, m Mount) error {
	target, err := securejoin.SecureJoin(root, m.Target)
	if err != nil {
		return err
	}
	if m.Overlay != nil {
		return overlayMount(target, *m.Overlay)
	}
	fi, err := os.Stat(m.Source)
	if err != nil {
		return err
	}
	if fi.IsDir() {
		err = os.MkdirAll(target, 0o755)
	} else if err = os.MkdirAll(filepath.Dir(target), 0o755); err == nil {
		var f *os.File
		if f, err = os.OpenFile(target, os.O_CREATE|os.O_RDONLY, 0o644); err == nil {
			f.Close()
		}
	}
	if err != nil {
		return err
	}
	if err := unix.Mount(m.Source, target, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return &os.PathError{Op: "bind mount", Path: m.Source, Err: err}
	}
	if !m.ReadOnly {
		return nil
	}
	// A read-only remount must keep the flags the kernel locked on the
	// source mount (nosuid, nodev, noexec) or a user namespace gets EPERM.
	var st unix.Statfs_t
	if err := unix.Statfs(target, &st); err != nil {
		return &os.PathError{Op: "statfs", Path: target, Err: err}
	}
	flags := uintptr(unix.MS_BIND | unix.MS_REMOUNT | unix.MS_RDONLY)
	for _, f := range []struct{ st, ms uintptr }{
		{unix.ST_NOSUID, unix.MS_NOSUID}, {unix.ST_NODEV, unix.MS_NODEV}, {unix.ST_NOEXEC, unix.MS_NOEXEC},
		{unix.ST_NOATIME, unix.MS_NOATIME}, {unix.ST_NODIRATIME, unix.MS_NODIRATIME}, {unix.ST_RELATIME, unix.MS_RELATIME},
	} {
		if uintptr(st.Flags)&f.st != 0 {
			flags |= f.ms
		}
	}
	if err := unix.Mount("", target, "", flags, ""); err != nil {
		return &os.PathError{Op: "remount read-only", Path: m.Target, Err: err}
	}
	return nil
}

// overlayMount mounts o at target, a path already resolved inside the
// root. Like the root filesystem, it tries the user-namespace form
// (userxattr) first.
func overlayMount(target string, o Overlay) error {
	if err := os.MkdirAll(target, 0o755); err != nil {
		return err
	}
	opts := "lowerdir=" + strings.Join(o.Lower, ":")
	if o.Upper != "" {
		opts += ",upperdir=" + o.Upper + ",workdir=" + o.Work
	}
	err := unix.Mount("overlay", target, "overlay", 0, opts+",userxattr")
	if err != nil && unix.Mount("overlay", target, "overlay", 0, opts) == nil {
		err = nil
	}
	if err != nil {
		return &os.PathError{Op: "mount overlay", Path: target, Err: err}
	}
	return nil
}

// registerEmulator mounts a binfmt_misc instance of the sandbox's own
// (Linux 6.7+ gives each user namespace one) and registers the emulator
// with the F flag, so the kernel opens the interpreter now, from the host's
// filesystem, and every later exec of a matching binary in the sandbox
// runs through it. The host's binfmt_misc is unaffected.
func registerEmulator(root string, e *Emulator) error {
	dir := filepath.Join(root, "proc/sys/fs/binfmt_misc")
	if err := unix.Mount("binfmt_misc", dir, "binfmt_misc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return &os.PathError{Op: "mount binfmt_misc", Path: dir, Err: err}
	}
	line := fmt.Sprintf(":%s:M::%s:%s:%s:F", e.Name, e.Magic, e.Mask, e.Interpreter)
	f, err := os.OpenFile(filepath.Join(dir, "register"), os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	if _, err := io.WriteString(f, line); err != nil {
		f.Close()
		return fmt.Errorf("write %q: %w", line, err)
	}
	return f.Close()
}

// loopbackUp sets the IFF_UP flag on lo, the only interface a fresh
// network namespace has.
func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return err
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	return unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr)
}

// pivotRoot makes root the root of our mount namespace. pivot_root(".", ".")
// stacks the old root on top of the new one at "/"; unmounting "." then
// detaches the old root, so no put_old directory is needed.
func pivotRoot(root string) error {
	if err := unix.Chdir(root); err != nil {
		return &os.PathError{Op: "chdir", Path: root, Err: err}
	}
	if err := unix.PivotRoot(".", "."); err != nil {
		return &os.PathError{Op: "pivot_root", Path: ".", Err: err}
	}
	if err := unix.Unmount(".", unix.MNT_DETACH); err != nil {
		return &os.PathError{Op: "umount old root", Path: ".", Err: err}
	}
	return unix.Chdir("/")
}
