package kernel

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"

	"github.com/ulikunitz/xz"
	"github.com/ulikunitz/xz/lzma"
)

// DefaultXZMaxBlockSize is the largest block (decoded size) XZReader
// decodes in memory. Debian's and kernel.org's multi-block tarballs use
// 24 MiB blocks (xz -T's default: three times the 8 MiB dictionary).
const DefaultXZMaxBlockSize = 64 << 20

// XZReaderConfig configures NewXZReader. The zero value is the default.
type XZReaderConfig struct {
	// Workers is how many blocks are decoded at once. The default (0) is
	// runtime.GOMAXPROCS(0), the usable CPUs. With 1, or for a file of one
	// block, the file is decoded as one stream by github.com/ulikunitz/xz.
	Workers int
	// MaxBlockSize is the largest decoded block size decoded in parallel;
	// a file with a larger block is decoded as one stream. The default (0)
	// is DefaultXZMaxBlockSize.
	MaxBlockSize int64
}

// XZReader decodes an xz file from an io.ReaderAt into the ordered stream
// of its decoded bytes. When the file has several blocks (xz -T writes
// them, and Debian's kernel tarball has 62), independent by the format's
// definition, Workers goroutines decode blocks ahead of the reader, each
// with its own LZMA2 decoder, and verify each block's sizes and integrity
// check (CRC32, CRC64 or SHA-256). Otherwise it decodes sequentially with
// github.com/ulikunitz/xz, which checks the same.
//
// Memory is bounded: at most Workers+1 decoded blocks exist at once (one
// being read, the others decoding or decoded), and each worker holds one
// LZMA2 dictionary (the smaller of the block and the file's dictionary
// size) and a 64 KiB input buffer. For Debian's tarball on 2 CPUs that is
// 3 x 24 MiB + 2 x 8 MiB, under 90 MiB; the peak RSS of a process that
// decodes it, garbage included, is about 210 MB.
//
// Read errors wrap ErrXZTruncated or ErrXZCorrupt when the file is bad;
// data before the bad block is returned first. Close must be called; a
// Read after (or during) Close fails.
type XZReader struct {
	idx *XZIndex

	seq io.Reader // sequential decoding; nil in parallel mode

	// Parallel mode.
	order chan *xzJob   // jobs in block order, closed after the last
	free  chan []byte   // buffers to reuse (nil: not yet allocated)
	stop  chan struct{} // closed by Close
	wg    sync.WaitGroup
	cur   *xzJob
	rest  []byte // unread part of cur's data

	err error
}

// xzJob is one block to decode into buf; the worker sends the result to
// done.
type xzJob struct {
	block XZBlock
	buf   []byte
	done  chan error
}

// NewXZReader reads the index of the xz file r (size bytes) and starts
// decoding. An error in the index (wrapping ErrXZTruncated or
// ErrXZCorrupt) is returned at once, before any data.
func NewXZReader(r io.ReaderAt, size int64, cfg XZReaderConfig) (*XZReader, error) {
	if cfg.Workers < 0 || cfg.MaxBlockSize < 0 {
		return nil, errors.New("xz reader: negative Workers or MaxBlockSize")
	}
	if cfg.Workers == 0 {
		cfg.Workers = runtime.GOMAXPROCS(0)
	}
	if cfg.MaxBlockSize == 0 {
		cfg.MaxBlockSize = DefaultXZMaxBlockSize
	}
	idx, err := ReadXZIndex(r, size)
	if err != nil {
		return nil, err
	}
	x := &XZReader{idx: idx}
	if cfg.Workers == 1 || len(idx.Blocks) < 2 || idx.MaxBlockSize > cfg.MaxBlockSize {
		zr, err := xz.NewReader(bufio.NewReaderSize(io.NewSectionReader(r, 0, size), 1<<20))
		if err != nil {
			return nil, xzSequentialError(err)
		}
		x.seq = zr
		return x, nil
	}
	window := cfg.Workers + 1
	x.order = make(chan *xzJob, window)
	x.free = make(chan []byte, window)
	x.stop = make(chan struct{})
	for range window {
		x.free <- nil
	}
	work := make(chan *xzJob)
	x.wg.Add(1 + cfg.Workers)
	go x.dispatch(work)
	for range cfg.Workers {
		go func() {
			defer x.wg.Done()
			for j := range work {
				j.done <- decodeXZBlock(r, j.block, j.buf, x.stop)
			}
		}()
	}
	return x, nil
}

// dispatch hands the blocks, in order, to the reader (order) and to the
// workers (work), as buffers become free.
func (x *XZReader) dispatch(work chan<- *xzJob) {
	defer x.wg.Done()
	defer close(work)
	defer close(x.order)
	for _, b := range x.idx.Blocks {
		var buf []byte
		select {
		case buf = <-x.free:
		case <-x.stop:
			return
		}
		if buf == nil {
			buf = make([]byte, x.idx.MaxBlockSize)
		}
		j := &xzJob{block: b, buf: buf[:b.UncompressedSize], done: make(chan error, 1)}
		// Never blocks: there are as many buffers as order has room.
		x.order <- j
		select {
		case work <- j:
		case <-x.stop:
			return
		}
	}
}

// Index is the index of the file being decoded.
func (x *XZReader) Index() *XZIndex { return x.idx }

// Parallel reports whether blocks are decoded in parallel.
func (x *XZReader) Parallel() bool { return x.seq == nil }

// Read reads decoded data.
func (x *XZReader) Read(p []byte) (int, error) {
	if x.err != nil {
		return 0, x.err
	}
	if x.seq != nil {
		n, err := x.seq.Read(p)
		if err != nil && !errors.Is(err, io.EOF) {
			err = xzSequentialError(err)
			x.err = err
		}
		return n, err
	}
	if len(p) == 0 {
		return 0, nil
	}
	if x.cur == nil {
		if err := x.next(); err != nil {
			return 0, err
		}
	}
	n := copy(p, x.rest)
	x.consumed(n)
	return n, nil
}

// next waits for the next non-empty block and makes it current.
func (x *XZReader) next() error {
	for {
		var (
			j   *xzJob
			ok  bool
			err error
		)
		// After Close the workers may have dropped their jobs: never wait
		// for one then.
		select {
		case <-x.stop:
			x.err = errXZStopped
			return x.err
		default:
		}
		select {
		case j, ok = <-x.order:
		case <-x.stop:
			continue
		}
		if !ok {
			x.err = io.EOF
			return x.err
		}
		select {
		case err = <-j.done:
		case <-x.stop:
			continue
		}
		if err != nil {
			x.err = fmt.Errorf("block at offset %d: %w", j.block.Offset, err)
			return x.err
		}
		if len(j.buf) > 0 {
			x.cur, x.rest = j, j.buf
			return nil
		}
		x.free <- j.buf
	}
}

// consumed drops n bytes of the current block, and the block when none
// are left.
func (x *XZReader) consumed(n int) {
	x.rest = x.rest[n:]
	if len(x.rest) == 0 {
		x.free <- x.cur.buf
		x.cur = nil
	}
}

// WriteTo writes the decoded data to w, in parallel mode a whole block per
// Write. io.Copy uses it.
func (x *XZReader) WriteTo(w io.Writer) (int64, error) {
	if x.seq != nil {
		return io.Copy(w, struct{ io.Reader }{x})
	}
	var n int64
	for {
		if x.err != nil {
			if errors.Is(x.err, io.EOF) {
				return n, nil
			}
			return n, x.err
		}
		if x.cur == nil {
			if err := x.next(); err != nil {
				continue
			}
		}
		k, err := w.Write(x.rest)
		n += int64(k)
		if err == nil && k < len(x.rest) {
			err = io.ErrShortWrite
		}
		x.consumed(k)
		if err != nil {
			return n, err
		}
	}
}

// Close stops the workers and waits for them. It returns nil.
func (x *XZReader) Close() error {
	if x.seq != nil || x.stop == nil {
		return nil
	}
	select {
	case <-x.stop:
	default:
		close(x.stop)
	}
	x.wg.Wait()
	return nil
}

// errXZStopped ends a block decode, and reads, once the reader is closed.
var errXZStopped = errors.New("xz reader closed")

// xzStopCheck is how much decoded data a worker produces between checks
// for Close.
const xzStopCheck = 1 << 20

// decodeXZBlock decodes block b of the file r into out (its decoded size)
// and verifies it: header CRC, sizes against the index, the end of the
// LZMA2 data exactly at the end of the compressed data, zero padding, and
// the integrity check. It reads the compressed data through a small
// buffer, so a block's size costs no memory beyond out.
func decodeXZBlock(r io.ReaderAt, b XZBlock, out []byte, stop <-chan struct{}) error {
	hdrBuf := make([]byte, min(1024, b.UnpaddedSize))
	if _, err := r.ReadAt(hdrBuf, b.Offset); err != nil {
		return fmt.Errorf("read block header: %w", err)
	}
	hdr, err := parseXZBlockHeader(hdrBuf, b)
	if err != nil {
		if errors.Is(err, errors.ErrUnsupported) {
			return err
		}
		return fmt.Errorf("%w: %w", ErrXZCorrupt, err)
	}
	checkSize := int64(xzCheckSize(b.Check))
	compressed := b.UnpaddedSize - int64(hdr.size) - checkSize
	src := bufio.NewReaderSize(io.NewSectionReader(r, b.Offset+int64(hdr.size), compressed), 64<<10)
	dict := min(hdr.dictCap, max(b.UncompressedSize, lzma.MinDictCap))
	lr, err := lzma.Reader2Config{DictCap: int(dict)}.NewReader2(src)
	if err != nil {
		return fmt.Errorf("%w: LZMA2: %w", ErrXZCorrupt, err)
	}
	for off := 0; off < len(out); off += xzStopCheck {
		select {
		case <-stop:
			return errXZStopped
		default:
		}
		if _, err := io.ReadFull(lr, out[off:min(off+xzStopCheck, len(out))]); err != nil {
			return fmt.Errorf("%w: LZMA2 data: %w", ErrXZCorrupt, err)
		}
	}
	var one [1]byte
	if n, err := lr.Read(one[:]); n != 0 || !errors.Is(err, io.EOF) || !lr.EOS() {
		return fmt.Errorf("%w: LZMA2 data does not end after %d bytes, as the index says", ErrXZCorrupt, len(out))
	}
	if _, err := src.ReadByte(); !errors.Is(err, io.EOF) {
		return fmt.Errorf("%w: LZMA2 data ends before the block's compressed size", ErrXZCorrupt)
	}
	tail := make([]byte, (compressed+3)&^3-compressed+checkSize)
	if _, err := r.ReadAt(tail, b.Offset+int64(hdr.size)+compressed); err != nil {
		return fmt.Errorf("read block check: %w", err)
	}
	pad := len(tail) - int(checkSize)
	if !allZero(tail[:pad]) {
		return fmt.Errorf("%w: block padding is not zero", ErrXZCorrupt)
	}
	if got := xzCheckSum(b.Check, out); !bytes.Equal(got, tail[pad:]) {
		return fmt.Errorf("%w: %s mismatch: the data is damaged", ErrXZCorrupt, xzCheckName(b.Check))
	}
	return nil
}

func allZero(p []byte) bool {
	for _, c := range p {
		if c != 0 {
			return false
		}
	}
	return true
}

func xzCheckName(check byte) string {
	switch check {
	case XZCheckCRC32:
		return "CRC32"
	case XZCheckCRC64:
		return "CRC64"
	case XZCheckSHA256:
		return "SHA-256"
	}
	return "check"
}

// xzSequentialError classifies an error of github.com/ulikunitz/xz.
func xzSequentialError(err error) error {
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: %w", ErrXZTruncated, err)
	}
	return fmt.Errorf("%w: %w", ErrXZCorrupt, err)
}
