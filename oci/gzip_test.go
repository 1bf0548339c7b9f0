package oci

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os/exec"
	"runtime"
	"testing"
	"time"

	"github.com/klauspost/compress/flate"

	"github.com/lkbuild/lkbuild/internal/testenv"
)

// textLike returns n bytes of words from a small vocabulary, which
// compresses like source code.
func textLike(n int, seed uint64) []byte {
	words := []string{"static ", "int ", "struct ", "return ", "if (", ") {\n", "}\n", "void ", "kernel_", "module_", "0x", "->", ";\n", "\t"}
	r := rand.New(rand.NewPCG(seed, 1))
	var b bytes.Buffer
	for b.Len() < n {
		b.WriteString(words[r.IntN(len(words))])
	}
	return b.Bytes()[:n]
}

func randomBytes(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 2))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// chunked compresses in with workers compressors, writing it step bytes at
// a time.
func chunked(t testing.TB, in []byte, workers, step int) []byte {
	t.Helper()
	var out bytes.Buffer
	z, err := newChunkedGzip(&out, DefaultGzipLevel, workers)
	if err != nil {
		t.Fatal(err)
	}
	for p := in; len(p) > 0; {
		k := min(step, len(p))
		if n, err := z.Write(p[:k]); err != nil || n != k {
			t.Fatalf("Write: %d, %v", n, err)
		}
		p = p[k:]
	}
	if err := z.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// TestChunkedGzipSameBytesAnyWorkers: the stream is one gzip member that
// the standard library's decoder reads back, and its bytes do not depend
// on how many compressors made it or how the input was split into writes.
func TestChunkedGzipSameBytesAnyWorkers(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
	}{
		{"empty", nil},
		{"one byte", []byte{'x'}},
		{"one window", textLike(gzipWindow, 1)},
		{"chunk less one", textLike(gzipChunk-1, 2)},
		{"one chunk", textLike(gzipChunk, 3)},
		{"chunk and one", textLike(gzipChunk+1, 4)},
		{"text, several chunks", textLike(3*gzipChunk+12345, 5)},
		{"random, several chunks", randomBytes(2*gzipChunk+777, 6)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := chunked(t, tt.in, 1, 1<<20)
			for _, c := range []struct{ workers, step int }{{2, 7777}, {5, 1 << 16}, {8, 1 << 16}, {8, 3}} {
				if c.step == 3 && len(tt.in) > gzipChunk+1 {
					continue // byte-sized writes of megabytes prove nothing more
				}
				if got := chunked(t, tt.in, c.workers, c.step); !bytes.Equal(got, want) {
					t.Fatalf("%d workers, %d-byte writes: %d bytes differ from 1 worker's %d", c.workers, c.step, len(got), len(want))
				}
			}
			zr, err := gzip.NewReader(bytes.NewReader(want))
			if err != nil {
				t.Fatal(err)
			}
			zr.Multistream(false)
			got, err := io.ReadAll(zr)
			if err != nil {
				t.Fatalf("standard library decoder: %v", err)
			}
			if !bytes.Equal(got, tt.in) {
				t.Fatalf("decompressed %d bytes, want the %d written", len(got), len(tt.in))
			}
			if err := zr.Reset(bytes.NewReader(nil)); err != io.EOF {
				// Reset reads the next member's header: there must be none.
				t.Fatalf("after the first member: %v, want io.EOF", err)
			}
		})
	}
}

// TestChunkedGzipSystemGzip: GNU gzip, another decoder, accepts the
// stream and gives the input back.
func TestChunkedGzipSystemGzip(t *testing.T) {
	gz := testenv.LookPath(t, "gzip", "gzip")
	in := append(textLike(2*gzipChunk+99, 7), randomBytes(gzipChunk/2, 8)...)
	cmd := exec.Command(gz, "-dc")
	cmd.Stdin = bytes.NewReader(chunked(t, in, 2, 1<<16))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("gzip -dc: %v: %s", err, stderr.Bytes())
	}
	if !bytes.Equal(out, in) {
		t.Fatalf("gzip -dc gave %d bytes, want the %d written", len(out), len(in))
	}
}

// TestChunkedGzipDictionary: each chunk is primed with exactly the 32 KiB
// before it, so a second chunk that repeats the first one's tail costs a
// few bytes. Without the dictionary, or with any other 32 KiB of the
// random first chunk, it would cost its 32 KiB again. (The copy is one
// byte short of the window: klauspost matches up to 32,767 bytes back.)
func TestChunkedGzipDictionary(t *testing.T) {
	first := randomBytes(gzipChunk, 9)
	one := chunked(t, first, 1, gzipChunk)
	in := append(bytes.Clone(first), first[len(first)-gzipWindow+1:]...)
	out := chunked(t, in, 2, 1<<16)
	if limit := len(one) + 1<<10; len(out) > limit {
		t.Fatalf("%d compressed bytes for a random chunk and a copy of its last %d bytes, want at most %d (the chunk alone: %d)", len(out), gzipWindow-1, limit, len(one))
	}
}

// failingWriter fails once it has taken n bytes.
type failingWriter struct{ n int }

var errDiskFull = errors.New("disk full")

func (w *failingWriter) Write(p []byte) (int, error) {
	if len(p) > w.n {
		k := w.n
		w.n = 0
		return k, errDiskFull
	}
	w.n -= len(p)
	return len(p), nil
}

// settled waits for the goroutine count to come back to n.
func settled(t *testing.T, n int) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); runtime.NumGoroutine() > n; {
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines, want %d: the compressors did not stop", runtime.NumGoroutine(), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestChunkedGzipFailures: a failing destination is reported by Write or
// Close, and a stream stopped early (Close after a failure, or abort)
// leaves no goroutine behind.
func TestChunkedGzipFailures(t *testing.T) {
	in := randomBytes(4*gzipChunk, 10)
	total := len(chunked(t, in, 1, len(in)))
	tests := []struct {
		name    string
		limit   func(total int) int // bytes the destination takes before failing errDiskFull, of total
		abortAt int                 // abort after writing this much (0: write all, Close)
	}{
		{"header fails", func(int) int { return 0 }, 0},
		{"body fails", func(int) int { return gzipChunk }, 0},
		{"trailer fails", func(total int) int { return total - 4 }, 0},
		{"aborted midway", func(total int) int { return total }, 2*gzipChunk + 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base := runtime.NumGoroutine()
			w := &failingWriter{n: tt.limit(total)}
			z, err := newChunkedGzip(w, DefaultGzipLevel, 3)
			if err != nil {
				if errors.Is(err, errDiskFull) && tt.abortAt == 0 {
					return
				}
				t.Fatal(err)
			}
			if tt.abortAt > 0 {
				if _, err := z.Write(in[:tt.abortAt]); err != nil {
					t.Fatal(err)
				}
				z.abort()
				z.abort() // twice is harmless
				settled(t, base)
				if _, err := z.Write([]byte("x")); err == nil {
					t.Fatal("Write after abort succeeded")
				}
				return
			}
			var werr error
			for p := in; len(p) > 0 && werr == nil; p = p[min(len(p), 1<<16):] {
				_, werr = z.Write(p[:min(len(p), 1<<16)])
			}
			cerr := z.Close()
			z.abort()
			settled(t, base)
			if err := errors.Join(werr, cerr); !errors.Is(err, errDiskFull) {
				t.Fatalf("write %v, close %v: want %v", werr, cerr, errDiskFull)
			}
		})
	}
}

// TestWriteLayerFailingWrite: a tar writer that fails after several
// chunks gets its error back, and WriteLayer leaves neither a blob nor a
// compressor behind.
func TestWriteLayerFailingWrite(t *testing.T) {
	store, err := OpenStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	base := runtime.NumGoroutine()
	errTar := errors.New("tar went wrong")
	_, err = store.WriteLayer(func(w io.Writer) error {
		if _, err := w.Write(randomBytes(3*gzipChunk+99, 13)); err != nil {
			return err
		}
		return errTar
	})
	if !errors.Is(err, errTar) {
		t.Fatalf("WriteLayer: %v, want %v", err, errTar)
	}
	settled(t, base)
	assertNoTempFiles(t, store)
}

func TestChunkedGzipLevels(t *testing.T) {
	for _, tt := range []struct {
		level int
		ok    bool
	}{{-3, false}, {flate.HuffmanOnly, true}, {0, true}, {9, true}, {10, false}, {42, false}} {
		z, err := newChunkedGzip(io.Discard, tt.level, 1)
		if (err == nil) != tt.ok {
			t.Errorf("level %d: error %v, want ok %v", tt.level, err, tt.ok)
		}
		if err == nil {
			if err := z.Close(); err != nil {
				t.Errorf("level %d: %v", tt.level, err)
			}
		}
	}
}

// TestChunkedGzipMisuse: the stream refuses use after Close or abort.
func TestChunkedGzipMisuse(t *testing.T) {
	for _, tt := range []struct {
		name string
		end  func(z *chunkedGzip) error
	}{
		{"closed", (*chunkedGzip).Close},
		{"aborted", func(z *chunkedGzip) error { z.abort(); return nil }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			z, err := newChunkedGzip(io.Discard, DefaultGzipLevel, 2)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := z.Write([]byte("data")); err != nil {
				t.Fatal(err)
			}
			if err := tt.end(z); err != nil {
				t.Fatal(err)
			}
			if _, err := z.Write([]byte("more")); err == nil {
				t.Error("Write succeeded after the end")
			}
			if err := z.Close(); err == nil {
				t.Error("Close succeeded after the end")
			}
			z.abort() // harmless
		})
	}
}

func BenchmarkChunkedGzip(b *testing.B) {
	in := append(textLike(8*gzipChunk, 11), randomBytes(8*gzipChunk, 12)...)
	for _, workers := range []int{1, runtime.GOMAXPROCS(0)} {
		b.Run(fmt.Sprint(workers, " workers"), func(b *testing.B) {
			b.SetBytes(int64(len(in)))
			for b.Loop() {
				chunked(b, in, workers, len(in))
			}
		})
	}
}
