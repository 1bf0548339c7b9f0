package kernelsrc

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lkbuild/lkbuild/internal/kernelsrc/mirrortest"
	"github.com/lkbuild/lkbuild/internal/pgptest"
	"github.com/lkbuild/lkbuild/internal/rmtree"
	"github.com/lkbuild/lkbuild/internal/testenv"
	"github.com/lkbuild/lkbuild/kernel"
	"github.com/ulikunitz/xz"
)

var (
	v71 = kernel.Version{Major: 6, Minor: 6, Patch: 71} // several xz blocks, made by xz -T2
	v72 = kernel.Version{Major: 6, Minor: 6, Patch: 72} // one xz block, made by ulikunitz/xz
)

// testTar is a small kernel-like tarball: a top directory, nested
// folders, text files of varied sizes (about 1.5 MiB in all, so that 64 KiB
// xz blocks make a couple dozen), a symlink and an empty file.
type testTar struct {
	data  []byte
	files map[string][]byte // regular files by path
	links map[string]string // symlinks by path
}

func makeTestTar(top string, seed uint64) (*testTar, error) {
	rng := rand.New(rand.NewPCG(seed, 7))
	tt := &testTar{files: map[string][]byte{}, links: map[string]string{}}
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	mtime := time.Unix(1700000000, 0)
	var err error
	add := func(h *tar.Header, body []byte) {
		h.ModTime = mtime
		if err == nil {
			err = tw.WriteHeader(h)
		}
		if err == nil {
			_, err = tw.Write(body)
		}
	}
	dirs := []string{top, top + "/arch", top + "/arch/x86", top + "/arch/x86/configs", top + "/kernel", top + "/scripts"}
	for _, d := range dirs {
		add(&tar.Header{Typeflag: tar.TypeDir, Name: d + "/", Mode: 0o775}, nil)
	}
	words := strings.Fields("static int struct return if else for while unsigned long void const char kernel device driver lock unlock")
	for i := range 60 {
		var body bytes.Buffer
		n := rng.IntN(50 << 10)
		for body.Len() < n {
			fmt.Fprintf(&body, "%s %s_%d(%d);\n", words[rng.IntN(len(words))], words[rng.IntN(len(words))], rng.IntN(1000), rng.IntN(1<<20))
		}
		name := fmt.Sprintf("%s/file%02d.c", dirs[1+i%(len(dirs)-1)], i)
		tt.files[name] = body.Bytes()
		mode := int64(0o664)
		if i%7 == 0 {
			mode = 0o775
		}
		add(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(body.Len())}, body.Bytes())
	}
	tt.files[top+"/Makefile"] = []byte("VERSION = 6\n")
	add(&tar.Header{Typeflag: tar.TypeReg, Name: top + "/Makefile", Mode: 0o664, Size: 12}, tt.files[top+"/Makefile"])
	tt.files[top+"/empty"] = nil
	add(&tar.Header{Typeflag: tar.TypeReg, Name: top + "/empty", Mode: 0o664}, nil)
	tt.links[top+"/scripts/link"] = "../Makefile"
	add(&tar.Header{Typeflag: tar.TypeSymlink, Name: top + "/scripts/link", Linkname: "../Makefile", Mode: 0o777}, nil)
	if err == nil {
		err = tw.Close()
	}
	if err != nil {
		return nil, err
	}
	// GNU tar pads the archive to a 10 KiB record; so does kernel.org's.
	if pad := b.Len() % 10240; pad != 0 {
		b.Write(make([]byte, 10240-pad))
	}
	tt.data = b.Bytes()
	return tt, nil
}

// xzMulti compresses with the xz program into 64 KiB blocks.
func xzMulti(bin string, data []byte) ([]byte, error) {
	cmd := exec.Command(bin, "-c", "-q", "-T2", "--block-size=64KiB")
	cmd.Stdin = bytes.NewReader(data)
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("xz: %w", err)
	}
	return out, nil
}

// xzSingle compresses into one block with github.com/ulikunitz/xz.
func xzSingle(data []byte) ([]byte, error) {
	var b bytes.Buffer
	w, err := xz.NewWriter(&b)
	if err != nil {
		return nil, err
	}
	if _, err := w.Write(data); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// fixture is a mirror with 6.6.71 and 6.6.72, signed by key.
type fixture struct {
	mirror  string
	key     *pgptest.Key
	keyring *kernel.Keyring
	tars    map[kernel.Version]*testTar
	xz      map[kernel.Version][]byte
}

// shared holds the fixture, made once per test binary (it takes seconds)
// in a directory TestMain removes. Tests must not change it: copyDir
// first.
var shared struct {
	once sync.Once
	dir  string
	f    *fixture
	err  error
}

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "kernelsrc-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	shared.dir = dir
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	xzBin := testenv.LookPath(t, "xz", "xz-utils")
	shared.once.Do(func() { shared.f, shared.err = makeFixture(shared.dir, xzBin) })
	if shared.err != nil {
		t.Fatal(shared.err)
	}
	return shared.f
}

func makeFixture(dir, xzBin string) (*fixture, error) {
	key, err := pgptest.NewKey("Autosigner", "autosigner@lkbuild.invalid", nil)
	if err != nil {
		return nil, err
	}
	keys, err := pgptest.Keyring(key)
	if err != nil {
		return nil, err
	}
	kr, err := kernel.ReadKeyring("keys.asc", bytes.NewReader(keys))
	if err != nil {
		return nil, err
	}
	f := &fixture{
		mirror:  filepath.Join(dir, "mirror"),
		key:     key,
		keyring: kr,
		tars:    map[kernel.Version]*testTar{},
		xz:      map[kernel.Version][]byte{},
	}
	var releases []mirrortest.Release
	for _, v := range []kernel.Version{v71, v72} {
		tt, err := makeTestTar("linux-"+v.String(), uint64(v.Patch))
		if err != nil {
			return nil, err
		}
		f.tars[v] = tt
		if v == v71 {
			f.xz[v], err = xzMulti(xzBin, tt.data)
		} else {
			f.xz[v], err = xzSingle(tt.data)
		}
		if err != nil {
			return nil, err
		}
		path := filepath.Join(dir, v.String()+".tar.xz")
		if err := os.WriteFile(path, f.xz[v], 0o644); err != nil {
			return nil, err
		}
		releases = append(releases, mirrortest.Release{Version: v, XZ: path})
	}
	if err := mirrortest.Write(f.mirror, f.key, releases...); err != nil {
		return nil, err
	}
	return f, nil
}

func newKey(t *testing.T, name string) *pgptest.Key {
	t.Helper()
	k, err := pgptest.NewKey(name, strings.ToLower(name)+"@lkbuild.invalid", nil)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func keyringOf(t *testing.T, keys ...*pgptest.Key) *kernel.Keyring {
	t.Helper()
	data, err := pgptest.Keyring(keys...)
	if err != nil {
		t.Fatal(err)
	}
	kr, err := kernel.ReadKeyring("keys.asc", bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	return kr
}

// files returns where v's files are in the fixture's mirror.
func (f *fixture) files(t *testing.T, v kernel.Version) kernel.SourceFiles {
	t.Helper()
	sf, err := kernel.SourceURLs(f.mirror, v)
	if err != nil {
		t.Fatal(err)
	}
	return sf
}

// replace gives path new contents through a new inode: mirror files may
// be hard links to the fixture's sources.
func replace(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func (f *fixture) options(t *testing.T, mirror string) Options {
	return Options{
		Mirror:     mirror,
		Dir:        t.TempDir(),
		Keyring:    f.keyring,
		Workers:    3,
		retryDelay: time.Millisecond,
	}
}

// checkTree compares an extracted tree with the tar it came from.
func checkTree(t *testing.T, tree Tree, tt *testTar, v kernel.Version) {
	t.Helper()
	if filepath.Base(tree.Dir) != "linux-"+v.String() {
		t.Errorf("tree dir %s is not the tar's top directory", tree.Dir)
	}
	root := filepath.Dir(tree.Dir)
	for name, want := range tt.files {
		got, err := os.ReadFile(filepath.Join(root, name))
		if err != nil {
			t.Errorf("read %s: %v", name, err)
			continue
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s: %d bytes differ from the tar's %d", name, len(got), len(want))
		}
	}
	for name, want := range tt.links {
		if got, err := os.Readlink(filepath.Join(root, name)); err != nil || got != want {
			t.Errorf("symlink %s -> %q, %v; want %q", name, got, err, want)
		}
	}
}

// checkClean asserts that the cache holds nothing half-written: tmp/ and
// trees/ are empty (the fetch failed), and every tarball in sha256/ has
// the digest it is named by.
func checkClean(t *testing.T, cacheDir string) {
	t.Helper()
	src := cacheDir
	for _, d := range []string{"tmp", "trees"} {
		entries, err := os.ReadDir(filepath.Join(src, d))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			t.Fatal(err)
		}
		for _, e := range entries {
			t.Errorf("left in the cache after a failure: %s/%s", d, e.Name())
		}
	}
	entries, err := os.ReadDir(filepath.Join(src, "sha256"))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(src, "sha256", e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if sum := sha256.Sum256(data); hex.EncodeToString(sum[:]) != e.Name() {
			t.Errorf("sha256/%s holds data with digest %x", e.Name(), sum)
		}
	}
}

func TestFetchLocalMirror(t *testing.T) {
	f := newFixture(t)
	for _, tc := range []struct {
		name   string
		mirror string
	}{
		{"directory", f.mirror},
		{"file URL", "file://" + f.mirror},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, v := range []kernel.Version{v71, v72} {
				o := f.options(t, tc.mirror)
				var phases []Phase
				o.Progress = func(p Progress) {
					if len(phases) == 0 || phases[len(phases)-1] != p.Phase {
						phases = append(phases, p.Phase)
					}
					if p.Total != 0 && p.Done > p.Total {
						t.Errorf("progress %d of %d", p.Done, p.Total)
					}
				}
				tree, err := Fetch(context.Background(), o, v)
				if err != nil {
					t.Fatal(err)
				}
				if tree.Cached {
					t.Error("first fetch says the tree was cached")
				}
				if fmt.Sprint(phases) != "[download extract]" {
					t.Errorf("phases %v, want [download extract]", phases)
				}
				checkTree(t, tree, f.tars[v], v)
				sum := sha256.Sum256(f.xz[v])
				if tree.SHA256 != hex.EncodeToString(sum[:]) || tree.URL != f.files(t, v).Tarball || tree.Version != v {
					t.Errorf("tree %+v", tree)
				}
				if data, err := os.ReadFile(tree.Tarball); err != nil || !bytes.Equal(data, f.xz[v]) {
					t.Errorf("cached tarball: %v", err)
				}

				again, err := Fetch(context.Background(), o, v)
				if err != nil {
					t.Fatal(err)
				}
				if !again.Cached || again.Dir != tree.Dir || again.SHA256 != tree.SHA256 {
					t.Errorf("second fetch: %+v, want the cached %+v", again, tree)
				}
				if entries, _ := os.ReadDir(filepath.Join(o.Dir, "tmp")); len(entries) != 0 {
					t.Errorf("tmp/ holds %d entries after success", len(entries))
				}
			}
		})
	}
}

// TestFetchSequential decodes with one worker: the same tree.
func TestFetchSequential(t *testing.T) {
	f := newFixture(t)
	o := f.options(t, f.mirror)
	o.Workers = 1
	tree, err := Fetch(context.Background(), o, v71)
	if err != nil {
		t.Fatal(err)
	}
	checkTree(t, tree, f.tars[v71], v71)
}

// countingServer serves the fixture's mirror over HTTP on 127.0.0.1 and
// counts the requests.
func (f *fixture) countingServer(t *testing.T) (string, *atomic.Int32) {
	t.Helper()
	var requests atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		http.FileServer(http.Dir(f.mirror)).ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL, &requests
}

func TestFetchHTTP(t *testing.T) {
	f := newFixture(t)
	url, requests := f.countingServer(t)
	o := f.options(t, url+"/")
	tree, err := Fetch(context.Background(), o, v71)
	if err != nil {
		t.Fatal(err)
	}
	checkTree(t, tree, f.tars[v71], v71)
	if want := url + "/v6.x/linux-6.6.71.tar.xz"; tree.URL != want {
		t.Errorf("URL %s, want %s", tree.URL, want)
	}
	if n := requests.Load(); n != 3 {
		t.Errorf("%d requests, want 3 (sums, signature, tarball)", n)
	}
	// A cache hit needs no request: the kept sums file names the tree.
	if _, err := Fetch(context.Background(), o, v71); err != nil {
		t.Fatal(err)
	}
	if n := requests.Load(); n != 3 {
		t.Errorf("%d requests after a cache hit, want 3", n)
	}
	// Nor offline.
	o.Offline = true
	if tree, err := Fetch(context.Background(), o, v71); err != nil || !tree.Cached {
		t.Fatalf("offline fetch of a cached release: %+v, %v", tree, err)
	}
	if n := requests.Load(); n != 3 {
		t.Errorf("%d requests after an offline fetch, want 3", n)
	}
}

// TestFetchOffline checks what an offline fetch does without the release
// in the cache: an http mirror is an error naming the file, with no
// request; a local mirror (a bundle's tree) is read as always.
func TestFetchOffline(t *testing.T) {
	f := newFixture(t)
	url, requests := f.countingServer(t)
	o := f.options(t, url+"/")
	o.Offline = true
	_, err := Fetch(context.Background(), o, v71)
	if !errors.Is(err, ErrOffline) || !strings.Contains(err.Error(), "sha256sums.asc") {
		t.Errorf("offline fetch, empty cache: got %v, want ErrOffline naming sha256sums.asc", err)
	}
	if n := requests.Load(); n != 0 {
		t.Errorf("offline fetch made %d requests", n)
	}

	// The tree gone but the tarball, sums and signature kept: offline,
	// it is checked and extracted again from them.
	o.Offline = false
	if _, err := Fetch(context.Background(), o, v71); err != nil {
		t.Fatal(err)
	}
	if err := rmtree.RemoveAll(filepath.Join(o.Dir, "trees")); err != nil {
		t.Fatal(err)
	}
	requests.Store(0)
	o.Offline = true
	tree, err := Fetch(context.Background(), o, v71)
	if err != nil {
		t.Fatalf("offline fetch, tree removed: %v", err)
	}
	checkTree(t, tree, f.tars[v71], v71)
	if n := requests.Load(); n != 0 {
		t.Errorf("offline fetch made %d requests", n)
	}
	// Without the kept signature the mirror is needed.
	if err := rmtree.RemoveAll(filepath.Join(o.Dir, "trees")); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(o.Dir, "signatures")); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(o.Dir, "signatures"), 0o755); err != nil {
		t.Fatal(err)
	}
	_, err = Fetch(context.Background(), o, v71)
	if !errors.Is(err, ErrOffline) || !strings.Contains(err.Error(), ".tar.sign") {
		t.Errorf("offline fetch, tree and signature removed: got %v, want ErrOffline naming the .tar.sign", err)
	}

	// A tampered kept copy is not trusted: online, the mirror's is used.
	sums, err := filepath.Glob(filepath.Join(o.Dir, "sums", "*"))
	if err != nil || len(sums) != 1 {
		t.Fatalf("kept sums: %v, %v", sums, err)
	}
	data, err := os.ReadFile(sums[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(sums[0], bytes.Replace(data, []byte("linux-6.6.71.tar.xz"), []byte("linux-6.6.71.tar.xx"), 1), 0o644); err != nil {
		t.Fatal(err)
	}
	o.Offline = false
	if _, err := Fetch(context.Background(), o, v71); err != nil {
		t.Fatalf("fetch with a tampered kept sums file: %v", err)
	}
	if n := requests.Load(); n != 2 {
		t.Errorf("%d requests with a tampered kept sums file, want 2 (sums, signature; the tarball is cached)", n)
	}

	// A local mirror needs no network: offline fetches from it.
	o2 := f.options(t, f.mirror)
	o2.Offline = true
	tree, err = Fetch(context.Background(), o2, v71)
	if err != nil {
		t.Fatalf("offline fetch from a local mirror: %v", err)
	}
	checkTree(t, tree, f.tars[v71], v71)
}

// flakyServer serves the mirror but cuts the tarball's body short the
// first `drops` times, after `cut` bytes. With ranges false it ignores
// Range headers, like a server that cannot resume.
type flakyServer struct {
	dir    string
	drops  int32
	cut    int
	ranges bool

	mu     sync.Mutex
	served int32
	log    []string // Range headers of tarball requests
}

func (s *flakyServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !strings.HasSuffix(r.URL.Path, ".tar.xz") {
		http.FileServer(http.Dir(s.dir)).ServeHTTP(w, r)
		return
	}
	data, err := os.ReadFile(filepath.Join(s.dir, filepath.FromSlash(r.URL.Path)))
	if err != nil {
		http.NotFound(w, r)
		return
	}
	s.mu.Lock()
	s.log = append(s.log, r.Header.Get("Range"))
	s.served++
	drop := s.served <= s.drops
	s.mu.Unlock()
	start := 0
	if rng := r.Header.Get("Range"); s.ranges && rng != "" {
		n, err := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(rng, "bytes="), "-"))
		if err != nil || n >= len(data) {
			http.Error(w, "bad range", http.StatusRequestedRangeNotSatisfiable)
			return
		}
		start = n
		w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", n, len(data)-1, len(data)))
	}
	body := data[start:]
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.Header().Set("ETag", `"v1"`)
	if start > 0 {
		w.WriteHeader(http.StatusPartialContent)
	}
	if drop {
		_, _ = w.Write(body[:min(s.cut, len(body))])
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler) // drops the connection mid-body
	}
	_, _ = w.Write(body)
}

func TestFetchResume(t *testing.T) {
	f := newFixture(t)
	size := len(f.xz[v71])
	t.Run("with ranges", func(t *testing.T) {
		s := &flakyServer{dir: f.mirror, drops: 3, cut: size / 5, ranges: true}
		srv := httptest.NewServer(s)
		defer srv.Close()
		o := f.options(t, srv.URL)
		o.Retries = -1 // resuming after progress needs no retries
		tree, err := Fetch(context.Background(), o, v71)
		if err != nil {
			t.Fatal(err)
		}
		checkTree(t, tree, f.tars[v71], v71)
		c := size / 5
		want := []string{"", fmt.Sprintf("bytes=%d-", c), fmt.Sprintf("bytes=%d-", 2*c), fmt.Sprintf("bytes=%d-", 3*c)}
		if fmt.Sprint(s.log) != fmt.Sprint(want) {
			t.Errorf("Range headers %q, want %q", s.log, want)
		}
	})
	t.Run("without ranges", func(t *testing.T) {
		s := &flakyServer{dir: f.mirror, drops: 2, cut: size / 2, ranges: false}
		srv := httptest.NewServer(s)
		defer srv.Close()
		tree, err := Fetch(context.Background(), f.options(t, srv.URL), v71)
		if err != nil {
			t.Fatal(err)
		}
		checkTree(t, tree, f.tars[v71], v71)
		if len(s.log) != 3 {
			t.Errorf("%d tarball requests, want 3", len(s.log))
		}
	})
	t.Run("drops forever", func(t *testing.T) {
		// Without progress after the first cut, retries run out.
		s := &flakyServer{dir: f.mirror, drops: 1000, cut: 0, ranges: true}
		srv := httptest.NewServer(s)
		defer srv.Close()
		o := f.options(t, srv.URL)
		o.Retries = 2
		_, err := Fetch(context.Background(), o, v71)
		if err == nil || !strings.Contains(err.Error(), "gave up after 3 tries") {
			t.Errorf("got %v, want a give-up error", err)
		}
		if len(s.log) != 3 {
			t.Errorf("%d tarball requests, want 3", len(s.log))
		}
		checkClean(t, o.Dir)
	})
}

func TestFetchHTTPErrors(t *testing.T) {
	f := newFixture(t)
	// status serves the mirror, but answers requests for files ending in
	// suffix with the statuses in turn (the last one repeats).
	status := func(suffix string, codes ...int) (*httptest.Server, *atomic.Int32) {
		var n atomic.Int32
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.HasSuffix(r.URL.Path, suffix) {
				i := int(n.Add(1)) - 1
				if code := codes[min(i, len(codes)-1)]; code != http.StatusOK {
					http.Error(w, http.StatusText(code), code)
					return
				}
			}
			http.FileServer(http.Dir(f.mirror)).ServeHTTP(w, r)
		}))
		t.Cleanup(srv.Close)
		return srv, &n
	}
	for _, tc := range []struct {
		name     string
		suffix   string
		codes    []int
		code     int // of the *HTTPError expected; 0 for success
		requests int32
	}{
		{"tarball 404", ".tar.xz", []int{404}, 404, 1},
		{"sums 404", "sha256sums.asc", []int{404}, 404, 1},
		{"signature 410", ".tar.sign", []int{410}, 410, 1},
		{"tarball 500", ".tar.xz", []int{500}, 500, 3},
		{"sums 403", "sha256sums.asc", []int{403}, 403, 1},
		{"tarball 503 then fine", ".tar.xz", []int{503, 429, 200}, 0, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, n := status(tc.suffix, tc.codes...)
			o := f.options(t, srv.URL)
			o.Retries = 2
			tree, err := Fetch(context.Background(), o, v71)
			if n.Load() != tc.requests {
				t.Errorf("%d requests for %s, want %d", n.Load(), tc.suffix, tc.requests)
			}
			if tc.code == 0 {
				if err != nil {
					t.Fatal(err)
				}
				checkTree(t, tree, f.tars[v71], v71)
				return
			}
			var herr *HTTPError
			if !errors.As(err, &herr) || herr.StatusCode != tc.code {
				t.Fatalf("got %v, want an HTTPError %d", err, tc.code)
			}
			if notFound := tc.code == 404 || tc.code == 410; errors.Is(err, ErrNotFound) != notFound {
				t.Errorf("errors.Is(%v, ErrNotFound) = %v", err, !notFound)
			}
			if !strings.Contains(err.Error(), srv.URL) {
				t.Errorf("error %q does not name the URL", err)
			}
			checkClean(t, o.Dir)
		})
	}
}

// TestFetchTampered is the table of what a mirror or an attacker can get
// wrong. Each case gets a fresh copy of the mirror and a fresh cache; each
// must fail with its own error and leave nothing half-written.
func TestFetchTampered(t *testing.T) {
	f := newFixture(t)
	other := newKey(t, "Mallory")
	for _, tc := range []struct {
		name string
		v    kernel.Version
		// change breaks the mirror copy at dir, or the options.
		change func(t *testing.T, dir string, o *Options)
		want   error
	}{
		{"unknown key in keys.asc", v71, func(t *testing.T, dir string, o *Options) {
			o.Keyring = keyringOf(t, other)
		}, kernel.ErrUnknownKey},
		{"sums signed by another key", v71, func(t *testing.T, dir string, o *Options) {
			if err := mirrortest.Resign(dir, other, v71); err != nil {
				t.Fatal(err)
			}
		}, kernel.ErrUnknownKey},
		{"sums changed", v71, func(t *testing.T, dir string, o *Options) {
			p := filepath.Join(dir, "v6.x", "sha256sums.asc")
			data, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			// Change the first digit of the first digest.
			i := bytes.Index(data, []byte("\n\n")) + 2
			data[i] ^= 1
			replace(t, p, data)
		}, kernel.ErrBadSignature},
		{"sums not signed", v71, func(t *testing.T, dir string, o *Options) {
			replace(t, filepath.Join(dir, "v6.x", "sha256sums.asc"), []byte(strings.Repeat("0", 64)+"  linux-6.6.71.tar.xz\n"))
		}, kernel.ErrNotSigned},
		{"version not in sums", kernel.Version{Major: 6, Minor: 6, Patch: 73}, nil, kernel.ErrNotInSums},
		{"tarball changed", v71, func(t *testing.T, dir string, o *Options) {
			data := bytes.Clone(f.xz[v71])
			data[len(data)/2] ^= 1
			replace(t, filepath.Join(dir, "v6.x", "linux-6.6.71.tar.xz"), data)
		}, kernel.ErrHashMismatch},
		{"signature over another tar", v71, func(t *testing.T, dir string, o *Options) {
			sig, err := f.key.DetachSign(bytes.NewReader(f.tars[v72].data))
			if err != nil {
				t.Fatal(err)
			}
			replace(t, filepath.Join(dir, "v6.x", "linux-6.6.71.tar.sign"), sig)
		}, kernel.ErrBadSignature},
		{"signature over the .xz", v71, func(t *testing.T, dir string, o *Options) {
			sig, err := f.key.DetachSign(bytes.NewReader(f.xz[v71]))
			if err != nil {
				t.Fatal(err)
			}
			replace(t, filepath.Join(dir, "v6.x", "linux-6.6.71.tar.sign"), sig)
		}, kernel.ErrBadSignature},
		{"signature by another key", v71, func(t *testing.T, dir string, o *Options) {
			sig, err := other.DetachSign(bytes.NewReader(f.tars[v71].data))
			if err != nil {
				t.Fatal(err)
			}
			replace(t, filepath.Join(dir, "v6.x", "linux-6.6.71.tar.sign"), sig)
		}, kernel.ErrUnknownKey},
		{"truncated xz, signed sums", v71, func(t *testing.T, dir string, o *Options) {
			replace(t, filepath.Join(dir, "v6.x", "linux-6.6.71.tar.xz"), f.xz[v71][:len(f.xz[v71])*2/3])
			if err := mirrortest.Resign(dir, f.key, v71); err != nil {
				t.Fatal(err)
			}
		}, kernel.ErrXZTruncated},
		{"truncated single-block xz, signed sums", v72, func(t *testing.T, dir string, o *Options) {
			replace(t, filepath.Join(dir, "v6.x", "linux-6.6.72.tar.xz"), f.xz[v72][:len(f.xz[v72])/2])
			if err := mirrortest.Resign(dir, f.key, v72); err != nil {
				t.Fatal(err)
			}
		}, kernel.ErrXZTruncated},
		{"corrupt xz block, signed sums", v71, func(t *testing.T, dir string, o *Options) {
			data := bytes.Clone(f.xz[v71])
			idx, err := kernel.ReadXZIndex(bytes.NewReader(data), int64(len(data)))
			if err != nil {
				t.Fatal(err)
			}
			b := idx.Blocks[len(idx.Blocks)/2]
			data[b.Offset+b.UnpaddedSize-1] ^= 1 // in the block's CRC64
			replace(t, filepath.Join(dir, "v6.x", "linux-6.6.71.tar.xz"), data)
			if err := mirrortest.Resign(dir, f.key, v71); err != nil {
				t.Fatal(err)
			}
		}, kernel.ErrXZCorrupt},
		{"tarball missing", v71, func(t *testing.T, dir string, o *Options) {
			if err := os.Remove(filepath.Join(dir, "v6.x", "linux-6.6.71.tar.xz")); err != nil {
				t.Fatal(err)
			}
		}, ErrNotFound},
		{"signature missing", v71, func(t *testing.T, dir string, o *Options) {
			if err := os.Remove(filepath.Join(dir, "v6.x", "linux-6.6.71.tar.sign")); err != nil {
				t.Fatal(err)
			}
		}, ErrNotFound},
		{"sums missing", v71, func(t *testing.T, dir string, o *Options) {
			if err := os.Remove(filepath.Join(dir, "v6.x", "sha256sums.asc")); err != nil {
				t.Fatal(err)
			}
		}, ErrNotFound},
		{"no such major", kernel.Version{Major: 7, Minor: 0, Patch: 1}, nil, ErrNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := copyDir(t, f.mirror)
			o := f.options(t, dir)
			if tc.change != nil {
				tc.change(t, dir, &o)
			}
			_, err := Fetch(context.Background(), o, tc.v)
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			t.Logf("error: %v", err)
			if !strings.Contains(err.Error(), dir) {
				t.Errorf("error %q does not name the file", err)
			}
			checkClean(t, o.Dir)
		})
	}
}

// copyDir copies a mirror, so that a test can break it.
func copyDir(t *testing.T, src string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "mirror")
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), data, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

// TestFetchConcurrent runs fetches of one release at once: one extracts,
// the others wait on the lock and then find the tree.
func TestFetchConcurrent(t *testing.T) {
	f := newFixture(t)
	o := f.options(t, f.mirror)
	var waited atomic.Int32
	o.Progress = func(p Progress) {
		if p.Phase == PhaseWait {
			waited.Add(1)
		}
	}
	const n = 4
	trees := make([]Tree, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { trees[i], errs[i] = Fetch(context.Background(), o, v71) })
	}
	wg.Wait()
	extracted := 0
	for i := range n {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if trees[i].Dir != trees[0].Dir {
			t.Errorf("fetch %d got %s, fetch 0 %s", i, trees[i].Dir, trees[0].Dir)
		}
		if !trees[i].Cached {
			extracted++
		}
	}
	if extracted != 1 {
		t.Errorf("%d fetches extracted the tree, want 1", extracted)
	}
	checkTree(t, trees[0], f.tars[v71], v71)
}

// TestFetchLeftovers: what a killed fetch left in tmp/ is removed by the
// next one.
func TestFetchLeftovers(t *testing.T) {
	f := newFixture(t)
	o := f.options(t, f.mirror)
	sum := sha256.Sum256(f.xz[v71])
	tmp := filepath.Join(o.Dir, "tmp")
	left := []string{
		filepath.Join(tmp, hex.EncodeToString(sum[:])+".tree-123", "linux-6.6.71"),
		filepath.Join(tmp, hex.EncodeToString(sum[:])+".xz-456"),
	}
	if err := os.MkdirAll(left[0], 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(left[1], []byte("partial"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Fetch(context.Background(), o, v71); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(tmp)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		t.Errorf("left in tmp/: %s", e.Name())
	}
}

// TestFetchCancel cancels a fetch while the tarball downloads.
func TestFetchCancel(t *testing.T) {
	f := newFixture(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasSuffix(r.URL.Path, ".tar.xz") {
			http.FileServer(http.Dir(f.mirror)).ServeHTTP(w, r)
			return
		}
		w.Header().Set("Content-Length", strconv.Itoa(len(f.xz[v71])))
		_, _ = w.Write(f.xz[v71][:1000])
		w.(http.Flusher).Flush()
		cancel()
		<-r.Context().Done()
	}))
	defer srv.Close()
	o := f.options(t, srv.URL)
	_, err := Fetch(ctx, o, v71)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
	checkClean(t, o.Dir)
}

func TestFetchOptions(t *testing.T) {
	f := newFixture(t)
	for name, o := range map[string]Options{
		"no cache":     {Mirror: f.mirror, Keyring: f.keyring},
		"no keyring":   {Mirror: f.mirror, Dir: t.TempDir()},
		"bad scheme":   {Mirror: "ftp://example.invalid/pub", Dir: t.TempDir(), Keyring: f.keyring},
		"remote file":  {Mirror: "file://host/pub", Dir: t.TempDir(), Keyring: f.keyring},
		"zero version": {Mirror: f.mirror, Dir: t.TempDir(), Keyring: f.keyring},
	} {
		v := v71
		if name == "zero version" {
			v = kernel.Version{}
		}
		if _, err := Fetch(context.Background(), o, v); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestPhaseString(t *testing.T) {
	for p, want := range map[Phase]string{PhaseWait: "wait", PhaseDownload: "download", PhaseExtract: "extract", 9: "Phase(9)"} {
		if p.String() != want {
			t.Errorf("%d: %q, want %q", int(p), p, want)
		}
	}
}
