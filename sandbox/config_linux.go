package sandbox

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
	"syscall"
)

// initConfig is what the parent sends the sandbox init over fd 3.
type initConfig struct {
	Lower     string `json:"lower"`
	Writable  bool   `json:"writable"`
	NoOverlay bool   `json:"noOverlay,omitempty"`
	Probe     string `json:"probe,omitempty"`
	Upper     string `json:"upper"`
	// Scratch, when set, is the per-run state dir, and Upper, Work and
	// Root in it are the init's to make: on a tmpfs it mounts there.
	Scratch     string    `json:"scratch,omitempty"`
	Work        string    `json:"work"`
	Root        string    `json:"root"`
	Args        []string  `json:"args"`
	Env         []string  `json:"env"`
	Dir         string    `json:"dir"`
	Hostname    string    `json:"hostname"`
	Mounts      []Mount   `json:"mounts"`
	HostNetwork bool      `json:"hostNetwork"`
	Emulator    *Emulator `json:"emulator,omitempty"`
	// Terminal makes the command a session leader with its standard
	// input, a pty's slave, as its controlling terminal. TerminalPath is
	// the slave's name on the host (/dev/pts/N), bound at /dev/console.
	Terminal     bool   `json:"terminal,omitempty"`
	TerminalPath string `json:"terminalPath,omitempty"`
}

// initReport is one line the init writes back over fd 4.
type initReport struct {
	Note  string `json:"note,omitempty"`
	Step  string `json:"step,omitempty"`
	Error string `json:"error,omitempty"`
	// Errno is the syscall.Errno under Error, if any: the parent wraps it
	// again so that errors.Is works across the re-exec.
	Errno syscall.Errno `json:"errno,omitempty"`
}

// stepStart is the step of a report that the command could not be
// started; the parent turns it into a *StartError.
const stepStart = "start command"

const (
	configFD = 3
	reportFD = 4
	goFD     = 5 // helper id mapping only: one byte when the maps are written
)

// failReport is the init's report that step failed with err.
func failReport(step string, err error) initReport {
	r := initReport{Step: step, Error: err.Error()}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		r.Errno = errno
	}
	return r
}

// cause rebuilds the error of a failure report: its message, wrapping its
// errno if it had one. It is nil for a report that is not a failure.
func (r initReport) cause() error {
	switch {
	case r.Error == "":
		return nil
	case r.Errno != 0:
		return &initError{msg: r.Error, errno: r.Errno}
	}
	return errors.New(r.Error)
}

// err is the error Run returns for a failure report: a *StartError when
// the command (named name) could not be started, else a *SetupError.
func (r initReport) err(name string) error {
	cause := r.cause()
	switch {
	case cause == nil:
		return nil
	case r.Step == stepStart:
		return &StartError{Name: name, Err: cause}
	}
	return &SetupError{Step: r.Step, Err: cause}
}

// readReports reads the init's reports until r ends, passes notes to
// notify (if set) and returns the error of the last failure report, or
// nil. name is the command, for a *StartError.
func readReports(r io.Reader, name string, notify func(string)) error {
	var failed error
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		var rep initReport
		if json.Unmarshal(sc.Bytes(), &rep) != nil {
			continue
		}
		if err := rep.err(name); err != nil {
			failed = err
		} else if rep.Note != "" && notify != nil {
			notify(rep.Note)
		}
	}
	return failed
}

// initError is an error the init reported, rebuilt in the parent: the
// init's message, wrapping the errno the init found under it.
type initError struct {
	msg   string
	errno syscall.Errno
}

func (e *initError) Error() string { return e.msg }
func (e *initError) Unwrap() error { return e.errno }
