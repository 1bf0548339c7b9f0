package main

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/urfave/cli/v2"
	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"

	"github.com/lkbuild/lkbuild/builder"
)

// renderer prints a build's events: JSON lines with --json, else text on
// stderr, with a live progress bar for the compile on a terminal and a
// plain line every few seconds elsewhere.
type renderer struct {
	json     bool
	out, err io.Writer
	tty      bool

	mu        sync.Mutex
	progress  *mpb.Progress
	bar       *mpb.Bar
	lastPrint time.Time
	closed    bool
}

func newRenderer(c *cli.Context) *renderer {
	r := &renderer{json: c.Bool("json"), out: c.App.Writer, err: c.App.ErrWriter}
	if f, ok := r.err.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 && os.Getenv("TERM") != "dumb" {
			r.tty = true
		}
	}
	return r
}

func (r *renderer) emit(v any) { jsonLine(r.out, v) }

func (r *renderer) printf(format string, args ...any) {
	fmt.Fprintf(r.err, format, args...)
}

// progressEvery is how often plain output repeats a progress line.
const progressEvery = 10 * time.Second

func (r *renderer) event(e builder.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.json {
		r.emit(e)
		return
	}
	switch e.Kind {
	case builder.EventPhaseStart:
		r.printf("==> %s\n", e.Phase)
	case builder.EventPhaseEnd:
		r.stopBar()
		r.printf("    %s done in %s\n", e.Phase, e.Elapsed.Round(100*time.Millisecond))
	case builder.EventStep:
		r.stopBar()
		r.printf("    %s\n", e.Step)
	case builder.EventNote:
		r.printf("    %s\n", e.Message)
	case builder.EventProgress:
		if e.Unit == "objects" && r.tty {
			r.showBar(e)
			return
		}
		if time.Since(r.lastPrint) < progressEvery {
			return
		}
		r.lastPrint = time.Now()
		switch {
		case e.Unit == "objects" && e.Total > 0:
			r.printf("    %d objects compiled (last build: %d)\n", e.Done, e.Total)
		case e.Unit == "objects":
			r.printf("    %d objects compiled\n", e.Done)
		case e.Total > 0:
			r.printf("    %s: %d of %d MiB\n", e.Message, e.Done>>20, e.Total>>20)
		default:
			r.printf("    %s: %d MiB\n", e.Message, e.Done>>20)
		}
	}
}

// showBar draws the compile bar; its total is the previous build's object
// count, raised when this build compiles more.
func (r *renderer) showBar(e builder.Event) {
	if r.bar == nil {
		r.progress = mpb.New(mpb.WithOutput(r.err), mpb.WithWidth(40))
		r.bar = r.progress.AddBar(max(e.Total, 1),
			mpb.PrependDecorators(decor.Name("    compile "), decor.CountersNoUnit("%d/%d objects")),
			mpb.AppendDecorators(decor.Elapsed(decor.ET_STYLE_MMSS)),
		)
	}
	if e.Done >= e.Total {
		r.bar.SetTotal(e.Done+1, false)
	}
	r.bar.SetCurrent(e.Done)
}

func (r *renderer) stopBar() {
	if r.bar == nil {
		return
	}
	r.bar.SetTotal(-1, true)
	r.progress.Wait()
	r.bar, r.progress = nil, nil
}

func (r *renderer) close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.progress != nil {
		r.bar.Abort(false)
		r.progress.Wait()
		r.bar, r.progress = nil, nil
	}
	r.closed = true
}

// result prints what a build made.
func (r *renderer) result(res *builder.BuildResult) error {
	if r.json {
		r.emit(map[string]any{"kind": "result", "skipped": res.Skipped, "incremental": res.Incremental, "ref": res.Ref, "digest": res.Digest.String(),
			"release": res.Release, "layout": res.Layout, "log": res.Log, "pushed": res.Pushed})
		return nil
	}
	if res.Skipped && len(res.Pushed) > 0 {
		fmt.Fprintf(r.out, "%s already exists in the registry; its %d tags and index entries are in place (--force rebuilds)\n", res.Ref, len(res.Pushed))
		return nil
	}
	if res.Skipped {
		where := "the layout " + res.Layout
		if res.InRegistry {
			where = "the registry"
		}
		fmt.Fprintf(r.out, "%s already exists in %s; nothing to do (--force rebuilds)\n", res.Ref, where)
		return nil
	}
	how := "built"
	if res.Incremental {
		how = "built incrementally"
	}
	fmt.Fprintf(r.out, "%s %s@%s\n", how, res.Ref, res.Digest)
	if res.Release != "" {
		// A tool image has no kernel release of its own.
		fmt.Fprintf(r.out, "  release %s\n", res.Release)
	}
	fmt.Fprintf(r.out, "  layout  %s\n  log     %s\n", res.Layout, res.Log)
	for _, p := range res.Pushed {
		fmt.Fprintf(r.out, "  pushed  %s\n", p)
	}
	return nil
}
