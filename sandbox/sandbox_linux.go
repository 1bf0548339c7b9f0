package sandbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/lkbuild/lkbuild/internal/rmtree"
	"github.com/lkbuild/lkbuild/toolchain"
)

// killGrace is how long a cancelled sandbox gets between SIGTERM and
// SIGKILL.
const killGrace = 3 * time.Second

// Run runs spec.Args in a new sandbox and waits for it. It returns nil when
// the command exits 0, an *ExitError with the command's status otherwise,
// a *SetupError when the sandbox could not be set up, and ctx.Err() (wrapped)
// when ctx was cancelled; then every process of the sandbox is gone by the
// time Run returns.
func Run(ctx context.Context, spec Spec) error {
	if len(spec.Args) == 0 {
		return errors.New("sandbox: no command")
	}
	if spec.Rootfs == "" {
		return errors.New("sandbox: no rootfs")
	}
	lower, err := filepath.Abs(spec.Rootfs)
	if err != nil {
		return fmt.Errorf("sandbox: rootfs: %w", err)
	}
	if fi, err := os.Stat(lower); err != nil || !fi.IsDir() {
		return fmt.Errorf("sandbox: rootfs %s is not a directory", lower)
	}
	if spec.StateDir == "" && spec.UpperDir != "" {
		// overlayfs needs its work dir on the upper dir's filesystem.
		spec.StateDir = filepath.Dir(spec.UpperDir)
	}
	state, err := os.MkdirTemp(spec.StateDir, "lkbuild-run-")
	if err != nil {
		return fmt.Errorf("sandbox: state dir: %w", err)
	}
	defer func() {
		if rmtree.RemoveAll(state) != nil {
			// Files chowned to subordinate ids: only the namespace's
			// root may remove them.
			RemoveTree(state)
		}
	}()
	upper := filepath.Join(state, "upper")
	scratch := ""
	if spec.UpperDir != "" {
		if upper, err = filepath.Abs(spec.UpperDir); err != nil {
			return fmt.Errorf("sandbox: upper dir: %w", err)
		}
	} else {
		// Nothing of the run is kept: the init makes its dirs on a
		// tmpfs of its own at state, and the disk is not touched.
		scratch = state
	}
	cfg := initConfig{
		Lower:       lower,
		Writable:    spec.Writable,
		NoOverlay:   spec.noOverlay,
		Upper:       upper,
		Scratch:     scratch,
		Work:        filepath.Join(state, "work"),
		Root:        filepath.Join(state, "root"),
		Args:        spec.Args,
		Env:         spec.Env,
		Dir:         spec.Dir,
		Hostname:    spec.Hostname,
		HostNetwork: spec.HostNetwork,
		Emulator:    spec.Emulator,
	}
	if cfg.Dir == "" {
		cfg.Dir = "/"
	}
	if cfg.Hostname == "" {
		cfg.Hostname = "lkbuild"
	}
	for _, m := range spec.Mounts {
		if m.Overlay != nil {
			o, err := absOverlay(*m.Overlay)
			if err != nil {
				return fmt.Errorf("sandbox: overlay on %s: %w", m.Target, err)
			}
			cfg.Mounts = append(cfg.Mounts, Mount{Target: m.Target, Overlay: &o})
			continue
		}
		src, err := filepath.Abs(m.Source)
		if err != nil {
			return fmt.Errorf("sandbox: bind %s: %w", m.Source, err)
		}
		bind := Mount{Source: src, Target: m.Target, ReadOnly: m.ReadOnly}
		if _, err := os.Stat(src); err != nil {
			// The init would fail the same way, only later.
			return &SetupError{Step: bindStep(bind), Err: err}
		}
		cfg.Mounts = append(cfg.Mounts, bind)
	}
	for _, p := range []string{cfg.Lower, cfg.Upper, cfg.Work} {
		// overlayfs takes these in a comma- and colon-separated option
		// string and has no escaping for them.
		if strings.ContainsAny(p, ",:") {
			return fmt.Errorf("sandbox: path %q contains ',' or ':', which overlayfs cannot take", p)
		}
	}
	if scratch == "" {
		for _, d := range []string{cfg.Upper, cfg.Work, cfg.Root} {
			if err := os.MkdirAll(d, 0o755); err != nil {
				return fmt.Errorf("sandbox: %w", err)
			}
		}
	}

	cmd, ids, err := newInit(spec.HostNetwork)
	if err != nil {
		return err
	}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = spec.Stdin, spec.Stdout, spec.Stderr
	var term *terminal
	if spec.Terminal != nil {
		if term, err = openTerminal(*spec.Terminal); err != nil {
			return fmt.Errorf("sandbox: %w", err)
		}
		defer term.close()
		cfg.Terminal, cfg.TerminalPath = true, term.slave.Name()
		cmd.Stdin, cmd.Stdout, cmd.Stderr = term.slave, term.slave, term.slave
	}
	repR, err := launchInit(cmd, ids, cfg)
	if err != nil {
		return err
	}
	defer repR.Close()
	if term != nil {
		// The init and the command hold the slave now; the master reads
		// until the last of them is gone.
		term.start(spec.Stdin, spec.Stdout, spec.Terminal.Resize)
		defer term.wait()
	}

	reports := make(chan error, 1)
	go func() { reports <- readReports(repR, spec.Args[0], spec.Notify) }()

	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	var werr error
	select {
	case werr = <-waited:
	case <-ctx.Done():
		// Ask nicely first, then kill the init: when a pid namespace's
		// init dies, the kernel kills every other process in it.
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-waited:
		case <-time.After(killGrace):
			cmd.Process.Kill()
			<-waited
		}
		<-reports
		return fmt.Errorf("sandbox: %w", ctx.Err())
	}
	if failed := <-reports; failed != nil {
		return failed
	}
	if werr == nil {
		return nil
	}
	var ee *exec.ExitError
	if errors.As(werr, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return &ExitError{Code: 128 + int(ws.Signal())}
		}
		return &ExitError{Code: ee.ExitCode()}
	}
	return fmt.Errorf("sandbox: %w", werr)
}

// bindStep names the setup step of mount m, for a *SetupError.
func bindStep(m Mount) string {
	if m.Overlay != nil {
		return "mount overlay on " + m.Target
	}
	return "bind " + m.Source + " to " + m.Target
}

// absOverlay checks o's directories and makes their paths absolute.
func absOverlay(o Overlay) (Overlay, error) {
	if len(o.Lower) == 0 {
		return Overlay{}, errors.New("no lower directory")
	}
	if (o.Upper == "") != (o.Work == "") {
		return Overlay{}, errors.New("an upper directory needs a work directory and the other way round")
	}
	abs := func(p string) (string, error) {
		a, err := filepath.Abs(p)
		if err != nil {
			return "", err
		}
		if strings.ContainsAny(a, ",:") {
			return "", fmt.Errorf("path %q contains ',' or ':', which overlayfs cannot take", a)
		}
		if fi, err := os.Stat(a); err != nil {
			return "", err
		} else if !fi.IsDir() {
			return "", fmt.Errorf("%s is not a directory", a)
		}
		return a, nil
	}
	var out Overlay
	for _, l := range o.Lower {
		a, err := abs(l)
		if err != nil {
			return Overlay{}, err
		}
		out.Lower = append(out.Lower, a)
	}
	if o.Upper == "" {
		return out, nil
	}
	var err error
	if out.Upper, err = abs(o.Upper); err != nil {
		return Overlay{}, err
	}
	if out.Work, err = abs(o.Work); err != nil {
		return Overlay{}, err
	}
	return out, nil
}

// awaitIDMap is the argument that tells a freshly cloned init to wait
// until newuidmap/newgidmap have written its id maps before it goes on.
const awaitIDMap = "await-id-map"

// initCommand builds the command that re-executes lkbuild as the sandbox
// init in new namespaces. lastCap is the highest capability the kernel
// knows (/proc/sys/kernel/cap_last_cap). It is a pure function of its
// inputs so that tests can check the flags without running anything.
func initCommand(m idMapping, hostNetwork bool, lastCap int) *exec.Cmd {
	flags := uintptr(unix.CLONE_NEWUSER | unix.CLONE_NEWNS | unix.CLONE_NEWPID | unix.CLONE_NEWUTS | unix.CLONE_NEWIPC)
	if !hostNetwork {
		flags |= unix.CLONE_NEWNET
	}
	cmd := &exec.Cmd{
		Path: "/proc/self/exe",
		Args: []string{InitName},
		Env:  []string{},
		SysProcAttr: &syscall.SysProcAttr{
			Cloneflags:                 flags,
			UidMappings:                m.uids,
			GidMappings:                m.gids,
			GidMappingsEnableSetgroups: m.setgroups,
			Pdeathsig:                  syscall.SIGKILL,
		},
	}
	if m.helper() {
		// The init is executed before newuidmap has written its maps,
		// as an id that is not root in the namespace yet, and such an
		// exec would clear the capabilities the clone gave it. Raised
		// as ambient capabilities they survive that one exec, so the
		// init need not execute itself again once it is mapped (a
		// second start of this binary). The command does not get them:
		// the thread that forks it clears its ambient and inheritable
		// sets first (dropPrivileges).
		for c := 0; c <= lastCap; c++ {
			cmd.SysProcAttr.AmbientCaps = append(cmd.SysProcAttr.AmbientCaps, uintptr(c))
		}
		cmd.Args = append(cmd.Args, awaitIDMap)
	}
	return cmd
}

// newInit chooses the caller's id mapping and builds the init's command.
func newInit(hostNetwork bool) (*exec.Cmd, idMapping, error) {
	ids := chooseIDMapping(os.Getuid(), os.Getgid())
	last := unix.CAP_LAST_CAP
	if ids.helper() {
		var err error
		if last, err = lastCap(); err != nil {
			return nil, ids, &SetupError{Step: "read the kernel's capabilities", Err: err}
		}
	}
	return initCommand(ids, hostNetwork, last), ids, nil
}

// lastCap reads the highest capability number the running kernel knows;
// raising an unknown one as ambient would fail the init's start.
func lastCap() (int, error) {
	b, err := os.ReadFile("/proc/sys/kernel/cap_last_cap")
	if err != nil {
		return 0, err
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || n < 0 || n > 63 {
		return 0, fmt.Errorf("cap_last_cap %q", b)
	}
	return n, nil
}

// launchInit starts the init, sends it cfg over fd 3 and returns the read
// end of its report pipe (fd 4), which ends when the init exits.
func launchInit(cmd *exec.Cmd, ids idMapping, cfg initConfig) (*os.File, error) {
	cfgR, cfgW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("sandbox: %w", err)
	}
	defer cfgR.Close()
	defer cfgW.Close()
	repR, repW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("sandbox: %w", err)
	}
	defer repW.Close()
	cmd.ExtraFiles = []*os.File{cfgR, repW} // fds 3 and 4
	if err := startInit(cmd, ids); err != nil {
		repR.Close()
		return nil, err
	}
	cfgR.Close()
	repW.Close()
	if err := json.NewEncoder(cfgW).Encode(cfg); err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		repR.Close()
		return nil, fmt.Errorf("sandbox: send config: %w", err)
	}
	return repR, nil
}

// startInit starts cmd (whose ExtraFiles are fds 3 and 4) and, in helper
// mode, writes its id maps and lets it go on (fd 5 is the go signal).
func startInit(cmd *exec.Cmd, m idMapping) error {
	if !m.helper() {
		if err := cmd.Start(); err != nil {
			return startError(err)
		}
		return nil
	}
	goR, goW, err := os.Pipe()
	if err != nil {
		return err
	}
	defer goW.Close()
	cmd.ExtraFiles = append(cmd.ExtraFiles, goR)
	err = cmd.Start()
	goR.Close()
	if err != nil {
		return startError(err)
	}
	if err := m.writeMaps(cmd.Process.Pid); err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		return &SetupError{Step: "map subordinate ids", Err: err}
	}
	if _, err := goW.Write([]byte{1}); err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		return &SetupError{Step: "start init", Err: err}
	}
	return nil
}

// startError explains why the namespaces could not be created.
func startError(err error) error {
	if errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.EACCES) || errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EINVAL) {
		return &SetupError{Step: "create user namespace", Err: fmt.Errorf("%w (%s)", err, toolchain.UsernsHint(os.ReadFile))}
	}
	return &SetupError{Step: "start init", Err: err}
}
