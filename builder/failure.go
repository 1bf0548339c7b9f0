package builder

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/lkbuild/lkbuild/kernel"
	"github.com/lkbuild/lkbuild/sandbox"
)

// tailLines is how much of the log a failure shows.
const tailLines = 40

// StepError is a step of the plan that failed.
type StepError struct {
	Step string
	// Patch is the patch file, for a patch that did not apply; Rejected
	// holds the hunks patch rejected, as they are in the patch.
	Patch    string
	Rejected []string
	// Output is what the patch printed, for a patch step.
	Output string
	// Code is the command's exit status (0 for a step lkbuild did itself,
	// or a command that never started).
	Code int
	// Builder is the builder image the step ran in.
	Builder string
	// Log is the path of the full log; Tail its last lines.
	Log  string
	Tail []string
	Err  error
}

func (e *StepError) Error() string {
	var start *sandbox.StartError
	switch {
	case errors.As(e.Err, &start) && errors.Is(e.Err, sandbox.ErrCommandNotFound):
		return fmt.Sprintf("step %s: %s is not in the builder image %s (a builder needs the toolchain: lkbuild builder-image makes one)", e.Step, start.Name, e.Builder)
	case start != nil:
		return fmt.Sprintf("step %s: %v", e.Step, e.Err)
	}
	var exit *sandbox.ExitError
	if e.Patch != "" && errors.As(e.Err, &exit) {
		msg := "patch " + e.Patch + " does not apply"
		if len(e.Rejected) > 0 {
			msg += fmt.Sprintf(" (%d hunk(s) rejected)", len(e.Rejected))
		} else {
			msg += fmt.Sprintf(" (patch exited with status %d)", exit.Code)
		}
		return msg
	}
	return fmt.Sprintf("step %s: %v", e.Step, e.Err)
}

func (e *StepError) Unwrap() error { return e.Err }

// PushError is a push that failed after the image was written locally.
type PushError struct {
	Ref    string
	Layout string
	Err    error
}

func (e *PushError) Error() string {
	return fmt.Sprintf("push %s: %v (the image is kept in the layout %s; retry with lkbuild push)", e.Ref, e.Err, e.Layout)
}

func (e *PushError) Unwrap() error { return e.Err }

// tail returns the last lines of the log.
func (b *build) tail() []string {
	b.logMu.Lock()
	defer b.logMu.Unlock()
	return tailFile(b.res.Log, tailLines)
}

func tailFile(name string, n int) []string {
	f, err := os.Open(name)
	if err != nil {
		return nil
	}
	defer f.Close()
	const window = 64 << 10
	if fi, err := f.Stat(); err == nil && fi.Size() > window {
		f.Seek(fi.Size()-window, io.SeekStart)
	}
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, window), window)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return lines
}

// rejectedHunks finds the hunks GNU patch reports as failed in its output
// ("patching file F" ... "Hunk #N FAILED at L.") and returns them as they
// are in the patch file, each headed by its file's name.
func rejectedHunks(patchOutput, patchFile string) []string {
	data, err := os.ReadFile(patchFile)
	if err != nil {
		return nil
	}
	var out []string
	file := ""
	for _, l := range strings.Split(patchOutput, "\n") {
		if f, ok := strings.CutPrefix(l, "patching file "); ok {
			file = strings.Trim(f, "'")
			continue
		}
		rest, ok := strings.CutPrefix(l, "Hunk #")
		if !ok || !strings.Contains(rest, " FAILED") {
			continue
		}
		num, _, _ := strings.Cut(rest, " ")
		n, err := strconv.Atoi(num)
		if err != nil {
			continue
		}
		if h := kernel.PatchHunk(data, file, n); h != "" {
			out = append(out, "--- "+file+"\n"+h)
		}
	}
	return out
}
