package boottest

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// DefaultQEMU is the program Boot runs unless BootSpec.QEMU says otherwise.
const DefaultQEMU = "qemu-system-x86_64"

// Defaults of BootSpec.
const (
	DefaultMemoryMB = 512
	DefaultTimeout  = 5 * time.Minute
)

// graceAfterDone is how long Boot waits for qemu to exit by itself after
// "BOOTTEST done": /init calls poweroff -f right away and a kernel that
// can power off is gone in well under a second, even under TCG, so only
// a guest that halts instead (or hangs) waits this long.
const graceAfterDone = 10 * time.Second

// What kernel/reboot.c prints (pr_emerg, after its "reboot: " prefix) as
// it powers off, or halts: "reboot: System halted", or in newer kernels
// (6.12, not 6.1), when poweroff found no power-off handler, "reboot:
// Power off not available: System halted instead".
const (
	linePowerDown = "reboot: Power down"
	lineHalted    = "System halted"
)

// tailLines is how many console lines an error quotes.
const tailLines = 25

// Errors Boot returns, wrapped with what the console showed.
var (
	// ErrTimeout: the guest did not print "BOOTTEST done" in time.
	ErrTimeout = errors.New("timed out")
	// ErrKernelPanic: the console shows "Kernel panic - not syncing".
	ErrKernelPanic = errors.New("kernel panic")
	// ErrNotDone: qemu exited without the guest printing "BOOTTEST done".
	ErrNotDone = errors.New("qemu exited before BOOTTEST done")
	// ErrNoPowerOff: the guest printed "BOOTTEST done" but did not power
	// the machine off: qemu was still running after the grace period (the
	// kernel halted, e.g. an x86_64 kernel without CONFIG_ACPI or
	// CONFIG_PCI), exited with an error, or exited without the kernel's
	// power-down line.
	ErrNoPowerOff = errors.New("guest did not power off")
)

// BootSpec says what to boot and how long to wait.
type BootSpec struct {
	// Kernel is the host path of a bzImage.
	Kernel string
	// Initramfs is the host path of an initramfs, e.g. one Initramfs wrote.
	Initramfs string
	// Append is added to the kernel command line after
	// "console=ttyS0 panic=-1".
	Append string
	// MemoryMB is the guest's memory; the default is DefaultMemoryMB.
	MemoryMB int
	// Timeout bounds the whole boot, the wait for the power-off included;
	// the default is DefaultTimeout. The context can end it earlier.
	Timeout time.Duration
	// Console gets a copy of the serial console as it arrives; nil
	// discards it (Result.Console has it all the same).
	Console io.Writer
	// QEMU is the program to run; the default is the Arch's
	// (DefaultQEMU for x86_64), looked up in PATH.
	QEMU string
	// Arch is the guest's uname arch: "" or x86_64 (a bzImage, console
	// ttyS0), aarch64 (qemu-system-aarch64 -M virt, an Image or Image.gz,
	// console ttyAMA0) or riscv64 (qemu-system-riscv64 -M virt with
	// OpenSBI, an Image; a gzip-compressed one is decompressed first, as
	// QEMU boots only plain images there).
	Arch string
}

// machine is how qemu emulates an arch: the program, its Debian package,
// the machine arguments and the serial console's name.
type machine struct {
	qemu, pkg string
	args      []string
	console   string
}

func machineOf(arch string) (machine, error) {
	switch arch {
	case "", "x86_64":
		return machine{qemu: DefaultQEMU, pkg: "qemu-system-x86", console: "ttyS0"}, nil
	case "aarch64":
		return machine{qemu: "qemu-system-aarch64", pkg: "qemu-system-arm", args: []string{"-M", "virt", "-cpu", "cortex-a57"}, console: "ttyAMA0"}, nil
	case "riscv64":
		return machine{qemu: "qemu-system-riscv64", pkg: "qemu-system-misc and opensbi", args: []string{"-M", "virt", "-bios", "default"}, console: "ttyS0"}, nil
	}
	return machine{}, fmt.Errorf("boot: no machine for arch %q (x86_64, aarch64, riscv64)", arch)
}

// Result is what a boot showed on the console.
type Result struct {
	// Console is the whole serial console output, with \r\n as \n.
	Console string
	// Started: /init printed "BOOTTEST start".
	Started bool
	// Done: /init printed "BOOTTEST done".
	Done bool
	// PoweredOff: after "BOOTTEST done" the kernel powered the machine off
	// (it printed "reboot: Power down") and qemu exited by itself with
	// status 0. A kernel without a power-off driver halts instead and
	// qemu runs on until Boot kills it: Done, but not PoweredOff.
	PoweredOff bool
	// Modules are the insmod results in the order /init reported them.
	Modules []ModuleResult
	// Commands are the exit statuses of InitramfsSpec.Commands, in order.
	Commands []int
	// Panic is the first console line that reports a kernel panic.
	Panic string
	// Elapsed runs from starting qemu to "BOOTTEST done", or to the end of
	// the boot when the marker never came.
	Elapsed time.Duration
}

// ModuleResult is the outcome of one insmod.
type ModuleResult struct {
	Name string
	OK   bool
	// Status is insmod's exit status when it failed.
	Status int
}

// Module returns the result of the module called name.
func (r Result) Module(name string) (ModuleResult, bool) {
	for _, m := range r.Modules {
		if m.Name == name {
			return m, true
		}
	}
	return ModuleResult{}, false
}

// Boot runs qemu-system-x86_64 with the kernel and initramfs, only a
// serial console (on qemu's stdout) and no network device, until qemu
// exits, the timeout passes or ctx ends, or graceAfterDone after the guest
// printed "BOOTTEST done"; qemu is killed and waited for in every case.
// The error is nil only when the guest printed "BOOTTEST done" and then
// powered off (Result.PoweredOff); failed insmods are in the Result, not
// errors. Otherwise it says what happened (ErrTimeout, ErrKernelPanic,
// ErrNotDone, ErrNoPowerOff, the context's error) and quotes the last
// console lines; the Result holds what the console showed so far.
func Boot(ctx context.Context, spec BootSpec) (Result, error) {
	m, err := machineOf(spec.Arch)
	if err != nil {
		return Result{}, err
	}
	prog := spec.QEMU
	if prog == "" {
		prog = m.qemu
	}
	qemu, err := exec.LookPath(prog)
	if err != nil {
		return Result{}, fmt.Errorf("%s not found (Debian package %s): %w", prog, m.pkg, err)
	}
	if spec.Arch == "riscv64" {
		plain, cleanup, err := gunzipped(spec.Kernel)
		if err != nil {
			return Result{}, err
		}
		defer cleanup()
		spec.Kernel = plain
	}
	args, err := qemuArgs(spec)
	if err != nil {
		return Result{}, err
	}
	timeout := spec.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	if err := ctx.Err(); err != nil {
		return Result{}, fmt.Errorf("boot %s: %w", spec.Kernel, err)
	}

	cmd := exec.Command(qemu, args...)
	var stderr bytes.Buffer
	con := newConsoleWatch(spec.Console)
	cmd.Stdout = con
	cmd.Stderr = &lockedWriter{w: &stderr, mu: &con.mu}
	// qemu starts no children, but never let a held pipe block Wait.
	cmd.WaitDelay = 5 * time.Second
	start := time.Now()
	con.start = start // before Start: no Write runs yet
	if err := cmd.Start(); err != nil {
		return Result{}, fmt.Errorf("start %s: %w", prog, err)
	}
	waitc := make(chan error, 1)
	go func() { waitc <- cmd.Wait() }()

	timer := time.NewTimer(timeout)
	defer timer.Stop()
	var (
		stopped error // why we killed qemu, if we did
		waitErr error
		exited  bool
		waited  time.Duration // after "BOOTTEST done", for qemu to exit
	)
	select {
	case waitErr = <-waitc:
		exited = true
	case <-con.done:
		// The guest is done and powers off now. Not doing so in time,
		// also when the whole boot's timeout comes first, is
		// ErrNoPowerOff, not ErrTimeout: the boot itself finished.
		doneAt := time.Now()
		grace := time.NewTimer(graceAfterDone)
		defer grace.Stop()
		select {
		case waitErr = <-waitc:
			exited = true
		case <-grace.C:
		case <-timer.C:
		case <-ctx.Done():
			stopped = ctx.Err()
		}
		waited = time.Since(doneAt)
	case <-timer.C:
		stopped = fmt.Errorf("%w after %s", ErrTimeout, timeout)
	case <-ctx.Done():
		stopped = ctx.Err()
	}
	if !exited {
		// Kill fails only when the process is gone already; Wait reaps
		// it either way.
		_ = cmd.Process.Kill()
		waitErr = <-waitc
	}

	con.mu.Lock()
	log := strings.ReplaceAll(con.log.String(), "\r\n", "\n")
	qemuErr := strings.TrimSpace(stderr.String())
	doneAt := con.doneAt
	con.mu.Unlock()
	res := parseConsole(log)
	after := afterDone(log)
	if res.Done {
		res.Elapsed = doneAt
		res.PoweredOff = exited && waitErr == nil && strings.Contains(after, linePowerDown)
	} else {
		res.Elapsed = time.Since(start)
	}

	switch {
	case res.PoweredOff:
		return res, nil
	case stopped != nil:
		return res, fmt.Errorf("boot %s: %w%s", spec.Kernel, stopped, consoleTail(log))
	case res.Panic != "":
		return res, fmt.Errorf("boot %s: %w: %s%s", spec.Kernel, ErrKernelPanic, strings.TrimSpace(res.Panic), consoleTail(log))
	}
	why := "exit status 0"
	if waitErr != nil {
		why = waitErr.Error()
	}
	if qemuErr != "" {
		why += ", stderr: " + qemuErr
	}
	if !res.Done {
		return res, fmt.Errorf("boot %s: %w (%s)%s", spec.Kernel, ErrNotDone, why, consoleTail(log))
	}
	switch {
	case !exited && strings.Contains(after, lineHalted):
		why = fmt.Sprintf("qemu still running %s after BOOTTEST done: the kernel halted, it has no power-off driver (x86_64 needs CONFIG_ACPI, and ACPI needs CONFIG_PCI)", waited.Round(time.Second))
	case !exited:
		why = fmt.Sprintf("qemu still running %s after BOOTTEST done", waited.Round(time.Second))
	case waitErr == nil:
		why = fmt.Sprintf("qemu exited with status 0, but the kernel never printed %q (a reboot?)", linePowerDown)
	default:
		why = "qemu " + why + " after BOOTTEST done"
	}
	return res, fmt.Errorf("boot %s: %w: %s%s", spec.Kernel, ErrNoPowerOff, why, consoleTail(log))
}

// afterDone is the console after the "BOOTTEST done" line, "" without it:
// the kernel's power-off or halt line must come after it, not from some
// earlier reboot attempt.
func afterDone(log string) string {
	i := strings.Index(log, markerDone)
	if i < 0 {
		return ""
	}
	return log[i+len(markerDone):]
}

// qemuArgs builds qemu's command line. -nodefaults drops the emulated
// VGA, NIC, monitor and default serial port; -display none keeps qemu from
// opening a window without muxing its monitor onto stdio as -nographic
// would, so stdout is the serial console and nothing else.
func qemuArgs(spec BootSpec) ([]string, error) {
	if spec.Kernel == "" {
		return nil, errors.New("boot: no kernel")
	}
	if spec.Initramfs == "" {
		return nil, errors.New("boot: no initramfs")
	}
	m, err := machineOf(spec.Arch)
	if err != nil {
		return nil, err
	}
	mem := spec.MemoryMB
	if mem == 0 {
		mem = DefaultMemoryMB
	}
	if mem < 0 {
		return nil, fmt.Errorf("boot: memory %d MB", mem)
	}
	cmdline := "console=" + m.console + " panic=-1"
	if a := strings.TrimSpace(spec.Append); a != "" {
		cmdline += " " + a
	}
	return append(slices.Clone(m.args),
		"-nodefaults", "-no-user-config",
		"-display", "none",
		"-serial", "stdio",
		"-nic", "none",
		"-no-reboot",
		"-accel", "tcg",
		"-m", strconv.Itoa(mem),
		"-kernel", spec.Kernel,
		"-initrd", spec.Initramfs,
		"-append", cmdline,
	), nil
}

// gunzipped returns kernel itself when it is not gzip-compressed, else a
// decompressed copy in a temporary file that cleanup removes.
func gunzipped(kernel string) (path string, cleanup func(), err error) {
	f, err := os.Open(kernel)
	if err != nil {
		return "", nil, fmt.Errorf("boot: %w", err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return kernel, func() {}, nil // not gzip: QEMU takes it as it is
	}
	tmp, err := os.CreateTemp("", "boottest-kernel-")
	if err != nil {
		return "", nil, fmt.Errorf("boot: %w", err)
	}
	cleanup = func() { os.Remove(tmp.Name()) }
	if _, err := io.Copy(tmp, zr); err != nil {
		tmp.Close()
		cleanup()
		return "", nil, fmt.Errorf("boot: decompress %s: %w", kernel, err)
	}
	if err := tmp.Close(); err != nil {
		cleanup()
		return "", nil, fmt.Errorf("boot: %w", err)
	}
	return tmp.Name(), cleanup, nil
}

// consoleWatch keeps the console output, copies it to the caller's writer
// and closes done at the first "BOOTTEST done" line.
type consoleWatch struct {
	mu      sync.Mutex
	copy    io.Writer
	log     bytes.Buffer
	line    []byte // the unfinished last line
	start   time.Time
	doneAt  time.Duration
	done    chan struct{}
	seen    bool
	copyErr bool
}

func newConsoleWatch(copy io.Writer) *consoleWatch {
	return &consoleWatch{copy: copy, done: make(chan struct{})}
}

// Write never fails: a failing copy writer must not stop qemu's output
// from being read (qemu would block), so the copy just stops.
func (c *consoleWatch) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.log.Write(p)
	if c.copy != nil && !c.copyErr {
		if _, err := c.copy.Write(p); err != nil {
			c.copyErr = true
		}
	}
	if c.seen {
		return len(p), nil
	}
	c.line = append(c.line, p...)
	for {
		i := bytes.IndexByte(c.line, '\n')
		if i < 0 {
			break
		}
		if bytes.Contains(c.line[:i], []byte(markerDone)) {
			c.seen = true
			c.doneAt = time.Since(c.start)
			close(c.done)
			c.line = nil
			break
		}
		c.line = c.line[i+1:]
	}
	return len(p), nil
}

// lockedWriter serialises writes to w with mu.
type lockedWriter struct {
	w  io.Writer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// parseConsole reads the marker lines of /init and the first kernel panic
// line from a console log. Markers are found anywhere in a line, since
// kernel messages can land in front of them on the serial console.
func parseConsole(log string) Result {
	r := Result{Console: log}
	for _, line := range strings.Split(log, "\n") {
		line = strings.TrimRight(line, "\r")
		if r.Panic == "" && strings.Contains(line, "Kernel panic - not syncing") {
			r.Panic = line
		}
		switch i := strings.Index(line, "BOOTTEST "); {
		case i < 0:
		case strings.HasPrefix(line[i:], markerStart):
			r.Started = true
		case strings.HasPrefix(line[i:], markerDone):
			r.Done = true
		case strings.HasPrefix(line[i:], markerInsmod):
			if m, ok := parseInsmod(line[i+len(markerInsmod):]); ok {
				r.Modules = append(r.Modules, m)
			}
		case strings.HasPrefix(line[i:], markerCmd):
			// "<index> exit <status>"
			f := strings.Fields(line[i+len(markerCmd):])
			if len(f) == 3 && f[1] == "exit" {
				if n, err := strconv.Atoi(f[2]); err == nil {
					r.Commands = append(r.Commands, n)
				}
			}
		}
	}
	return r
}

// parseInsmod parses "<name> ok" or "<name> failed: <status>".
func parseInsmod(s string) (ModuleResult, bool) {
	f := strings.Fields(s)
	switch {
	case len(f) == 2 && f[1] == "ok":
		return ModuleResult{Name: f[0], OK: true}, true
	case len(f) == 3 && f[1] == "failed:":
		n, err := strconv.Atoi(f[2])
		if err != nil {
			return ModuleResult{}, false
		}
		return ModuleResult{Name: f[0], Status: n}, true
	}
	return ModuleResult{}, false
}

// consoleTail formats the last console lines for an error message.
func consoleTail(log string) string {
	lines := strings.Split(strings.TrimRight(log, "\n"), "\n")
	if len(lines) == 1 && lines[0] == "" {
		return "; the console stayed empty"
	}
	if len(lines) > tailLines {
		lines = lines[len(lines)-tailLines:]
	}
	return fmt.Sprintf("; last %d console lines:\n\t%s", len(lines), strings.Join(lines, "\n\t"))
}
