package builder

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/lkbuild/lkbuild/kernel"
	"github.com/lkbuild/lkbuild/sandbox"
)

// steps runs the plan's steps after its patches (b.patch).
func (b *build) steps(ctx context.Context, d sandboxDirs) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var bg sync.WaitGroup
	defer bg.Wait()
	var bgMu sync.Mutex
	var bgErr error
	bgFailed := func() error {
		bgMu.Lock()
		defer bgMu.Unlock()
		return bgErr
	}

	release := ""
	after, reconciled := false, false
	for _, s := range b.plan.Steps {
		if s.Patch != "" {
			continue // b.patch applied them
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := bgFailed(); err != nil {
			return err
		}
		if !reconciled && (s.Background || s.Phase != kernel.PhasePatch) {
			// The patches are in: the kept object tree, if any, can be
			// matched to them before anything reads the patched tree, and
			// from here on the steps write the build's layer, not the
			// patches' (which the kept tree records as the patches).
			reconciled, after = true, true
			if err := b.reconcileTree(d); err != nil {
				return err
			}
		}
		s, err := s.Expand(release)
		if err != nil {
			return err
		}
		b.startPhase(string(s.Phase))
		b.emit(Event{Kind: EventStep, Step: s.Name, Message: s.String()})
		b.logf("step %s", s)
		if s.Background {
			// The patched tree, archived while the build goes on: a
			// read-only view of the patches' upper dir, which no later
			// step writes.
			t, ok := s.Action.(*kernel.TarArchive)
			if !ok || !strings.HasPrefix(t.To, b.plan.Paths.Out+"/") {
				return fmt.Errorf("step %s: only a source archive into %s runs in the background", s.Name, b.plan.Paths.Out)
			}
			spec := b.spec(d, true, true)
			if b.fast != nil && b.fast.nativeXZ {
				b.fast.archiveSpec(&spec)
			}
			bg.Add(1)
			go func() {
				defer bg.Done()
				if err := b.sourceArchive(ctx, spec, s, filepath.Join(d.out, filepath.FromSlash(strings.TrimPrefix(t.To, b.plan.Paths.Out+"/")))); err != nil {
					bgMu.Lock()
					bgErr = err
					bgMu.Unlock()
					cancel()
				}
			}()
			continue
		}
		spec := b.spec(d, after, false)
		if s.Action != nil {
			err = b.action(ctx, spec, s)
		} else {
			var out []byte
			out, err = b.command(ctx, spec, s)
			if err == nil && s.PrintsRelease {
				if release, err = kernel.ParseRelease(out, b.plan.Version); err == nil {
					b.res.Release = release
					b.emit(Event{Kind: EventNote, Message: "kernel release " + release})
				}
			}
		}
		if err != nil {
			if bgErr := bgFailed(); ctx.Err() != nil && bgErr != nil {
				return bgErr
			}
			return err
		}
	}
	bg.Wait()
	if err := bgFailed(); err != nil {
		return err
	}
	return b.checkOutputs(d.out)
}

// command runs a command step. It returns what the command printed on
// standard output when the step prints the release.
func (b *build) command(ctx context.Context, spec sandbox.Spec, s kernel.Step) ([]byte, error) {
	spec.Args, spec.Env, spec.Dir = s.Args, s.Env, s.Dir
	if e := b.env.Emulation; e != nil && !e.Register {
		spec.Env = sandbox.EnvDefaults(spec.Env, e.Env)
	}
	if b.fast != nil {
		b.fast.Apply(&spec)
	}
	var stdout bytes.Buffer
	log := logWriter{b}
	var out io.Writer = log
	var lines *lineWriter
	switch {
	case s.PrintsRelease:
		out = io.MultiWriter(log, &stdout)
	case s.Patch != "":
		out = io.MultiWriter(log, &stdout)
	case s.CountsObjects:
		// An incremental build compiles what changed: no earlier count
		// says how much that is, and its count says nothing of a clean
		// build's.
		var total int64
		if !b.res.Incremental {
			total = b.objectEstimate()
		}
		var n int64
		lines = &lineWriter{line: func(l string) {
			if objectLine.MatchString(l) {
				n++
				b.emit(Event{Kind: EventProgress, Step: s.Name, Done: n, Total: total, Unit: "objects"})
			}
		}}
		out = io.MultiWriter(log, lines)
		defer func() {
			if n > 0 && !b.res.Incremental {
				b.saveObjectCount(n)
			}
		}()
	}
	spec.Stdout, spec.Stderr = out, log
	spec.Notify = func(msg string) { b.emit(Event{Kind: EventNote, Message: msg}) }
	err := b.deps.run(ctx, spec)
	if lines != nil {
		lines.flush()
	}
	if err == nil {
		return stdout.Bytes(), nil
	}
	if ctx.Err() != nil {
		return nil, err
	}
	b.logf("step %s: %v", s.Name, err)
	se := &StepError{Step: s.Name, Err: err, Log: b.res.Log, Builder: b.t.BuilderPull}
	var ee *sandbox.ExitError
	if errors.As(err, &ee) {
		se.Code = ee.Code
	}
	if s.Patch != "" {
		se.Patch, se.Output = s.Patch, stdout.String()
		se.Rejected = rejectedHunks(stdout.String(), filepath.Join(b.t.KernelDir, filepath.FromSlash(s.PatchFile)))
	}
	se.Tail = b.tail()
	return nil, se
}

// action runs a step lkbuild does itself, inside the sandbox, where the
// source overlay is.
func (b *build) action(ctx context.Context, spec sandbox.Spec, s kernel.Step) error {
	req, err := newStepRequest(s.Action, b.plan.Epoch, b.xzCommand())
	if err != nil {
		return err
	}
	return b.runAction(ctx, spec, s, req)
}

// runAction runs the step action req in the sandbox of spec.
func (b *build) runAction(ctx context.Context, spec sandbox.Spec, s kernel.Step, req stepRequest) error {
	in, err := json.Marshal(req)
	if err != nil {
		return err
	}
	var out bytes.Buffer
	spec.Args = []string{"/proc/self/exe", StepArg}
	spec.Env = []string{"PATH=" + kernel.DefaultPath}
	if e := b.env.Emulation; e != nil {
		// The action is lkbuild itself, a host binary; xz is the
		// builder's and may need the emulator's environment.
		spec.Env = sandbox.EnvDefaults(spec.Env, e.Env)
	}
	spec.Stdin, spec.Stdout, spec.Stderr = bytes.NewReader(in), &out, logWriter{b}
	if err := b.deps.run(ctx, spec); err != nil {
		if ctx.Err() != nil {
			return err
		}
		return &StepError{Step: s.Name, Err: err, Log: b.res.Log, Tail: b.tail()}
	}
	var res stepResult
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		return &StepError{Step: s.Name, Err: fmt.Errorf("read the step's result: %w", err), Log: b.res.Log}
	}
	if res.Note != "" {
		b.logf("step %s: %s", s.Name, res.Note)
	}
	if err := res.err(); err != nil {
		var m *kernel.ConfigMismatchError
		if errors.As(err, &m) {
			return m
		}
		return &StepError{Step: s.Name, Err: err, Log: b.res.Log}
	}
	return nil
}

// checkOutputs makes sure out holds exactly the plan's outputs.
func (b *build) checkOutputs(out string) error {
	want := map[string]bool{}
	var trees []string
	for _, o := range b.plan.Outputs {
		want[o.Path] = true
		if o.Kind == kernel.OutputTree {
			trees = append(trees, o.Path+"/")
		}
	}
	var extra []string
	err := filepath.WalkDir(out, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(out, p)
		rel = filepath.ToSlash(rel)
		if i := slices.IndexFunc(trees, func(t string) bool { return strings.HasPrefix(rel, t) }); i >= 0 {
			delete(want, strings.TrimSuffix(trees[i], "/"))
			return nil
		}
		if want[rel] {
			delete(want, rel)
		} else {
			extra = append(extra, rel)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("build outputs: %w", err)
	}
	if len(want) > 0 || len(extra) > 0 {
		var missing []string
		for k := range want {
			missing = append(missing, k)
		}
		slices.Sort(missing)
		return fmt.Errorf("build outputs: missing %v, unexpected %v", missing, extra)
	}
	return nil
}
