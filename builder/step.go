package builder

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/lkbuild/lkbuild/kernel"
	"github.com/lkbuild/lkbuild/oci"
)

// StepArg is argv[1] of lkbuild when it runs a plan step's action inside
// the sandbox: the runner starts /proc/self/exe with it, so the action
// sees the build's mounts (the source overlay exists only in there).
const StepArg = "lkbuild-sandbox-step"

// stepRequest is what the runner sends a step action on its standard
// input: exactly one action, and what the action needs from the plan.
type stepRequest struct {
	Content *kernel.FileContent `json:",omitempty"`
	Copy    *kernel.FileCopy    `json:",omitempty"`
	Tar     *kernel.TarArchive  `json:",omitempty"`
	Config  *kernel.ConfigCheck `json:",omitempty"`
	// Epoch is the mtime of tar entries, in Unix seconds.
	Epoch int64
	// XZ is the compressor command for TarArchive.XZ, reading one segment
	// of the tar on its standard input (segmenter).
	XZ []string `json:",omitempty"`
	// Segments is the segment cache for TarArchive.XZ, a directory in the
	// sandbox; "" for none. Jobs is how many xz run at once.
	Segments string `json:",omitempty"`
	Jobs     int    `json:",omitempty"`
}

// stepResult is what a step action writes on its standard output. An
// error keeps its kind across the re-exec: a config mismatch as itself,
// a failed system call as its errno.
type stepResult struct {
	// Note is for the build log: what the action did, when it says.
	Note     string                      `json:",omitempty"`
	Error    string                      `json:",omitempty"`
	Errno    syscall.Errno               `json:",omitempty"`
	Mismatch *kernel.ConfigMismatchError `json:",omitempty"`
}

// err is the action's error as the runner returns it, nil on success.
func (r stepResult) err() error {
	switch {
	case r.Mismatch != nil:
		return r.Mismatch
	case r.Error != "":
		return &ActionError{Msg: r.Error, Errno: r.Errno}
	}
	return nil
}

// ActionError is a step action that failed inside the sandbox. Errno is
// the failed system call's error, if one caused it, so that callers can
// ask errors.Is(err, fs.ErrNotExist).
type ActionError struct {
	Msg   string
	Errno syscall.Errno
}

func (e *ActionError) Error() string { return e.Msg }

func (e *ActionError) Unwrap() error {
	if e.Errno == 0 {
		return nil
	}
	return e.Errno
}

// newStepRequest wraps a plan action.
func newStepRequest(a kernel.Action, epoch time.Time, xz []string) (stepRequest, error) {
	r := stepRequest{Epoch: epoch.Unix()}
	switch a := a.(type) {
	case *kernel.FileContent:
		r.Content = a
	case *kernel.FileCopy:
		r.Copy = a
	case *kernel.TarArchive:
		r.Tar = a
		if a.XZ {
			r.XZ = xz
		}
	case *kernel.ConfigCheck:
		r.Config = a
	default:
		return stepRequest{}, fmt.Errorf("unknown step action %T", a)
	}
	return r, nil
}

// stepMain runs one step action: the request on stdin, the result on
// stdout. It returns the exit status (0 also when the action failed: the
// result says so).
func stepMain(stdin io.Reader, stdout io.Writer) int {
	var req stepRequest
	var res stepResult
	if err := json.NewDecoder(stdin).Decode(&req); err != nil {
		res.Error = "read step request: " + err.Error()
	} else if err := req.do(&res.Note); err != nil {
		var m *kernel.ConfigMismatchError
		if errors.As(err, &m) {
			res.Mismatch = m
		}
		errors.As(err, &res.Errno)
		res.Error = err.Error()
	}
	if err := json.NewEncoder(stdout).Encode(res); err != nil {
		return 1
	}
	return 0
}

// do carries out the action; note receives what it has to say.
func (r *stepRequest) do(note *string) error {
	switch {
	case r.Content != nil:
		return writeFileAtomic(r.Content.Path, 0o644, func(w io.Writer) error {
			_, err := w.Write(r.Content.Data)
			return err
		})
	case r.Copy != nil:
		perm := os.FileMode(0o644)
		if r.Copy.Exec {
			perm = 0o755
		}
		return copyFirst(r.Copy.From, r.Copy.To, perm)
	case r.Tar != nil:
		return r.tar(note)
	case r.Config != nil:
		got, err := os.ReadFile(r.Config.Path)
		if err != nil {
			return fmt.Errorf("read the built config: %w", err)
		}
		return r.Config.Check(got)
	}
	return errors.New("empty step request")
}

// tar writes the archive a TarArchive asks for.
func (r *stepRequest) tar(note *string) error {
	a := r.Tar
	tree := os.DirFS(a.Dir)
	opts := oci.TarOptions{Epoch: time.Unix(r.Epoch, 0), Prefix: a.Prefix}
	if a.Dev {
		names, err := kernel.DevFiles(tree)
		if err != nil {
			return err
		}
		opts.Include = kernel.IncludeNames(names)
		if a.Machine != 0 {
			opts.Include = withoutForeignELF(tree, a.Machine, opts.Include, os.Stderr)
		}
	}
	return writeFileAtomic(a.To, 0o644, func(w io.Writer) error {
		if !a.XZ {
			return oci.WriteTar(w, tree, opts)
		}
		if len(r.XZ) == 0 {
			return errors.New("no xz command for a .tar.xz")
		}
		// The builder image's xz: the bytes then depend only on the
		// pinned image, not on the host.
		// This process only archives: keep its heap near what the
		// segments in flight need (a few times segmentMax) rather than
		// twice the last peak.
		debug.SetMemoryLimit(128 << 20)
		seg := newSegmenter(w, r.XZ, r.Segments, r.Jobs)
		opts.BeforeEntry = seg.beforeEntry
		werr := oci.WriteTar(seg, tree, opts)
		if err := seg.Close(); werr == nil {
			werr = err
		}
		*note = fmt.Sprintf("%d xz segments made, %d from the segment cache", seg.made, seg.hits)
		return werr
	})
}

// writeFileAtomic writes a file with permissions perm through a temporary
// one renamed into place: a new inode, so a hard link or an overlay's lower
// file is never changed, and no half-written file under the final name.
func writeFileAtomic(name string, perm os.FileMode, write func(io.Writer) error) error {
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(name), "."+filepath.Base(name)+".tmp-")
	if err != nil {
		return err
	}
	err = write(f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(f.Name(), perm)
	}
	if err == nil {
		err = os.Rename(f.Name(), name)
	}
	if err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("write %s: %w", name, err)
	}
	return nil
}

// copyFirst copies the first of from that exists to to, with permissions
// perm.
func copyFirst(from []string, to string, perm os.FileMode) error {
	for _, p := range from {
		fi, err := os.Stat(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		if !fi.Mode().IsRegular() {
			return fmt.Errorf("%s is not a regular file", p)
		}
		src, err := os.Open(p)
		if err != nil {
			return err
		}
		defer src.Close()
		return writeFileAtomic(to, perm, func(w io.Writer) error {
			_, err := io.Copy(w, src)
			return err
		})
	}
	if len(from) == 1 {
		return fmt.Errorf("%s: %w", from[0], fs.ErrNotExist)
	}
	return fmt.Errorf("none of %v exists", from)
}

// MaybeRunStep runs a step action and exits when this process was started
// as one (argv[1] is StepArg). main calls it right after sandbox.MaybeInit.
func MaybeRunStep(args []string) {
	if len(args) > 1 && args[1] == StepArg {
		os.Exit(stepMain(os.Stdin, os.Stdout))
	}
}

// withoutForeignELF narrows include to leave out the ELF files of tree
// for another machine than machine (a cross build's host tools), naming
// each on log.
func withoutForeignELF(tree fs.FS, machine uint16, include func(string, fs.DirEntry) bool, log io.Writer) func(string, fs.DirEntry) bool {
	return func(name string, d fs.DirEntry) bool {
		if !include(name, d) {
			return false
		}
		if !d.Type().IsRegular() {
			return true
		}
		f, err := tree.Open(name)
		if err != nil {
			return true // the tar writer reports it
		}
		defer f.Close()
		var h [20]byte
		if n, _ := io.ReadFull(f, h[:]); n < len(h) || string(h[:4]) != "\x7fELF" {
			return true
		}
		m := binary.LittleEndian.Uint16(h[18:])
		if h[5] == 2 { // big-endian
			m = binary.BigEndian.Uint16(h[18:])
		}
		if m == machine {
			return true
		}
		fmt.Fprintf(log, "kernel-dev.tar: left out %s, an ELF file for machine %d, not the target's %d (a --cross build's host tool)\n", name, m, machine)
		return false
	}
}
