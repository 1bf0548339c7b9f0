package sandbox

import (
	"bytes"
	"context"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// toolName is the argv[0] that makes the test binary, run as a command in
// the sandbox, the test tool (runTool) instead of running tests. tinyRootfs
// installs the binary as /usr/bin/<toolName>, so it is found in PATH.
const toolName = "lkbuild-sandbox-test-tool"

// toolArgs returns the tool's actions when args are those of the test
// tool: argv[0] named toolName, or /proc/self/exe and then toolName, as the
// builder starts its in-sandbox Go actions.
func toolArgs(args []string) ([]string, bool) {
	switch {
	case len(args) > 0 && filepath.Base(args[0]) == toolName:
		return args[1:], true
	case len(args) > 1 && args[0] == "/proc/self/exe" && args[1] == toolName:
		return args[2:], true
	}
	return nil, false
}

// toolAction is one thing the tool can do: it takes nargs arguments and
// returns the line it prints ("" prints nothing).
type toolAction struct {
	nargs int
	run   func(args []string) string
}

// toolActions are what tests ask the tool to do in the sandbox. An action
// that fails prints the errno's name (EROFS) or the error, so a test can
// compare the whole output with what it wants.
func toolActions() map[string]toolAction {
	return map[string]toolAction{
		"echo":     {1, func(a []string) string { return a[0] }},
		"uid":      {0, func([]string) string { return "uid=" + strconv.Itoa(os.Getuid()) }},
		"gid":      {0, func([]string) string { return "gid=" + strconv.Itoa(os.Getgid()) }},
		"hostname": {0, func([]string) string { h, err := os.Hostname(); return "hostname=" + result(h, err) }},
		"cmdline": {1, func(a []string) string {
			b, err := os.ReadFile("/proc/" + a[0] + "/cmdline")
			return "cmdline " + a[0] + "=" + result(strings.TrimSpace(strings.ReplaceAll(string(b), "\x00", " ")), err)
		}},
		"env": {0, func([]string) string { return "env=" + strings.Join(os.Environ(), " ") }},
		"setgroups": {0, func([]string) string {
			return "setgroups: " + result("ok", syscall.Setgroups([]int{0}))
		}},
		"ifaces": {0, func([]string) string {
			ifs, err := net.Interfaces()
			var names []string
			for _, i := range ifs {
				up := "down"
				if i.Flags&net.FlagUp != 0 {
					up = "up"
				}
				names = append(names, i.Name+":"+up)
			}
			sort.Strings(names)
			return "ifaces=" + result(strings.Join(names, ","), err)
		}},
		"routes": {0, func([]string) string {
			b, err := os.ReadFile("/proc/net/route")
			n := strings.Count(string(b), "\n") - 1 // the header
			return "routes=" + result(strconv.Itoa(n), err)
		}},
		"dial": {1, func(a []string) string {
			c, err := net.DialTimeout("tcp", a[0], 5*time.Second)
			if err == nil {
				c.Close()
			}
			return "dial " + a[0] + ": " + result("ok", err)
		}},
		"loopback": {0, func([]string) string {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				return "loopback: " + result("", err)
			}
			defer ln.Close()
			c, err := net.Dial("tcp", ln.Addr().String())
			if err == nil {
				c.Close()
			}
			return "loopback: " + result("ok", err)
		}},
		"stat": {1, func(a []string) string {
			fi, err := os.Stat(a[0])
			kind := "other"
			switch {
			case err != nil:
			case fi.IsDir():
				kind = "dir"
			case fi.Mode().IsRegular():
				kind = "file"
			}
			return "stat " + a[0] + ": " + result(kind, err)
		}},
		"owner": {1, func(a []string) string {
			var st unix.Stat_t
			err := unix.Lstat(a[0], &st)
			return "owner " + a[0] + ": " + result(fmt.Sprintf("%d:%d", st.Uid, st.Gid), err)
		}},
		"cat": {1, func(a []string) string {
			b, err := os.ReadFile(a[0])
			return "cat " + a[0] + ": " + result(strconv.Quote(string(b)), err)
		}},
		"lines": {1, func(a []string) string {
			b, err := os.ReadFile(a[0])
			return "lines " + a[0] + ": " + result(strconv.Itoa(strings.Count(string(b), "\n")), err)
		}},
		"write": {2, func(a []string) string { return "write " + a[0] + ": " + result("ok", writeFile(a[0], a[1], 0)) }},
		"append": {2, func(a []string) string {
			return "append " + a[0] + ": " + result("ok", writeFile(a[0], a[1], os.O_APPEND))
		}},
		"rm":    {1, func(a []string) string { return "rm " + a[0] + ": " + result("ok", os.Remove(a[0])) }},
		"mkdir": {1, func(a []string) string { return "mkdir " + a[0] + ": " + result("ok", os.Mkdir(a[0], 0o755)) }},
		"chown": {3, func(a []string) string {
			uid, err1 := strconv.Atoi(a[1])
			gid, err2 := strconv.Atoi(a[2])
			err := errors.Join(err1, err2)
			if err == nil {
				err = os.Lchown(a[0], uid, gid)
			}
			return "chown " + a[0] + ": " + result("ok", err)
		}},
		"chmod": {2, func(a []string) string {
			mode, err := strconv.ParseUint(a[1], 8, 32)
			if err == nil {
				err = os.Chmod(a[0], os.FileMode(mode))
			}
			return "chmod " + a[0] + ": " + result("ok", err)
		}},
		"remount-rw": {1, func(a []string) string {
			err := unix.Mount("", a[0], "", unix.MS_REMOUNT|unix.MS_BIND, "")
			return "remount-rw " + a[0] + ": " + result("ok", err)
		}},
		"umount": {1, func(a []string) string {
			return "umount " + a[0] + ": " + result("ok", unix.Unmount(a[0], unix.MNT_DETACH))
		}},
		"status": {1, func(a []string) string {
			b, err := os.ReadFile("/proc/self/status")
			for _, l := range strings.Split(string(b), "\n") {
				if k, v, ok := strings.Cut(l, ":"); ok && k == a[0] {
					return a[0] + "=" + strings.TrimSpace(v)
				}
			}
			return a[0] + "=" + result("missing", err)
		}},
		"readdir": {1, func(a []string) string {
			ents, err := os.ReadDir(a[0])
			return "readdir " + a[0] + ": " + result(strconv.Itoa(len(ents)), err)
		}},
		"term": {0, func([]string) string {
			// Standard input is a terminal, our controlling one, and we
			// lead its session.
			_, err := unix.IoctlGetTermios(0, unix.TCGETS)
			pgrp, perr := unix.IoctlGetInt(0, unix.TIOCGPGRP)
			sid, _ := unix.Getsid(0)
			ws, werr := unix.IoctlGetWinsize(0, unix.TIOCGWINSZ)
			// /dev/console is the terminal itself, where ttyname(3)
			// looks for it.
			var in, console unix.Stat_t
			named := unix.Fstat(0, &in) == nil && unix.Stat("/dev/console", &console) == nil &&
				in.Rdev == console.Rdev && in.Ino == console.Ino && in.Dev == console.Dev
			return fmt.Sprintf("tty=%v ctty=%v leader=%v console=%v size=%s", err == nil, perr == nil && pgrp == os.Getpid(), sid == os.Getpid(),
				named, result(fmt.Sprintf("%dx%d", ws.Row, ws.Col), werr))
		}},
		"await": {1, func(a []string) string {
			// Prints "ready", then waits for the signal a[0] and names
			// it with the window size then.
			sig := map[string]os.Signal{"INT": syscall.SIGINT, "WINCH": syscall.SIGWINCH}[a[0]]
			ch := make(chan os.Signal, 1)
			signal.Notify(ch, sig)
			fmt.Println("ready")
			got := <-ch
			ws, err := unix.IoctlGetWinsize(0, unix.TIOCGWINSZ)
			return fmt.Sprintf("got %v size=%s", got, result(fmt.Sprintf("%dx%d", ws.Row, ws.Col), err))
		}},
		"wait-file": {1, func(a []string) string {
			// Until the host makes file a[0] (at most a minute).
			for i := 0; i < 600; i++ {
				if _, err := os.Stat(a[0]); err == nil {
					return "wait-file " + a[0] + ": ok"
				}
				time.Sleep(100 * time.Millisecond)
			}
			return "wait-file " + a[0] + ": timed out"
		}},
		"ignore-term": {0, func([]string) string { signal.Ignore(syscall.SIGTERM); return "" }},
		"sleep": {1, func(a []string) string {
			s, err := strconv.Atoi(a[0])
			if err != nil {
				return "sleep: " + err.Error()
			}
			time.Sleep(time.Duration(s) * time.Second)
			return ""
		}},
		"exit": {1, func(a []string) string {
			code, err := strconv.Atoi(a[0])
			if err != nil {
				return "exit: " + err.Error()
			}
			os.Exit(code)
			return ""
		}},
		"kill": {1, func(a []string) string {
			sig, err := strconv.Atoi(a[0])
			if err == nil {
				err = syscall.Kill(os.Getpid(), syscall.Signal(sig))
			}
			if err == nil {
				time.Sleep(time.Minute) // for the signal to land
			}
			return "kill " + a[0] + ": " + result("still alive", err)
		}},
	}
}

// runTool is the test tool: it runs args as a list of actions, each a
// verb and its arguments, and prints their results to w. Besides those of
// toolActions, "bg ACTIONS" starts the tool again in the background with
// the space-separated ACTIONS (which thus never appear in argv separately),
// and "wait" waits for what bg started.
func runTool(args []string, w io.Writer) int {
	actions := toolActions()
	var children []*exec.Cmd
	for len(args) > 0 {
		verb, rest := args[0], args[1:]
		switch verb {
		case "bg":
			if len(rest) < 1 {
				fmt.Fprintln(w, "bg: no actions")
				return 2
			}
			cmd := &exec.Cmd{Path: "/proc/self/exe", Args: append([]string{toolName}, strings.Fields(rest[0])...), Stdout: w, Stderr: os.Stderr}
			if err := cmd.Start(); err != nil {
				fmt.Fprintln(w, "bg:", err)
				return 1
			}
			children = append(children, cmd)
			args = rest[1:]
			continue
		case "wait":
			for _, c := range children {
				if err := c.Wait(); err != nil {
					fmt.Fprintln(w, "wait:", err)
				}
			}
			children = nil
			args = rest
			continue
		}
		a, ok := actions[verb]
		if !ok || len(rest) < a.nargs {
			fmt.Fprintf(w, "%s: unknown action, or too few arguments\n", verb)
			return 2
		}
		if out := a.run(rest[:a.nargs]); out != "" {
			fmt.Fprintln(w, out)
		}
		args = rest[a.nargs:]
	}
	return 0
}

// result is ok, or when err is set the name of its errno (EROFS) or, with
// none, the error.
func result(ok string, err error) string {
	if err == nil {
		return ok
	}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return unix.ErrnoName(errno)
	}
	return err.Error()
}

func writeFile(name, content string, flag int) error {
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|flag, 0o644)
	if err != nil {
		return err
	}
	if flag&os.O_APPEND == 0 {
		if err := f.Truncate(0); err != nil {
			f.Close()
			return err
		}
	}
	_, err = io.WriteString(f, content)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// tool runs the test tool in the sandbox with actions and returns its
// stdout, stderr and error. The command's environment is PATH and then
// spec.Env.
func tool(t *testing.T, spec Spec, actions ...string) (string, string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	if spec.Args == nil {
		spec.Args = []string{toolName}
	}
	spec.Args = append(spec.Args, actions...)
	spec.Env = append([]string{testPath}, spec.Env...)
	spec.Stdout, spec.Stderr = &out, &errb
	if spec.StateDir == "" {
		spec.StateDir = t.TempDir()
	}
	err := Run(context.Background(), spec)
	return out.String(), errb.String(), err
}

func mustTool(t *testing.T, spec Spec, actions ...string) string {
	t.Helper()
	out, stderr, err := tool(t, spec, actions...)
	if err != nil {
		t.Fatalf("%q: %v\nstdout:\n%s\nstderr:\n%s", actions, err, out, stderr)
	}
	return out
}

// tinyRootfs makes a rootfs of a few files in a new directory of the
// test's, for the tests that need something to run in the sandbox but no
// Debian userland: the test binary itself as /usr/bin/<toolName>, the ELF
// interpreter and shared libraries it needs (go test binaries are
// dynamically linked when cgo is on), /bin -> usr/bin as in a merged-/usr
// Debian, and the mount points the sandbox uses.
func tinyRootfs(t *testing.T) string {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	for _, d := range []string{"proc", "dev", "sys", "tmp", "etc", "root", "usr/bin"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(filepath.Join(root, "tmp"), 0o1777); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("usr/bin", filepath.Join(root, "bin")); err != nil {
		t.Fatal(err)
	}
	files, err := elfDeps(self, libDirs())
	if err != nil {
		t.Fatalf("the test binary's libraries: %v", err)
	}
	files[self] = "/usr/bin/" + toolName
	buf := make([]byte, 1<<20)
	for src, dst := range files {
		p := filepath.Join(root, dst)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := copyFile(src, p, buf); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// libDirs are where the host's dynamic loader finds libraries by default,
// multiarch directories first.
func libDirs() []string {
	var dirs []string
	for _, pat := range []string{"/lib/*-linux-gnu*", "/usr/lib/*-linux-gnu*"} {
		m, _ := filepath.Glob(pat)
		dirs = append(dirs, m...)
	}
	return append(dirs, "/lib64", "/usr/lib64", "/lib", "/usr/lib")
}

// elfDeps finds the ELF interpreter of the program at path and the shared
// libraries it needs, transitively, in dirs. It returns them as host path
// -> path in the rootfs: the interpreter where the program names it, each
// library where it was found, so the loader finds it there in the rootfs
// too. A static program needs nothing.
func elfDeps(path string, dirs []string) (map[string]string, error) {
	f, err := elf.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	deps := map[string]string{}
	for _, p := range f.Progs {
		if p.Type != elf.PT_INTERP {
			continue
		}
		b, err := io.ReadAll(p.Open())
		if err != nil {
			return nil, fmt.Errorf("read interpreter: %w", err)
		}
		interp := strings.TrimRight(string(b), "\x00")
		deps[interp] = interp
	}
	var need func(f *elf.File) error
	need = func(f *elf.File) error {
		libs, err := f.ImportedLibraries()
		if err != nil {
			return err
		}
		for _, lib := range libs {
			p, err := findLib(lib, f.Class, f.Machine, dirs)
			if err != nil {
				return err
			}
			if _, ok := deps[p]; ok {
				continue
			}
			deps[p] = p
			lf, err := elf.Open(p)
			if err != nil {
				return err
			}
			err = need(lf)
			lf.Close()
			if err != nil {
				return err
			}
		}
		return nil
	}
	if err := need(f); err != nil {
		return nil, err
	}
	return deps, nil
}

// findLib finds the library named lib of the given class and machine in
// dirs.
func findLib(lib string, class elf.Class, machine elf.Machine, dirs []string) (string, error) {
	for _, d := range dirs {
		p := filepath.Join(d, lib)
		f, err := elf.Open(p)
		if err != nil {
			continue
		}
		ok := f.Class == class && f.Machine == machine
		f.Close()
		if ok {
			return p, nil
		}
	}
	return "", fmt.Errorf("library %s not found in %s: %w", lib, strings.Join(dirs, ":"), os.ErrNotExist)
}
