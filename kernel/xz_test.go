package kernel

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/lkbuild/lkbuild/internal/testenv"
	"github.com/ulikunitz/xz"
	"github.com/ulikunitz/xz/lzma"
)

// xzTestData is n bytes of text that compresses like source code does:
// words from a small vocabulary with numbers, so LZMA2 finds matches but
// every block is different.
func xzTestData(n int, seed uint64) []byte {
	words := strings.Fields("static int struct return if else for while unsigned long void const char kernel device driver lock unlock mutex spin irq page")
	rng := rand.New(rand.NewPCG(seed, 1))
	var b bytes.Buffer
	for b.Len() < n {
		fmt.Fprintf(&b, "%s %s_%d(%d);\n", words[rng.IntN(len(words))], words[rng.IntN(len(words))], rng.IntN(1000), rng.IntN(1<<20))
	}
	return b.Bytes()[:n]
}

// xzCompress runs the xz program on data with args.
func xzCompress(t testing.TB, data []byte, args ...string) []byte {
	t.Helper()
	bin := testenv.LookPath(t, "xz", "xz-utils")
	cmd := exec.Command(bin, append([]string{"-c", "-q"}, args...)...)
	cmd.Stdin = bytes.NewReader(data)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("xz %s: %v", strings.Join(args, " "), err)
	}
	return out
}

// xzDecompress runs xz -d, the reference decoder.
func xzDecompress(t testing.TB, data []byte) []byte {
	t.Helper()
	bin := testenv.LookPath(t, "xz", "xz-utils")
	cmd := exec.Command(bin, "-d", "-c", "-q")
	cmd.Stdin = bytes.NewReader(data)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("xz -d: %v", err)
	}
	return out
}

// decodeAll decodes file with cfg and returns the data and the first
// error other than EOF.
func decodeAll(t testing.TB, file []byte, cfg XZReaderConfig) ([]byte, *XZReader, error) {
	t.Helper()
	x, err := NewXZReader(bytes.NewReader(file), int64(len(file)), cfg)
	if err != nil {
		return nil, nil, err
	}
	defer x.Close()
	var out bytes.Buffer
	// Odd-sized reads exercise block boundaries inside one Read.
	buf := make([]byte, 7777)
	for {
		n, err := x.Read(buf)
		out.Write(buf[:n])
		if errors.Is(err, io.EOF) {
			return out.Bytes(), x, nil
		}
		if err != nil {
			return out.Bytes(), x, err
		}
	}
}

func TestXZReaderMatchesXZ(t *testing.T) {
	data := xzTestData(1<<20+12345, 1)
	for _, check := range []string{"none", "crc32", "crc64", "sha256"} {
		file := xzCompress(t, data, "-6", "-T2", "--block-size=64KiB", "--check="+check)
		want := xzDecompress(t, file)
		if !bytes.Equal(want, data) {
			t.Fatal("xz -d does not give back the input")
		}
		for _, workers := range []int{2, 3, 8} {
			t.Run(fmt.Sprintf("%s/workers=%d", check, workers), func(t *testing.T) {
				got, x, err := decodeAll(t, file, XZReaderConfig{Workers: workers})
				if err != nil {
					t.Fatal(err)
				}
				if !x.Parallel() {
					t.Error("a multi-block file was not decoded in parallel")
				}
				idx := x.Index()
				if wantBlocks := (len(data) + 64<<10 - 1) / (64 << 10); len(idx.Blocks) != wantBlocks {
					t.Errorf("index has %d blocks, want %d", len(idx.Blocks), wantBlocks)
				}
				if idx.Size != int64(len(data)) || idx.MaxBlockSize != 64<<10 {
					t.Errorf("index size %d, max block %d; want %d, %d", idx.Size, idx.MaxBlockSize, len(data), 64<<10)
				}
				if !bytes.Equal(got, want) {
					t.Errorf("decoded %d bytes differ from xz -d's %d", len(got), len(want))
				}
			})
		}
	}
}

func TestXZReaderWriteTo(t *testing.T) {
	data := xzTestData(600<<10, 2)
	file := xzCompress(t, data, "-T2", "--block-size=100KiB")
	x, err := NewXZReader(bytes.NewReader(file), int64(len(file)), XZReaderConfig{Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	var out bytes.Buffer
	// Read a little first so that WriteTo starts inside a block.
	head := make([]byte, 1000)
	if _, err := io.ReadFull(x, head); err != nil {
		t.Fatal(err)
	}
	out.Write(head)
	if _, err := io.Copy(&out, x); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out.Bytes(), data) {
		t.Error("WriteTo gave different data")
	}
}

// TestXZReaderSequential covers the files and settings that are decoded as
// one stream: one block, blocks above MaxBlockSize, one worker.
func TestXZReaderSequential(t *testing.T) {
	data := xzTestData(300<<10, 3)
	single := xzCompress(t, data, "-T1")
	multi := xzCompress(t, data, "-T2", "--block-size=64KiB")
	for _, tc := range []struct {
		name string
		file []byte
		cfg  XZReaderConfig
	}{
		{"single block", single, XZReaderConfig{Workers: 4}},
		{"blocks too large", multi, XZReaderConfig{Workers: 4, MaxBlockSize: 32 << 10}},
		{"one worker", multi, XZReaderConfig{Workers: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, x, err := decodeAll(t, tc.file, tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			if x.Parallel() {
				t.Error("decoded in parallel")
			}
			if !bytes.Equal(got, data) {
				t.Error("decoded data differs")
			}
		})
	}
}

// TestXZReaderStreams decodes concatenated streams with stream padding
// between and after them, and an empty stream.
func TestXZReaderStreams(t *testing.T) {
	a, b := xzTestData(200<<10, 4), xzTestData(150<<10, 5)
	empty := xzCompress(t, nil)
	var file []byte
	file = append(file, xzCompress(t, a, "-T2", "--block-size=50KiB", "--check=crc32")...)
	file = append(file, make([]byte, 8)...)
	file = append(file, empty...)
	file = append(file, xzCompress(t, b, "-T2", "--block-size=64KiB", "--check=sha256")...)
	file = append(file, make([]byte, 4)...)
	got, x, err := decodeAll(t, file, XZReaderConfig{Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, append(append([]byte{}, a...), b...)) {
		t.Error("decoded data differs")
	}
	if idx := x.Index(); idx.Streams != 3 || len(idx.Blocks) != 4+3 {
		t.Errorf("index: %d streams, %d blocks; want 3, 7", idx.Streams, len(idx.Blocks))
	}
	if got, _, err := decodeAll(t, empty, XZReaderConfig{}); err != nil || len(got) != 0 {
		t.Errorf("empty file: %d bytes, %v", len(got), err)
	}
}

// TestXZReaderCorruptBlock damages one block of a multi-block file: the
// blocks before it must come out intact, then an error wrapping
// ErrXZCorrupt, in parallel and sequential mode alike.
func TestXZReaderCorruptBlock(t *testing.T) {
	data := xzTestData(512<<10, 6)
	file := xzCompress(t, data, "-T2", "--block-size=64KiB", "--check=crc64")
	idx, err := ReadXZIndex(bytes.NewReader(file), int64(len(file)))
	if err != nil {
		t.Fatal(err)
	}
	const bad = 3
	blk := idx.Blocks[bad]
	checkAt := blk.Offset + (blk.UnpaddedSize-8+3)&^3
	for _, tc := range []struct {
		name string
		at   int64
	}{
		{"check", checkAt},
		{"compressed data", blk.Offset + blk.UnpaddedSize/2},
		{"block header", blk.Offset + 1},
	} {
		damaged := bytes.Clone(file)
		damaged[tc.at] ^= 0x55
		for _, workers := range []int{1, 2} {
			t.Run(fmt.Sprintf("%s/workers=%d", tc.name, workers), func(t *testing.T) {
				got, _, err := decodeAll(t, damaged, XZReaderConfig{Workers: workers})
				if !errors.Is(err, ErrXZCorrupt) {
					t.Fatalf("got %v, want ErrXZCorrupt", err)
				}
				if workers > 1 {
					if !bytes.Equal(got, data[:blk.UncompressedOffset]) {
						t.Errorf("got %d good bytes before the error, want %d", len(got), blk.UncompressedOffset)
					}
					if tc.name == "check" && !strings.Contains(err.Error(), "CRC64 mismatch") {
						t.Errorf("error %q does not name the CRC64", err)
					}
				}
			})
		}
	}
}

func TestXZIndexErrors(t *testing.T) {
	data := xzTestData(256<<10, 7)
	file := xzCompress(t, data, "-T2", "--block-size=64KiB")
	flip := func(at int) []byte {
		b := bytes.Clone(file)
		b[at] ^= 1
		return b
	}
	for _, tc := range []struct {
		name string
		file []byte
		want error
	}{
		{"truncated by one byte", file[:len(file)-1], ErrXZTruncated},
		{"truncated by half", file[:len(file)/2], ErrXZTruncated},
		{"truncated to four bytes short", file[:len(file)-4], ErrXZTruncated},
		{"not xz", []byte("this is not an xz file at all."), ErrXZCorrupt},
		{"empty", nil, ErrXZCorrupt},
		{"footer CRC", flip(len(file) - 11), ErrXZCorrupt},
		{"backward size", flip(len(file) - 8), ErrXZCorrupt},
		{"index CRC", flip(len(file) - 13), ErrXZCorrupt},
		{"stream header flags", flip(7), ErrXZCorrupt},
		{"only zeros", make([]byte, 64), ErrXZCorrupt},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewXZReader(bytes.NewReader(tc.file), int64(len(tc.file)), XZReaderConfig{Workers: 2})
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
}

// TestXZReaderClose stops a reader in the middle: Close must return soon,
// with every worker gone.
func TestXZReaderClose(t *testing.T) {
	data := xzTestData(2<<20, 8)
	file := xzCompress(t, data, "-T2", "--block-size=64KiB")
	before := runtime.NumGoroutine()
	x, err := NewXZReader(bytes.NewReader(file), int64(len(file)), XZReaderConfig{Workers: 4})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(x, make([]byte, 100<<10)); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { x.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not return")
	}
	// A read after Close fails (the block it needs may never come).
	if n, err := io.ReadFull(x, make([]byte, 1<<20)); err == nil {
		t.Errorf("read %d bytes after Close without an error", n)
	}
	for i := 0; runtime.NumGoroutine() > before && i < 100; i++ {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		t.Errorf("%d goroutines after Close, %d before", n, before)
	}
}

// ulikunitzXZ compresses with github.com/ulikunitz/xz's writer, which
// starts a new block every blockSize bytes: multi-block input without the
// xz program, for fuzz seeds.
func ulikunitzXZ(t testing.TB, data []byte, blockSize int64, check byte) []byte {
	t.Helper()
	var b bytes.Buffer
	w, err := xz.WriterConfig{BlockSize: blockSize, CheckSum: check, DictCap: 64 << 10}.NewWriter(&b)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestXZReaderUlikunitzBlocks(t *testing.T) {
	data := xzTestData(100<<10, 9)
	for _, check := range []byte{xz.CRC32, xz.CRC64, xz.SHA256} {
		file := ulikunitzXZ(t, data, 16<<10, check)
		got, x, err := decodeAll(t, file, XZReaderConfig{Workers: 3})
		if err != nil {
			t.Fatalf("check %d: %v", check, err)
		}
		if !x.Parallel() || !bytes.Equal(got, data) {
			t.Errorf("check %d: parallel %v, data equal %v", check, x.Parallel(), bytes.Equal(got, data))
		}
	}
}

// FuzzXZ feeds damaged xz files to the index parser and the parallel
// decoder. Neither may panic or hang, and a file the parallel decoder
// accepts, github.com/ulikunitz/xz must accept with the same data: the
// parallel decoder is never the more lenient one.
func FuzzXZ(f *testing.F) {
	// Small seeds: the fuzzer minimizes every new input it finds
	// interesting, decoding it each time.
	data := xzTestData(3<<10, 10)
	for _, check := range []byte{xz.CRC32, xz.CRC64, xz.SHA256} {
		f.Add(ulikunitzXZ(f, data, 1<<10, check))
	}
	f.Add(ulikunitzXZ(f, data[:100], 1<<20, xz.CRC64))
	f.Fuzz(runFuzzBody)
}

func runFuzzBody(t *testing.T, file []byte) {
	idx, err := ReadXZIndex(bytes.NewReader(file), int64(len(file)))
	if err != nil {
		if !errors.Is(err, ErrXZCorrupt) && !errors.Is(err, ErrXZTruncated) {
			t.Fatalf("index error %v wraps neither ErrXZCorrupt nor ErrXZTruncated", err)
		}
		return
	}
	var sum int64
	for i, b := range idx.Blocks {
		if b.UncompressedOffset != sum || b.Offset < 12 || b.Offset+b.UnpaddedSize > int64(len(file)) {
			t.Fatalf("block %d out of place: %+v", i, b)
		}
		sum += b.UncompressedSize
	}
	if sum != idx.Size {
		t.Fatalf("blocks add up to %d, index says %d", sum, idx.Size)
	}
	// Only the parallel path is ours to fuzz: the sequential one is
	// github.com/ulikunitz/xz, which allocates whatever dictionary a
	// header asks for (up to 4 GiB). Bound what a hostile index makes
	// us allocate.
	const maxBlock = 256 << 10
	if len(idx.Blocks) < 2 || idx.MaxBlockSize > maxBlock {
		return
	}
	got, x, err := decodeAll(t, file, XZReaderConfig{Workers: 2, MaxBlockSize: maxBlock})
	if err != nil {
		return
	}
	if !x.Parallel() {
		t.Fatal("not decoded in parallel")
	}
	for _, b := range idx.Blocks {
		hdr, err := parseXZBlockHeader(file[b.Offset:], b)
		if err != nil || hdr.dictCap > 1<<20 {
			return // keep the reference decoder's allocations small too
		}
	}
	// The smallest default dictionary: the reader allocates the larger
	// of this and the header's.
	r, err := xz.ReaderConfig{DictCap: lzma.MinDictCap}.NewReader(bytes.NewReader(file))
	if err != nil {
		t.Fatalf("decoded %d bytes, but github.com/ulikunitz/xz refuses the file: %v", len(got), err)
	}
	want, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("decoded %d bytes, but github.com/ulikunitz/xz fails after %d: %v", len(got), len(want), err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("decoded %d bytes, github.com/ulikunitz/xz %d", len(got), len(want))
	}
}
