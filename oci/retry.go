package oci

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// retryTransport retries requests that a registry answers with 429 or a 5xx
// status, or that fail with a dropped connection, as long as the request can
// be sent again (it has no body, or its body can be re-created with GetBody).
// A Retry-After header, in seconds or as an HTTP date, sets the wait.
//
// Blob uploads stream their bodies and cannot be replayed here; for those,
// go-containerregistry restarts the whole upload (see Registry's backoff).
type retryTransport struct {
	base     http.RoundTripper
	attempts int           // total tries, at least 1
	backoff  time.Duration // first wait, doubled each time
	maxWait  time.Duration // cap for any single wait, Retry-After included
	now      func() time.Time
}

func (t *retryTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	for attempt := 1; ; attempt++ {
		r := req
		if attempt > 1 && req.Body != nil && req.Body != http.NoBody {
			body, err := req.GetBody()
			if err != nil {
				return nil, err
			}
			r = req.Clone(req.Context())
			r.Body = body
		}
		resp, err := t.base.RoundTrip(r)
		if err == nil {
			err = bufferSmallBody(req, resp)
		}
		wait, retry := t.shouldRetry(req, resp, err, attempt)
		if !retry {
			if err != nil {
				return nil, err
			}
			return resp, nil
		}
		if resp != nil {
			io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
			resp.Body.Close()
		}
		if err := sleepCtx(req.Context(), wait); err != nil {
			return nil, err
		}
	}
}

// refusedAttempts is how often a refused connection is tried in all.
const refusedAttempts = 3

func (t *retryTransport) shouldRetry(req *http.Request, resp *http.Response, err error, attempt int) (time.Duration, bool) {
	if attempt >= t.attempts || req.Context().Err() != nil || errors.Is(err, ErrOffline) {
		return 0, false
	}
	if req.Body != nil && req.Body != http.NoBody && req.GetBody == nil {
		return 0, false
	}
	wait := t.backoff << (attempt - 1)
	// Full jitter on the exponential part spreads concurrent clients.
	wait = wait/2 + rand.N(wait/2+1)
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		// Nothing listens there (a wrong address, a registry not up
		// yet): a few quick tries, a couple of seconds in all, rather
		// than minutes of silence.
		if attempt >= refusedAttempts {
			return 0, false
		}
		return min(wait, time.Second), true
	case err != nil:
		// The request may or may not have been acted on.
		if !isConnectionDrop(err) || !idempotent(req) {
			return 0, false
		}
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable:
		// Refused, not acted on: safe to send again, whatever the method.
		if d, ok := parseRetryAfter(resp.Header.Get("Retry-After"), t.now()); ok {
			wait = d
		}
	case resp.StatusCode == http.StatusBadGateway || resp.StatusCode == http.StatusGatewayTimeout:
	case resp.StatusCode >= 500 && resp.StatusCode != http.StatusNotImplemented:
		if !idempotent(req) {
			return 0, false
		}
	default:
		return 0, false
	}
	return min(wait, t.maxWait), true
}

// maxBuffered is the largest response body read whole inside the
// transport: manifests and configs (registries cap manifests at 4 MiB).
const maxBuffered = 4 << 20

// bufferSmallBody reads the first maxBuffered bytes of a GET response's
// body inside the transport, so that a connection dropped in the middle of
// a manifest or config (whose length a proxy may not even announce) is
// retried here like any other drop. A longer body (a layer) streams on
// after that prefix; its reader retries the whole blob.
func bufferSmallBody(req *http.Request, resp *http.Response) error {
	// Error answers count too: a 404 cut short would read as a broken
	// body instead of "not found".
	if req.Method != http.MethodGet || resp.ContentLength > maxBuffered {
		return nil
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxBuffered+1))
	if err != nil {
		resp.Body.Close()
		return err
	}
	if len(b) <= maxBuffered {
		resp.Body.Close()
		resp.Body = io.NopCloser(bytes.NewReader(b))
		return nil
	}
	resp.Body = struct {
		io.Reader
		io.Closer
	}{io.MultiReader(bytes.NewReader(b), resp.Body), resp.Body}
	return nil
}

// idempotent reports whether sending req twice is harmless. Blob upload
// sessions are state machines: a PATCH or PUT repeated after a lost answer
// finds the session moved on or closed, so those are retried as a whole
// upload by go-containerregistry instead. Starting a session (POST) twice
// only leaves an unused session behind.
func idempotent(req *http.Request) bool {
	switch req.Method {
	case http.MethodGet, http.MethodHead, http.MethodDelete:
		return true
	case http.MethodPut:
		return strings.Contains(req.URL.Path, "/manifests/")
	case http.MethodPost:
		return strings.HasSuffix(req.URL.Path, "/blobs/uploads/")
	}
	return false
}

// isConnectionDrop reports errors that mean the connection went away under
// the request, as a proxy or an overloaded registry does.
func isConnectionDrop(err error) bool {
	var ne net.Error
	return errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		(errors.As(err, &ne) && ne.Timeout())
}

// parseRetryAfter reads a Retry-After value: delay-seconds or an HTTP date.
func parseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	if v == "" {
		return 0, false
	}
	if s, err := strconv.Atoi(v); err == nil && s >= 0 {
		return time.Duration(s) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0), true
	}
	return 0, false
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-timer.C:
		return nil
	}
}
