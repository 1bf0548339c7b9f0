package faultproxy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// upstream is a stand-in for a registry that counts the requests it gets.
type upstream struct {
	*httptest.Server
	hits atomic.Int64
}

func newUpstream(t *testing.T) *upstream {
	t.Helper()
	u := &upstream{}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.hits.Add(1)
		body, _ := io.ReadAll(r.Body)
		switch {
		case r.URL.Path == "/big":
			w.Header().Set("Content-Length", "1000")
			_, _ = w.Write(bytes.Repeat([]byte("x"), 1000))
		case r.URL.Path == "/stream":
			for i := 0; i < 4; i++ {
				_, _ = w.Write(bytes.Repeat([]byte("y"), 100))
				http.NewResponseController(w).Flush()
			}
		case r.Method == http.MethodPut:
			w.WriteHeader(http.StatusCreated)
		default:
			fmt.Fprintf(w, "%s %s host=%s body=%d", r.Method, r.URL.Path, r.Host, len(body))
		}
	}))
	t.Cleanup(u.Close)
	return u
}

// start runs a proxy in front of u and returns its base URL.
func start(t *testing.T, u *upstream, opts ...Option) (*Proxy, string) {
	t.Helper()
	target, err := url.Parse(u.URL)
	if err != nil {
		t.Fatal(err)
	}
	p, err := New(target, opts...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	addr, err := p.Start()
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	if !strings.HasPrefix(addr, "127.0.0.1:") {
		t.Fatalf("Start() = %q, want 127.0.0.1:PORT", addr)
	}
	return p, "http://" + addr
}

// client returns a client that opens a fresh connection per request, so that
// net/http never retries a dropped request on its own.
func client(t *testing.T) *http.Client {
	t.Helper()
	tr := &http.Transport{Proxy: nil, DisableKeepAlives: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

func do(t *testing.T, c *http.Client, method, u string, body []byte) (*http.Response, []byte, error) {
	t.Helper()
	req, err := http.NewRequest(method, u, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp, b, err
}

func TestPassThrough(t *testing.T) {
	u := newUpstream(t)
	p, base := start(t, u)
	resp, body, err := do(t, client(t), http.MethodPost, base+"/v2/a/b", []byte("hello"))
	if err != nil {
		t.Fatal(err)
	}
	host := strings.TrimPrefix(base, "http://")
	if want := "POST /v2/a/b host=" + host + " body=5"; resp.StatusCode != 200 || string(body) != want {
		t.Errorf("got %d %q, want 200 %q", resp.StatusCode, body, want)
	}
	s := p.Stats()
	if s.Requests != 1 || s.Eligible != 1 || s.TotalFaults() != 0 || s.UpstreamErrors != 0 {
		t.Errorf("Stats() = %+v, want 1 request, 1 eligible, no faults", s)
	}
}

func TestStatusFaults(t *testing.T) {
	clock := func() time.Time { return time.Date(2026, 11, 22, 10, 0, 0, 500e6, time.UTC) }
	for _, tc := range []struct {
		kind       Kind
		status     int
		retryAfter string
	}{
		{Status503, 503, ""},
		{Status429, 429, "1"},
		// 10:00:00.5 + 1s, rounded up so the client never retries early.
		{Status429Date, 429, "Sun, 22 Nov 2026 10:00:02 GMT"},
	} {
		t.Run(tc.kind.String(), func(t *testing.T) {
			u := newUpstream(t)
			p, base := start(t, u, WithSchedule(tc.kind), withClock(clock))
			resp, body, err := do(t, client(t), http.MethodPatch, base+"/v2/r/blobs/uploads/x", make([]byte, 1<<20))
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tc.status || resp.Header.Get("Retry-After") != tc.retryAfter {
				t.Errorf("got %d Retry-After %q, want %d %q", resp.StatusCode, resp.Header.Get("Retry-After"), tc.status, tc.retryAfter)
			}
			if !bytes.Contains(body, []byte(`"errors"`)) {
				t.Errorf("body %q is not a registry error", body)
			}
			if u.hits.Load() != 0 {
				t.Errorf("upstream saw %d requests, want 0", u.hits.Load())
			}
			if got := p.Stats().Faults[tc.kind]; got != 1 {
				t.Errorf("Stats().Faults[%v] = %d, want 1", tc.kind, got)
			}
			// The schedule is used up: the next request passes.
			if resp, _, err := do(t, client(t), http.MethodGet, base+"/", nil); err != nil || resp.StatusCode != 200 {
				t.Errorf("second request: %v, %v", resp, err)
			}
		})
	}
}

func TestRetryAfterRoundsUp(t *testing.T) {
	u := newUpstream(t)
	_, base := start(t, u, WithSchedule(Status429), WithRetryAfter(1500*time.Millisecond))
	resp, _, err := do(t, client(t), http.MethodGet, base+"/", nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := resp.Header.Get("Retry-After"); got != "2" {
		t.Errorf("Retry-After = %q, want 2", got)
	}
}

func TestDropRequest(t *testing.T) {
	u := newUpstream(t)
	p, base := start(t, u, WithSchedule(DropRequest))
	if _, _, err := do(t, client(t), http.MethodPatch, base+"/v2/r/blobs/uploads/x", make([]byte, 1<<20)); err == nil {
		t.Fatal("request succeeded, want a dropped connection")
	}
	if u.hits.Load() != 0 {
		t.Errorf("upstream saw %d requests, want 0", u.hits.Load())
	}
	if got := p.Stats().Faults[DropRequest]; got != 1 {
		t.Errorf("Stats().Faults[DropRequest] = %d, want 1", got)
	}
}

func TestDropBody(t *testing.T) {
	for _, tc := range []struct {
		name, method, path string
		wantStatus         int // 0: the client gets no response at all
		minBytes, maxBytes int // body bytes the client gets before the cut
	}{
		{"content-length", http.MethodGet, "/big", 200, 500, 500},
		// Without a length the cut is half of the first chunk the proxy
		// reads, and how the upstream's writes coalesce is up to TCP.
		{"chunked", http.MethodGet, "/stream", 200, 50, 200},
		{"no-body", http.MethodPut, "/v2/r/manifests/latest", 0, 0, 0},
		{"head", http.MethodHead, "/big", 0, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u := newUpstream(t)
			p, base := start(t, u, WithSchedule(DropBody))
			resp, body, err := do(t, client(t), tc.method, base+tc.path, nil)
			if err == nil {
				t.Fatalf("got a complete response (%d, %d bytes), want a broken one", resp.StatusCode, len(body))
			}
			if tc.wantStatus == 0 {
				if resp != nil {
					t.Errorf("got status %d, want none", resp.StatusCode)
				}
			} else {
				if resp == nil || resp.StatusCode != tc.wantStatus {
					t.Fatalf("got %v, want status %d then a cut body", resp, tc.wantStatus)
				}
				if !errors.Is(err, io.ErrUnexpectedEOF) {
					t.Errorf("body error = %v, want io.ErrUnexpectedEOF", err)
				}
				if len(body) < tc.minBytes || len(body) > tc.maxBytes {
					t.Errorf("got %d body bytes, want %d to %d", len(body), tc.minBytes, tc.maxBytes)
				}
			}
			if u.hits.Load() != 1 {
				t.Errorf("upstream saw %d requests, want 1: DropBody forwards", u.hits.Load())
			}
			if got := p.Stats().Faults[DropBody]; got != 1 {
				t.Errorf("Stats().Faults[DropBody] = %d, want 1", got)
			}
		})
	}
}

func TestEligibility(t *testing.T) {
	u := newUpstream(t)
	p, base := start(t, u,
		WithMethods(http.MethodPut), WithPath(ManifestPath),
		WithEveryNth(1), WithKinds(Status503))
	c := client(t)
	for _, tc := range []struct {
		method, path string
		want         int
	}{
		{http.MethodGet, "/v2/r/manifests/latest", 200},
		{http.MethodPut, "/v2/r/blobs/uploads/abc", 201},
		{http.MethodPut, "/v2/r/manifests/latest", 503},
		{http.MethodPut, "/v2/a/b/manifests/sha256:00", 503},
	} {
		resp, _, err := do(t, c, tc.method, base+tc.path, nil)
		if err != nil {
			t.Fatalf("%s %s: %v", tc.method, tc.path, err)
		}
		if resp.StatusCode != tc.want {
			t.Errorf("%s %s: got %d, want %d", tc.method, tc.path, resp.StatusCode, tc.want)
		}
	}
	if s := p.Stats(); s.Requests != 4 || s.Eligible != 2 || s.Faults[Status503] != 2 {
		t.Errorf("Stats() = %+v, want 4 requests, 2 eligible, 2 faults", s)
	}
}

// statuses sends n sequential GETs and returns their status codes, 0 for a
// request that failed.
func statuses(t *testing.T, base string, n int) []int {
	t.Helper()
	c := client(t)
	var got []int
	for i := 0; i < n; i++ {
		resp, _, err := do(t, c, http.MethodGet, base+"/", nil)
		if err != nil {
			got = append(got, 0)
			continue
		}
		got = append(got, resp.StatusCode)
	}
	return got
}

func TestEveryNthTakesKindsInTurn(t *testing.T) {
	u := newUpstream(t)
	p, base := start(t, u, WithEveryNth(2), WithKinds(Status503, Status429, DropRequest))
	got := statuses(t, base, 8)
	want := []int{200, 503, 200, 429, 200, 0, 200, 503}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("statuses = %v, want %v", got, want)
	}
	s := p.Stats()
	if s.Faults[Status503] != 2 || s.Faults[Status429] != 1 || s.Faults[DropRequest] != 1 {
		t.Errorf("Stats().Faults = %v", s.Faults)
	}
}

func TestMaxFaults(t *testing.T) {
	u := newUpstream(t)
	p, base := start(t, u, WithEveryNth(1), WithKinds(Status503), WithMaxFaults(2))
	if got, want := statuses(t, base, 4), []int{503, 503, 200, 200}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("statuses = %v, want %v", got, want)
	}
	if got := p.Stats().TotalFaults(); got != 2 {
		t.Errorf("TotalFaults() = %d, want 2", got)
	}
}

func TestRateIsDeterministic(t *testing.T) {
	run := func(seed uint64) []int {
		u := newUpstream(t)
		_, base := start(t, u, WithRate(0.3), WithSeed(seed), WithKinds(Status503))
		return statuses(t, base, 40)
	}
	a, b, c := run(7), run(7), run(8)
	if fmt.Sprint(a) != fmt.Sprint(b) {
		t.Errorf("same seed, different faults:\n%v\n%v", a, b)
	}
	if fmt.Sprint(a) == fmt.Sprint(c) {
		t.Errorf("seeds 7 and 8 gave the same faults: %v", a)
	}
	faults := 0
	for _, s := range a {
		if s == 503 {
			faults++
		}
	}
	if faults == 0 || faults == len(a) {
		t.Errorf("rate 0.3 gave %d faults in %d requests", faults, len(a))
	}
}

func TestOptionErrors(t *testing.T) {
	target := &url.URL{Scheme: "http", Host: "127.0.0.1:1"}
	for name, opts := range map[string][]Option{
		"every nth 0":      {WithEveryNth(0)},
		"rate 0":           {WithRate(0)},
		"rate above 1":     {WithRate(1.5)},
		"rate and nth":     {WithRate(0.5), WithEveryNth(2)},
		"nth and schedule": {WithEveryNth(2), WithSchedule(Status503)},
		"empty schedule":   {WithSchedule()},
		"bad schedule":     {WithSchedule(Kind(42))},
		"no kinds":         {WithKinds()},
		"kind none":        {WithKinds(None)},
		"negative max":     {WithMaxFaults(-1)},
		"bad path":         {WithPath("(")},
		"lower method":     {WithMethods("get")},
		"no methods":       {WithMethods()},
		"short retry":      {WithRetryAfter(time.Millisecond)},
		"nil transport":    {WithTransport(nil)},
	} {
		if _, err := New(target, opts...); err == nil {
			t.Errorf("%s: New succeeded, want an error", name)
		}
	}
	for _, bad := range []*url.URL{nil, {Scheme: "ftp", Host: "x"}, {Scheme: "http"}} {
		if _, err := New(bad); err == nil {
			t.Errorf("New(%v) succeeded, want an error", bad)
		}
	}
}

func TestPathPatterns(t *testing.T) {
	for _, tc := range []struct {
		pattern, path string
		want          bool
	}{
		{BlobUploadPath, "/v2/lkbuild/kernel/blobs/uploads/", true},
		{BlobUploadPath, "/v2/r/blobs/uploads/0c1c-4a", true},
		{BlobUploadPath, "/v2/r/blobs/sha256:ab", false},
		{BlobPath, "/v2/r/blobs/sha256:" + strings.Repeat("a", 64), true},
		{BlobPath, "/v2/r/blobs/uploads/x", false},
		{ManifestPath, "/v2/a/b/manifests/6.6.13-44a5293614", true},
		{ManifestPath, "/v2/r/manifests/sha256:00", true},
		{ManifestPath, "/v2/r/tags/list", false},
	} {
		if got := regexp.MustCompile(tc.pattern).MatchString(tc.path); got != tc.want {
			t.Errorf("%s matches %s = %v, want %v", tc.pattern, tc.path, got, tc.want)
		}
	}
}

func TestStartAndClose(t *testing.T) {
	u := newUpstream(t)
	target, _ := url.Parse(u.URL)
	p, err := New(target)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Errorf("Close before Start: %v", err)
	}
	addr, err := p.Start()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Start(); err == nil {
		t.Error("second Start succeeded")
	}
	if err := p.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if _, _, err := do(t, client(t), http.MethodGet, "http://"+addr+"/", nil); err == nil {
		t.Error("request after Close succeeded")
	}
}

func TestUpstreamDown(t *testing.T) {
	u := newUpstream(t)
	p, base := start(t, u)
	u.Close()
	resp, _, err := do(t, client(t), http.MethodGet, base+"/", nil)
	if err != nil || resp.StatusCode != http.StatusBadGateway {
		t.Fatalf("got %v, %v; want 502", resp, err)
	}
	if got := p.Stats().UpstreamErrors; got != 1 {
		t.Errorf("UpstreamErrors = %d, want 1", got)
	}
}

// FuzzDropBody checks that DropBody passes exactly half of a body of any
// length and then breaks the connection.
func FuzzDropBody(f *testing.F) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(r.URL.Query().Get("n"))
		w.Header().Set("Content-Length", strconv.Itoa(n))
		_, _ = w.Write(make([]byte, n))
	}))
	defer up.Close()
	target, _ := url.Parse(up.URL)
	p, err := New(target, WithEveryNth(1), WithKinds(DropBody))
	if err != nil {
		f.Fatal(err)
	}
	addr, err := p.Start()
	if err != nil {
		f.Fatal(err)
	}
	defer p.Close()
	tr := &http.Transport{Proxy: nil, DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 10 * time.Second}

	for _, n := range []uint16{0, 1, 2, 3, 4096, 65535} {
		f.Add(n)
	}
	f.Fuzz(func(t *testing.T, n uint16) {
		resp, err := c.Get(fmt.Sprintf("http://%s/?n=%d", addr, n))
		if n == 0 {
			if err == nil {
				resp.Body.Close()
				t.Fatalf("empty body: got status %d, want no response", resp.StatusCode)
			}
			return
		}
		if err != nil {
			t.Fatalf("n=%d: %v, want status and half the body", n, err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if !errors.Is(err, io.ErrUnexpectedEOF) || len(b) != int(n)/2 {
			t.Fatalf("n=%d: got %d bytes, %v; want %d bytes, unexpected EOF", n, len(b), err, n/2)
		}
	})
}
