package sandbox

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// TestReportRoundTrip checks what an init's failure becomes in the parent:
// encoded as the init does and read back as Run does, it keeps its
// message, its step and its errno.
func TestReportRoundTrip(t *testing.T) {
	tests := []struct {
		name     string
		step     string
		err      error
		errno    syscall.Errno // 0: none
		start    bool          // a *StartError, not a *SetupError
		notFound bool          // errors.Is(err, ErrCommandNotFound)
	}{
		{"path error", "make mounts private", &os.PathError{Op: "mount", Path: "/", Err: unix.EPERM}, unix.EPERM, false, false},
		{"syscall error", "set hostname", os.NewSyscallError("sethostname", unix.EINVAL), unix.EINVAL, false, false},
		{"bare errno", "bring up loopback", unix.EPERM, unix.EPERM, false, false},
		{"wrapped", "mount root filesystem", fmt.Errorf("copy rootfs: %w", &os.PathError{Op: "open", Path: "/x", Err: unix.ENOENT}), unix.ENOENT, false, false},
		{"no errno", "probe frob", errors.New(`unknown probe "frob"`), 0, false, false},
		{"not in PATH", stepStart, &notInPathError{name: "gcc", path: "/usr/bin:/bin"}, unix.ENOENT, true, true},
		{"exec missing", stepStart, &os.PathError{Op: "fork/exec", Path: "/usr/bin/gcc", Err: unix.ENOENT}, unix.ENOENT, true, true},
		{"exec refused", stepStart, &os.PathError{Op: "fork/exec", Path: "/etc/passwd", Err: unix.EACCES}, unix.EACCES, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var wire bytes.Buffer
			enc := json.NewEncoder(&wire)
			// A note and a line that is not JSON come first: the note
			// goes to notify, the other line is skipped.
			if err := enc.Encode(initReport{Note: "a note"}); err != nil {
				t.Fatal(err)
			}
			wire.WriteString("not json\n")
			if err := enc.Encode(failReport(tt.step, tt.err)); err != nil {
				t.Fatal(err)
			}
			var notes []string
			err := readReports(&wire, "gcc", func(s string) { notes = append(notes, s) })
			if len(notes) != 1 || notes[0] != "a note" {
				t.Errorf("notes %q, want [\"a note\"]", notes)
			}

			var cause error
			if tt.start {
				var se *StartError
				if !errors.As(err, &se) {
					t.Fatalf("got %v (%T), want a *StartError", err, err)
				}
				if se.Name != "gcc" {
					t.Errorf("name %q, want gcc", se.Name)
				}
				cause = se.Err
			} else {
				var se *SetupError
				if !errors.As(err, &se) {
					t.Fatalf("got %v (%T), want a *SetupError", err, err)
				}
				if se.Step != tt.step {
					t.Errorf("step %q, want %q", se.Step, tt.step)
				}
				if want := "sandbox setup: " + tt.step + ": " + tt.err.Error(); err.Error() != want {
					t.Errorf("message %q, want %q", err, want)
				}
				cause = se.Err
			}
			if cause.Error() != tt.err.Error() {
				t.Errorf("cause %q, want the init's message %q", cause, tt.err)
			}

			var errno syscall.Errno
			if got := errors.As(err, &errno); got != (tt.errno != 0) || errno != tt.errno {
				t.Errorf("errno %d (found %v), want %d", errno, got, tt.errno)
			}
			if tt.errno != 0 && !errors.Is(err, tt.errno) {
				t.Errorf("errors.Is(%v, %s) is false", err, unix.ErrnoName(tt.errno))
			}
			if tt.errno == unix.ENOENT && !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("errors.Is(%v, fs.ErrNotExist) is false", err)
			}
			if errors.Is(err, ErrCommandNotFound) != tt.notFound {
				t.Errorf("errors.Is(%v, ErrCommandNotFound) = %v, want %v", err, !tt.notFound, tt.notFound)
			}
		})
	}
}

// TestReportsWithoutFailure checks that notes alone are no error.
func TestReportsWithoutFailure(t *testing.T) {
	var wire bytes.Buffer
	if err := json.NewEncoder(&wire).Encode(initReport{Note: "n"}); err != nil {
		t.Fatal(err)
	}
	if err := readReports(&wire, "x", nil); err != nil {
		t.Errorf("got %v, want nil", err)
	}
}
