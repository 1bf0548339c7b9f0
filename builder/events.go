package builder

import (
	"time"

	"github.com/lkbuild/lkbuild/kernel"
)

// The phases of a build, in order, as events name them. The plan's steps
// carry their own (kernel.Step.Phase); fetch, rootfs and push are the
// pipeline's.
const (
	PhaseFetch   = "fetch"
	PhaseRootfs  = "rootfs"
	PhasePatch   = string(kernel.PhasePatch)
	PhaseConfig  = string(kernel.PhaseConfig)
	PhaseCompile = string(kernel.PhaseCompile)
	PhaseModules = string(kernel.PhaseModules)
	PhasePackage = string(kernel.PhasePackage)
	PhasePush    = "push"
)

// EventKind says what an Event reports.
type EventKind string

const (
	EventPhaseStart EventKind = "phase-start"
	EventPhaseEnd   EventKind = "phase-end"
	EventStep       EventKind = "step"
	EventProgress   EventKind = "progress"
	EventNote       EventKind = "note"
)

// Event is one thing a build reports as it goes. The library prints
// nothing; the caller renders events (text, progress bars, JSON).
type Event struct {
	Time  time.Time `json:"time"`
	Kind  EventKind `json:"kind"`
	Phase string    `json:"phase,omitempty"`
	// Step names the plan step (EventStep).
	Step    string `json:"step,omitempty"`
	Message string `json:"message,omitempty"`
	// Elapsed is the phase's duration (EventPhaseEnd).
	Elapsed time.Duration `json:"elapsed,omitempty"`
	// Done and Total count Unit ("objects", "bytes"); Total is 0 when
	// unknown and an estimate for objects (the previous build's count).
	Done  int64  `json:"done,omitempty"`
	Total int64  `json:"total,omitempty"`
	Unit  string `json:"unit,omitempty"`
}

func (b *build) emit(e Event) {
	if b.pol.Events == nil {
		return
	}
	e.Time = time.Now()
	if e.Phase == "" {
		e.Phase = b.phase
	}
	b.pol.Events(e)
}

func (b *build) startPhase(p string) {
	if b.phase == p {
		return
	}
	b.endPhase()
	b.phase, b.began = p, time.Now()
	b.emit(Event{Kind: EventPhaseStart})
}

func (b *build) endPhase() {
	if b.phase == "" {
		return
	}
	b.emit(Event{Kind: EventPhaseEnd, Elapsed: time.Since(b.began)})
	b.phase = ""
}
