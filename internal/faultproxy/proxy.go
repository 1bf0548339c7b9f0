package faultproxy

import (
	"errors"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"sync"
	"time"
)

// Kind is a kind of fault.
type Kind int

const (
	// None lets a request through; it is only meaningful in WithSchedule.
	None Kind = iota
	// Status503 answers 503 Service Unavailable with a registry error body.
	Status503
	// Status429 answers 429 Too Many Requests with "Retry-After: <seconds>".
	Status429
	// Status429Date answers 429 Too Many Requests with Retry-After as an
	// HTTP-date.
	Status429Date
	// DropRequest reads a little of the request body, then closes the
	// connection without an answer; the target never sees the request.
	DropRequest
	// DropBody forwards the request, sends the target's status line and
	// headers and half of its body, then closes the connection. The target
	// has acted on the request. With an empty body (HEAD, 201, 204, ...) the
	// connection is closed in the middle of the headers instead.
	DropBody
)

// Kinds returns every kind of fault, in the order WithKinds uses by default.
func Kinds() []Kind {
	return []Kind{Status503, Status429, Status429Date, DropRequest, DropBody}
}

func (k Kind) valid() bool { return k >= Status503 && k <= DropBody }

func (k Kind) String() string {
	switch k {
	case None:
		return "none"
	case Status503:
		return "503"
	case Status429:
		return "429"
	case Status429Date:
		return "429-date"
	case DropRequest:
		return "drop-request"
	case DropBody:
		return "drop-body"
	}
	return "Kind(" + strconv.Itoa(int(k)) + ")"
}

// Stats counts what a Proxy has seen and done.
type Stats struct {
	// Requests is every request the proxy received.
	Requests int
	// Eligible is the requests that matched WithMethods and WithPath.
	Eligible int
	// Faults is the faults injected, by kind. Kinds never injected are absent.
	Faults map[Kind]int
	// UpstreamErrors is the requests that could not be forwarded to the target
	// (the client got a 502).
	UpstreamErrors int
}

// TotalFaults is the sum of s.Faults.
func (s Stats) TotalFaults() int {
	n := 0
	for _, c := range s.Faults {
		n += c
	}
	return n
}

// Proxy is a fault-injecting reverse proxy. Create it with New, start it with
// Start and stop it with Close.
type Proxy struct {
	target *url.URL
	opts   options
	rp     *httputil.ReverseProxy
	quiet  *log.Logger

	mu     sync.Mutex
	rng    *rand.Rand
	stats  Stats
	srv    *http.Server
	served chan struct{} // closed when srv.Serve has returned
}

var _ http.Handler = (*Proxy)(nil)

// New returns a proxy to target, an http or https URL. Without WithSchedule,
// WithEveryNth or WithRate it injects no faults.
func New(target *url.URL, opts ...Option) (*Proxy, error) {
	if target == nil || (target.Scheme != "http" && target.Scheme != "https") || target.Host == "" {
		return nil, fmt.Errorf("faultproxy: target %v is not an http(s) URL with a host", target)
	}
	o, err := makeOptions(opts)
	if err != nil {
		return nil, err
	}
	if o.transport == nil {
		o.transport = &http.Transport{
			Proxy:               nil, // never send test traffic to an HTTP_PROXY
			DialContext:         (&net.Dialer{Timeout: 10 * time.Second}).DialContext,
			MaxIdleConnsPerHost: 16,
			IdleConnTimeout:     30 * time.Second,
		}
	}
	p := &Proxy{
		target: target,
		opts:   o,
		quiet:  log.New(io.Discard, "", 0),
		rng:    rand.New(rand.NewPCG(o.seed, o.seed)),
		stats:  Stats{Faults: map[Kind]int{}},
	}
	p.rp = &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(target)
			// Keep the client's Host so that a registry builds Location
			// URLs that lead back through the proxy.
			r.Out.Host = r.In.Host
		},
		Transport: o.transport,
		ErrorLog:  p.quiet,
		ErrorHandler: func(w http.ResponseWriter, _ *http.Request, _ error) {
			p.mu.Lock()
			p.stats.UpstreamErrors++
			p.mu.Unlock()
			w.WriteHeader(http.StatusBadGateway)
		},
	}
	return p, nil
}

// Start listens on a free port of 127.0.0.1 and serves in the background. It
// returns the address, "127.0.0.1:PORT".
func (p *Proxy) Start() (string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.srv != nil {
		return "", errors.New("faultproxy: already started")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("faultproxy: listen: %w", err)
	}
	p.srv = &http.Server{
		Handler:           p,
		ErrorLog:          p.quiet,
		ReadHeaderTimeout: 30 * time.Second,
	}
	p.served = make(chan struct{})
	go func(srv *http.Server, done chan<- struct{}) {
		defer close(done)
		_ = srv.Serve(ln) // always non-nil; ErrServerClosed after Close
	}(p.srv, p.served)
	return ln.Addr().String(), nil
}

// Close stops listening, closes every connection and waits for the server to
// stop. Closing a proxy that was never started does nothing.
func (p *Proxy) Close() error {
	p.mu.Lock()
	srv, served := p.srv, p.served
	p.mu.Unlock()
	if srv == nil {
		return nil
	}
	err := srv.Close()
	<-served
	if t, ok := p.opts.transport.(interface{ CloseIdleConnections() }); ok {
		t.CloseIdleConnections()
	}
	return err
}

// Stats returns a snapshot of the counters.
func (p *Proxy) Stats() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.stats
	s.Faults = make(map[Kind]int, len(p.stats.Faults))
	for k, n := range p.stats.Faults {
		s.Faults[k] = n
	}
	return s
}

// ServeHTTP forwards r to the target or injects the fault the schedule holds
// for it.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch k := p.decide(r); k {
	case Status503:
		p.answer(w, r, http.StatusServiceUnavailable, "UNAVAILABLE", "")
	case Status429:
		secs := int64((p.opts.retryAfter + time.Second - 1) / time.Second)
		p.answer(w, r, http.StatusTooManyRequests, "TOOMANYREQUESTS", strconv.FormatInt(secs, 10))
	case Status429Date:
		at := p.opts.now().Add(p.opts.retryAfter)
		if t := at.Truncate(time.Second); !t.Equal(at) {
			at = t.Add(time.Second) // round up: the date must not come early
		}
		p.answer(w, r, http.StatusTooManyRequests, "TOOMANYREQUESTS", at.UTC().Format(http.TimeFormat))
	case DropRequest:
		dropRequest(w, r)
	case DropBody:
		p.rp.ServeHTTP(&cutWriter{ResponseWriter: w, method: r.Method}, r)
	default:
		p.rp.ServeHTTP(w, r)
	}
}

// decide counts r and returns its fault, or None.
func (p *Proxy) decide(r *http.Request) Kind {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stats.Requests++
	o := &p.opts
	if (o.methods != nil && !o.methods[r.Method]) || (o.path != nil && !o.path.MatchString(r.URL.Path)) {
		return None
	}
	p.stats.Eligible++
	n := p.stats.Eligible
	// Draw for every eligible request, so that a limit does not shift the
	// sequence that WithRate produces.
	hit := o.mode == modeRate && p.rng.Float64() < o.rate
	injected := p.stats.TotalFaults()
	if o.maxFaults >= 0 && injected >= o.maxFaults {
		return None
	}
	k := None
	switch o.mode {
	case modeSchedule:
		if n <= len(o.schedule) {
			k = o.schedule[n-1]
		}
	case modeEveryNth:
		if n%o.everyNth == 0 {
			k = o.kinds[injected%len(o.kinds)]
		}
	case modeRate:
		if hit {
			k = o.kinds[injected%len(o.kinds)]
		}
	}
	if k != None {
		p.stats.Faults[k]++
	}
	return k
}

// answer sends a registry-style error. It reads the request body first so
// that the client reliably sees the answer rather than a failed write.
func (p *Proxy) answer(w http.ResponseWriter, r *http.Request, status int, code, retryAfter string) {
	_, _ = io.Copy(io.Discard, r.Body)
	if retryAfter != "" {
		w.Header().Set("Retry-After", retryAfter)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = fmt.Fprintf(w, `{"errors":[{"code":%q,"message":"faultproxy: injected %d"}]}`+"\n", code, status)
}

// dropRequest closes the client's connection without an answer.
func dropRequest(w http.ResponseWriter, r *http.Request) {
	// Take part of an upload first, so the drop happens mid-request.
	_, _ = io.CopyN(io.Discard, r.Body, 32<<10)
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		// Not HTTP/1 (cannot happen with our own server): let net/http
		// abort the stream, which is its documented way to drop it.
		panic(http.ErrAbortHandler)
	}
	_ = conn.Close()
}

// errCut is what cutWriter returns once it has dropped the connection; it
// makes the ReverseProxy abandon the copy.
var errCut = errors.New("faultproxy: connection dropped mid-response")

// cutWriter passes the status, the headers and the first half of the body to
// the client, then closes the connection.
type cutWriter struct {
	http.ResponseWriter
	method    string
	remaining int64 // body bytes still to pass; < 0: length unknown
	started   bool
	cut       bool
}

func (c *cutWriter) WriteHeader(status int) {
	if c.cut || c.started {
		return
	}
	if status < 200 { // 100 Continue and friends are not the answer
		c.ResponseWriter.WriteHeader(status)
		return
	}
	c.started = true
	n, err := strconv.ParseInt(c.Header().Get("Content-Length"), 10, 64)
	switch {
	case c.method == http.MethodHead || status == http.StatusNoContent || status == http.StatusNotModified || (err == nil && n == 0):
		// Nothing to cut in the body: break off in the headers.
		c.drop(fmt.Sprintf("HTTP/1.1 %03d %s\r\nContent-Type: ", status, http.StatusText(status)))
		return
	case err == nil:
		c.remaining = n / 2
	default:
		c.remaining = -1
	}
	c.ResponseWriter.WriteHeader(status)
}

func (c *cutWriter) Write(b []byte) (int, error) {
	if !c.started {
		c.WriteHeader(http.StatusOK)
	}
	if c.cut {
		return 0, errCut
	}
	keep := int64(len(b))
	if c.remaining >= 0 && keep >= c.remaining {
		keep = c.remaining
	} else if c.remaining < 0 {
		keep /= 2
	} else {
		c.remaining -= keep
		return c.ResponseWriter.Write(b)
	}
	n, err := c.ResponseWriter.Write(b[:keep])
	if err != nil {
		return n, err
	}
	if err := http.NewResponseController(c.ResponseWriter).Flush(); err != nil {
		return n, err
	}
	c.drop("")
	return n, errCut
}

// FlushError lets the ReverseProxy flush through the wrapper until the cut.
func (c *cutWriter) FlushError() error {
	if c.cut {
		return errCut
	}
	return http.NewResponseController(c.ResponseWriter).Flush()
}

// drop writes tail straight to the connection and closes it.
func (c *cutWriter) drop(tail string) {
	c.cut = true
	conn, buf, err := http.NewResponseController(c.ResponseWriter).Hijack()
	if err != nil {
		panic(http.ErrAbortHandler) // see dropRequest
	}
	if tail != "" {
		_, _ = buf.WriteString(tail)
		_ = buf.Flush()
	}
	_ = conn.Close()
}
