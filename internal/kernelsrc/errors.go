package kernelsrc

import (
	"errors"
	"fmt"
	"net/http"
)

// ErrNotFound means the mirror does not have a file: HTTP 404 or 410, or
// no such file in a local mirror. The version may not be released, or the
// mirror may not be a kernel.org-style mirror.
//
// Verification failures wrap the errors of package kernel:
// kernel.ErrUnknownKey, kernel.ErrBadSignature, kernel.ErrNotSigned,
// kernel.ErrNotInSums, kernel.ErrHashMismatch, kernel.ErrXZTruncated and
// kernel.ErrXZCorrupt.
var ErrNotFound = errors.New("not found on the mirror")

// ErrOffline means a file had to come from an http or https mirror while
// Options.Offline forbids the network.
var ErrOffline = errors.New("offline")

// HTTPError is a response from the mirror with an unexpected status. It
// matches ErrNotFound for 404 and 410.
type HTTPError struct {
	URL        string
	StatusCode int
	Status     string // e.g. "503 Service Unavailable"
}

func (e *HTTPError) Error() string {
	status := e.Status
	if status == "" {
		status = fmt.Sprintf("%d %s", e.StatusCode, http.StatusText(e.StatusCode))
	}
	switch {
	case e.notFound():
		return fmt.Sprintf("GET %s: %s: the mirror has no such file; check the kernel version and the mirror", e.URL, status)
	case e.StatusCode >= 500:
		return fmt.Sprintf("GET %s: %s: the mirror failed; try again later or use another mirror", e.URL, status)
	}
	return fmt.Sprintf("GET %s: %s", e.URL, status)
}

func (e *HTTPError) notFound() bool {
	return e.StatusCode == http.StatusNotFound || e.StatusCode == http.StatusGone
}

// Is makes errors.Is(err, ErrNotFound) true for a 404 or 410.
func (e *HTTPError) Is(target error) bool { return target == ErrNotFound && e.notFound() }

// retryable reports whether a failed request may succeed if tried again.
func (e *HTTPError) retryable() bool {
	switch e.StatusCode {
	case http.StatusRequestTimeout, http.StatusTooManyRequests, http.StatusRequestedRangeNotSatisfiable,
		http.StatusInternalServerError, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}
