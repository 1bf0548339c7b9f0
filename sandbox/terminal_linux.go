package sandbox

import (
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// openPTY allocates a pseudo-terminal pair on the host's devpts.
func openPTY() (master, slave *os.File, err error) {
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("open pty: %w", err)
	}
	fail := func(op string, err error) (*os.File, *os.File, error) {
		m.Close()
		return nil, nil, &os.PathError{Op: op, Path: "/dev/ptmx", Err: err}
	}
	fd := int(m.Fd())
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		return fail("unlock pty", err)
	}
	n, err := unix.IoctlGetInt(fd, unix.TIOCGPTN)
	if err != nil {
		return fail("pty number", err)
	}
	name := "/dev/pts/" + strconv.Itoa(n)
	s, err := os.OpenFile(name, os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		m.Close()
		return nil, nil, fmt.Errorf("open pty: %w", err)
	}
	return m, s, nil
}

// setWindowSize sets the window size of the terminal f.
func setWindowSize(f *os.File, ws WindowSize) error {
	err := unix.IoctlSetWinsize(int(f.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: ws.Rows, Col: ws.Cols})
	if err != nil {
		return &os.PathError{Op: "set window size", Path: f.Name(), Err: err}
	}
	return nil
}

// IsTerminal reports whether f is a terminal.
func IsTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// TerminalSize is the window size of the terminal f.
func TerminalSize(f *os.File) (WindowSize, error) {
	ws, err := unix.IoctlGetWinsize(int(f.Fd()), unix.TIOCGWINSZ)
	if err != nil {
		return WindowSize{}, &os.PathError{Op: "get window size", Path: f.Name(), Err: err}
	}
	return WindowSize{Rows: ws.Row, Cols: ws.Col}, nil
}

// MakeRaw puts the terminal f into raw mode (no echo, no line editing, no
// signals from keys, no output processing) and returns the function that
// restores its mode: the keys go as they are to a Terminal's command.
func MakeRaw(f *os.File) (restore func() error, err error) {
	fd := int(f.Fd())
	old, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return nil, &os.PathError{Op: "get terminal mode", Path: f.Name(), Err: err}
	}
	raw := rawMode(*old)
	if err := unix.IoctlSetTermios(fd, unix.TCSETS, &raw); err != nil {
		return nil, &os.PathError{Op: "set raw mode", Path: f.Name(), Err: err}
	}
	return func() error {
		if err := unix.IoctlSetTermios(fd, unix.TCSETS, old); err != nil {
			return &os.PathError{Op: "restore terminal mode", Path: f.Name(), Err: err}
		}
		return nil
	}, nil
}

// rawMode is t in raw mode, as termios(3) describes cfmakeraw.
func rawMode(t unix.Termios) unix.Termios {
	t.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.ICRNL | unix.IXON
	t.Oflag &^= unix.OPOST
	t.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
	t.Cflag &^= unix.CSIZE | unix.PARENB
	t.Cflag |= unix.CS8
	t.Cc[unix.VMIN] = 1
	t.Cc[unix.VTIME] = 0
	return t
}

// WatchSize delivers the window size of the terminal f each time it
// changes (SIGWINCH), for Terminal.Resize, until stop is called.
func WatchSize(f *os.File) (sizes <-chan WindowSize, stop func()) {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, unix.SIGWINCH)
	out := make(chan WindowSize, 1)
	done := make(chan struct{})
	go func() {
		defer close(out)
		for {
			select {
			case <-done:
				return
			case <-sig:
				ws, err := TerminalSize(f)
				if err != nil {
					continue
				}
				select {
				case out <- ws:
				case <-done:
					return
				}
			}
		}
	}()
	return out, func() {
		signal.Stop(sig)
		close(done)
	}
}

// terminal is the pty of a Run with Spec.Terminal.
type terminal struct {
	master, slave *os.File
	// output is closed when the master has no more to read.
	output chan struct{}
	done   chan struct{}
}

func openTerminal(t Terminal) (*terminal, error) {
	m, s, err := openPTY()
	if err != nil {
		return nil, err
	}
	if t.Size != (WindowSize{}) {
		if err := setWindowSize(m, t.Size); err != nil {
			m.Close()
			s.Close()
			return nil, err
		}
	}
	return &terminal{master: m, slave: s, output: make(chan struct{}), done: make(chan struct{})}, nil
}

// start closes our copy of the slave and copies in to the master, the
// master to out, and each size from resize to the pty.
func (t *terminal) start(in io.Reader, out io.Writer, resize <-chan WindowSize) {
	t.slave.Close()
	t.slave = nil
	if out == nil {
		out = io.Discard
	}
	go func() {
		defer close(t.output)
		// EIO once every slave is closed: the end of the output.
		io.Copy(out, t.master)
	}()
	if in != nil {
		// This copy ends when in does, or at the first write after the
		// master is closed; a terminal's read cannot be cut short.
		go io.Copy(t.master, in)
	}
	if resize != nil {
		go func() {
			for {
				select {
				case <-t.done:
					return
				case ws, ok := <-resize:
					if !ok {
						return
					}
					setWindowSize(t.master, ws)
				}
			}
		}()
	}
}

// wait waits for the output to be copied, once the command is gone.
func (t *terminal) wait() {
	select {
	case <-t.output:
	case <-time.After(killGrace):
		// Something outside the sandbox holds the slave: do not hang.
	}
}

func (t *terminal) close() {
	close(t.done)
	if t.slave != nil {
		t.slave.Close()
	}
	t.master.Close()
}
