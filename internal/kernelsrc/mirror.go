package kernelsrc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// mirror gets files of a kernel.org-style mirror.
type mirror interface {
	// base is what kernel.SourceURLs joins paths to.
	base() string
	// get writes the file at loc (a location SourceURLs made) to dst,
	// resuming after dst.size() bytes where it can.
	get(ctx context.Context, loc string, dst sink) error
}

// newMirror reads a mirror location: an http or https URL, a file URL or a
// local directory. offline forbids the network: an http mirror then fails
// every get with ErrOffline, a local one is read as always.
func newMirror(loc string, client *http.Client, retries int, delay time.Duration, offline bool) (mirror, error) {
	u, err := url.Parse(loc)
	if err != nil || u.Scheme == "" || len(u.Scheme) == 1 {
		// A path (or, for a one-letter scheme, a Windows drive).
		abs, err := filepath.Abs(loc)
		if err != nil {
			return nil, fmt.Errorf("mirror %q: %w", loc, err)
		}
		return dirMirror{dir: abs}, nil
	}
	switch u.Scheme {
	case "http", "https":
		if offline {
			return offlineMirror{url: strings.TrimRight(loc, "/")}, nil
		}
		return &httpMirror{url: strings.TrimRight(loc, "/"), client: client, retries: retries, delay: delay}, nil
	case "file":
		if u.Host != "" && u.Host != "localhost" {
			return nil, fmt.Errorf("mirror %q: a file URL must name a local path", loc)
		}
		return dirMirror{dir: u.Path}, nil
	}
	return nil, fmt.Errorf("mirror %q: scheme %q is not supported: use http, https, file or a directory", loc, u.Scheme)
}

// offlineMirror stands for an http mirror when the network is forbidden:
// every file it would download is an error naming it.
type offlineMirror struct{ url string }

func (o offlineMirror) base() string { return o.url }

func (o offlineMirror) get(_ context.Context, loc string, _ sink) error {
	return fmt.Errorf("%s is not in the cache and the network is off: %w", loc, ErrOffline)
}

// sink receives a file. Writes may be followed by reset, to start over.
type sink interface {
	io.Writer
	size() int64
	reset() error
}

// permanentError marks a failure that no retry of the request mends: the
// data cannot be stored (disk full, too large), or the request not made.
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// memSink keeps a small file in memory, up to limit bytes.
type memSink struct {
	buf   bytes.Buffer
	limit int64
	name  string
}

func (m *memSink) Write(p []byte) (int, error) {
	if int64(m.buf.Len()+len(p)) > m.limit {
		return 0, fmt.Errorf("%s is larger than %d bytes: the mirror does not serve what it should", m.name, m.limit)
	}
	return m.buf.Write(p)
}
func (m *memSink) size() int64  { return int64(m.buf.Len()) }
func (m *memSink) reset() error { m.buf.Reset(); return nil }

// fileSink writes a file while hashing it, and reports progress.
type fileSink struct {
	f        *os.File
	h        hash.Hash
	n, limit int64
	progress func(done int64)
}

func (s *fileSink) Write(p []byte) (int, error) {
	if s.n+int64(len(p)) > s.limit {
		return 0, fmt.Errorf("the file is larger than %d bytes, too large for a kernel tarball", s.limit)
	}
	n, err := s.f.Write(p)
	s.h.Write(p[:n])
	s.n += int64(n)
	if s.progress != nil {
		s.progress(s.n)
	}
	return n, err
}

func (s *fileSink) size() int64 { return s.n }

func (s *fileSink) reset() error {
	if err := s.f.Truncate(0); err != nil {
		return err
	}
	if _, err := s.f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	s.h.Reset()
	s.n = 0
	return nil
}

// copyTo copies r to dst, marking write errors permanent so that they are
// not mistaken for a broken transfer.
func copyTo(dst sink, r io.Reader, buf []byte) error {
	for {
		n, err := r.Read(buf)
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return &permanentError{werr}
			}
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// dirMirror is a mirror in a local directory (an air-gapped host's copy of
// kernel.org's folders).
type dirMirror struct{ dir string }

func (d dirMirror) base() string { return d.dir }

func (d dirMirror) get(ctx context.Context, loc string, dst sink) error {
	f, err := os.Open(loc)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%s: %w (%w); check the kernel version and the mirror directory", loc, ErrNotFound, fs.ErrNotExist)
	}
	if err != nil {
		return err
	}
	defer f.Close()
	if err := dst.reset(); err != nil {
		return &permanentError{err}
	}
	if err := copyTo(dst, f, make([]byte, 1<<20)); err != nil {
		return fmt.Errorf("copy %s: %w", loc, err)
	}
	return nil
}

// httpMirror is a mirror on a web server: kernel.org, or a copy of it.
type httpMirror struct {
	url     string
	client  *http.Client
	retries int           // extra tries without progress before giving up
	delay   time.Duration // before the first retry; doubles up to maxDelay
}

const maxDelay = 15 * time.Second

func (h *httpMirror) base() string { return h.url }

// get downloads loc into dst. A transfer that breaks is resumed with a
// Range request from where it stopped, guarded by If-Range so that a file
// changed on the server meanwhile is downloaded again whole. Network
// errors and the statuses in HTTPError.retryable are tried again, after a
// growing delay; a try that moved data does not count against the
// retries, so a long download over a flaky link still completes.
func (h *httpMirror) get(ctx context.Context, loc string, dst sink) error {
	var (
		validator string
		failures  int
		buf       = make([]byte, 256<<10)
	)
	for {
		moved, err := h.try(ctx, loc, dst, &validator, buf)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var (
			herr *HTTPError
			perr *permanentError
		)
		if errors.As(err, &perr) || errors.As(err, &herr) && !herr.retryable() {
			return err
		}
		if moved {
			failures = 0
		} else {
			failures++
		}
		if failures > h.retries {
			return fmt.Errorf("%w (gave up after %d tries)", err, failures)
		}
		delay := min(h.delay<<min(max(failures-1, 0), 10), maxDelay)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(delay):
		}
	}
}

// try makes one request. It reports whether any data arrived.
func (h *httpMirror) try(ctx context.Context, loc string, dst sink, validator *string, buf []byte) (bool, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, loc, nil)
	if err != nil {
		return false, &permanentError{err}
	}
	off := dst.size()
	if off > 0 {
		req.Header.Set("Range", "bytes="+strconv.FormatInt(off, 10)+"-")
		if *validator != "" {
			req.Header.Set("If-Range", *validator)
		}
	}
	resp, err := h.client.Do(req)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
		if off > 0 {
			if err := dst.reset(); err != nil {
				return false, &permanentError{err}
			}
		}
		*validator = ""
		if etag := resp.Header.Get("ETag"); etag != "" && !strings.HasPrefix(etag, "W/") {
			*validator = etag
		} else if lm := resp.Header.Get("Last-Modified"); lm != "" {
			*validator = lm
		}
	case http.StatusPartialContent:
		if start, ok := contentRangeStart(resp.Header.Get("Content-Range")); !ok || start != off {
			// Not what we asked for: start over without Range.
			if err := dst.reset(); err != nil {
				return false, &permanentError{err}
			}
			return false, fmt.Errorf("GET %s: the server resumed at %q, not at byte %d", loc, resp.Header.Get("Content-Range"), off)
		}
	default:
		if resp.StatusCode == http.StatusRequestedRangeNotSatisfiable {
			if err := dst.reset(); err != nil {
				return false, &permanentError{err}
			}
		}
		return false, &HTTPError{URL: loc, StatusCode: resp.StatusCode, Status: resp.Status}
	}
	before := dst.size()
	err = copyTo(dst, resp.Body, buf)
	moved := dst.size() > before
	if err != nil {
		return moved, fmt.Errorf("GET %s: %w", loc, err)
	}
	if resp.ContentLength >= 0 && dst.size()-before != resp.ContentLength {
		return moved, fmt.Errorf("GET %s: %w after %d of %d bytes", loc, io.ErrUnexpectedEOF, dst.size()-before, resp.ContentLength)
	}
	return moved, nil
}

// contentRangeStart parses the first byte of "bytes START-END/TOTAL".
func contentRangeStart(v string) (int64, bool) {
	rest, ok := strings.CutPrefix(v, "bytes ")
	if !ok {
		return 0, false
	}
	first, _, ok := strings.Cut(rest, "-")
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(first, 10, 64)
	return n, err == nil
}
