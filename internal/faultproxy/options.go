package faultproxy

import (
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"time"
)

// Path patterns for WithPath that select the registry requests retry logic
// usually has to survive.
const (
	// BlobUploadPath matches the blob upload session: POST to start it, PATCH
	// to send chunks, PUT to commit it.
	BlobUploadPath = `^/v2/.+/blobs/uploads/`
	// BlobPath matches blob reads by digest (GET, HEAD).
	BlobPath = `^/v2/.+/blobs/[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$`
	// ManifestPath matches manifests by tag or digest (GET, HEAD, PUT, DELETE).
	ManifestPath = `^/v2/.+/manifests/[^/]+$`
)

// An Option configures a Proxy. Options check their input: New returns the
// first error.
type Option func(*options) error

type mode int

const (
	modeNone     mode = iota // no faults: a plain reverse proxy
	modeSchedule             // WithSchedule
	modeEveryNth             // WithEveryNth
	modeRate                 // WithRate
)

func (m mode) option() string {
	switch m {
	case modeSchedule:
		return "WithSchedule"
	case modeEveryNth:
		return "WithEveryNth"
	case modeRate:
		return "WithRate"
	}
	return "no fault mode"
}

type options struct {
	methods    map[string]bool // nil: every method
	path       *regexp.Regexp  // nil: every path
	mode       mode
	schedule   []Kind
	everyNth   int
	rate       float64
	seed       uint64
	kinds      []Kind
	maxFaults  int // < 0: unlimited
	retryAfter time.Duration
	transport  http.RoundTripper // nil: a private *http.Transport
	now        func() time.Time
}

func makeOptions(opts []Option) (options, error) {
	o := options{
		seed:       1,
		kinds:      Kinds(),
		maxFaults:  -1,
		retryAfter: time.Second,
		now:        time.Now,
	}
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return options{}, err
		}
	}
	return o, nil
}

func (o *options) setMode(m mode) error {
	if o.mode != modeNone && o.mode != m {
		return fmt.Errorf("faultproxy: %s and %s cannot be combined", o.mode.option(), m.option())
	}
	o.mode = m
	return nil
}

// WithMethods makes only requests with one of these methods eligible for a
// fault. The default is every method.
func WithMethods(methods ...string) Option {
	return func(o *options) error {
		if len(methods) == 0 {
			return errors.New("faultproxy: WithMethods needs at least one method")
		}
		o.methods = make(map[string]bool, len(methods))
		for _, m := range methods {
			if m == "" || strings.ToUpper(m) != m {
				return fmt.Errorf("faultproxy: method %q is not an upper-case HTTP method", m)
			}
			o.methods[m] = true
		}
		return nil
	}
}

// WithPath makes only requests whose URL path matches the regular expression
// eligible for a fault (see BlobUploadPath, BlobPath and ManifestPath). The
// default is every path.
func WithPath(pattern string) Option {
	return func(o *options) error {
		re, err := regexp.Compile(pattern)
		if err != nil {
			return fmt.Errorf("faultproxy: path pattern: %w", err)
		}
		o.path = re
		return nil
	}
}

// WithSchedule fixes the fate of the first eligible requests: the i-th
// eligible request gets schedule[i] (None lets it through); eligible requests
// past the end of the schedule pass. WithKinds does not apply. It cannot be
// combined with WithEveryNth or WithRate.
func WithSchedule(schedule ...Kind) Option {
	return func(o *options) error {
		if len(schedule) == 0 {
			return errors.New("faultproxy: WithSchedule needs at least one entry")
		}
		for _, k := range schedule {
			if k != None && !k.valid() {
				return fmt.Errorf("faultproxy: unknown fault kind %d in schedule", int(k))
			}
		}
		o.schedule = append([]Kind(nil), schedule...)
		return o.setMode(modeSchedule)
	}
}

// WithEveryNth injects a fault into every nth eligible request (the nth, the
// 2nth, ...). n must be at least 1; 1 fails every eligible request. It cannot
// be combined with WithSchedule or WithRate.
func WithEveryNth(n int) Option {
	return func(o *options) error {
		if n < 1 {
			return fmt.Errorf("faultproxy: WithEveryNth(%d): n must be at least 1", n)
		}
		o.everyNth = n
		return o.setMode(modeEveryNth)
	}
}

// WithRate injects a fault into each eligible request with probability rate,
// drawn from a generator seeded by WithSeed, so the same sequence of requests
// meets the same faults. rate must be in (0, 1]. It cannot be combined with
// WithSchedule or WithEveryNth.
func WithRate(rate float64) Option {
	return func(o *options) error {
		if !(rate > 0 && rate <= 1) {
			return fmt.Errorf("faultproxy: WithRate(%v): rate must be in (0, 1]", rate)
		}
		o.rate = rate
		return o.setMode(modeRate)
	}
}

// WithSeed seeds the generator that WithRate draws from. The default seed is 1.
func WithSeed(seed uint64) Option {
	return func(o *options) error {
		o.seed = seed
		return nil
	}
}

// WithKinds sets the kinds of fault that WithEveryNth and WithRate inject;
// successive faults take the kinds in turn (round robin), so every kind listed
// is exercised. The default is all kinds, in the order of Kinds().
func WithKinds(kinds ...Kind) Option {
	return func(o *options) error {
		if len(kinds) == 0 {
			return errors.New("faultproxy: WithKinds needs at least one kind")
		}
		for _, k := range kinds {
			if !k.valid() {
				return fmt.Errorf("faultproxy: WithKinds: %v is not a fault", k)
			}
		}
		o.kinds = append([]Kind(nil), kinds...)
		return nil
	}
}

// WithMaxFaults stops injecting faults after n of them; requests after that
// pass. n must not be negative. The default is no limit.
func WithMaxFaults(n int) Option {
	return func(o *options) error {
		if n < 0 {
			return fmt.Errorf("faultproxy: WithMaxFaults(%d): n must not be negative", n)
		}
		o.maxFaults = n
		return nil
	}
}

// WithRetryAfter sets the delay that 429 answers ask for, rounded up to whole
// seconds because that is the resolution of the Retry-After header. The
// default is one second.
func WithRetryAfter(d time.Duration) Option {
	return func(o *options) error {
		if d < time.Second {
			return fmt.Errorf("faultproxy: WithRetryAfter(%v): must be at least 1s", d)
		}
		o.retryAfter = d
		return nil
	}
}

// WithTransport sets the transport used to reach the target, for example one
// that trusts a test server's certificate. The default is a private
// *http.Transport that ignores proxy environment variables.
func WithTransport(rt http.RoundTripper) Option {
	return func(o *options) error {
		if rt == nil {
			return errors.New("faultproxy: WithTransport(nil)")
		}
		o.transport = rt
		return nil
	}
}

// withClock replaces time.Now for the HTTP-date form of Retry-After.
func withClock(now func() time.Time) Option {
	return func(o *options) error {
		o.now = now
		return nil
	}
}
