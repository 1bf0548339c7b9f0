package oci

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"runtime"
	"sync"

	"github.com/klauspost/compress/flate"
)

// gzipChunk is how much of the uncompressed stream one compressor takes at
// a time. It is a constant, not derived from the CPU count, so a layer's
// bytes are the same on every machine whatever the parallelism.
const gzipChunk = 1 << 20

// gzipWindow is deflate's window: each chunk is compressed with the
// previous chunk's last gzipWindow bytes as its dictionary, so matches may
// reach back across a chunk boundary as in a serial stream.
const gzipWindow = 32 << 10

// maxGzipWorkers bounds the compressors of one stream, and with them its
// memory: up to workers+3 chunks in and as many out, reused.
const maxGzipWorkers = 8

// chunkedGzip writes one gzip member whose deflate stream is made of
// independently compressed chunks, each ended by a sync flush (the last by
// the final block), as pigz does. The chunks are compressed on up to
// workers goroutines and written in order, so the output depends only on
// the input and the level. Close finishes the stream; abort stops it
// after a failure.
type chunkedGzip struct {
	w     io.Writer
	level int

	buf  []byte // the chunk being filled
	dict []byte // the last gzipWindow bytes before buf
	crc  uint32
	size uint32 // ISIZE: the input length modulo 2^32

	jobs  chan *gzipJob // to the compressors
	queue chan *gzipJob // to the writer, in stream order
	free  chan []byte   // input chunk buffers for reuse
	outs  chan []byte   // output buffers for reuse
	wg    sync.WaitGroup
	done  chan struct{} // closed when the writer has stopped

	mu     sync.Mutex
	err    error // the first compression or write error
	closed bool
}

// gzipJob is one chunk: its input, its dictionary and, once ready is
// closed, its compressed form.
type gzipJob struct {
	in, dict []byte
	last     bool
	out      *bytes.Buffer
	err      error
	ready    chan struct{}
}

// gzipHeader is the member header: deflate, no flags, MTIME 0 (RFC 1952:
// no time stamp), no extra flags, OS unknown.
const gzipHeader = "\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"

// errGzipAborted stops the writer of an aborted stream from writing.
var errGzipAborted = errors.New("gzip stream aborted")

// newChunkedGzip starts a stream into w at level on workers compressors
// (1..maxGzipWorkers; 0 means one per CPU).
func newChunkedGzip(w io.Writer, level, workers int) (*chunkedGzip, error) {
	if level < flate.HuffmanOnly || level > flate.BestCompression {
		return nil, fmt.Errorf("gzip level %d: want %d to %d", level, flate.HuffmanOnly, flate.BestCompression)
	}
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	workers = min(workers, maxGzipWorkers)
	if _, err := io.WriteString(w, gzipHeader); err != nil {
		return nil, fmt.Errorf("write gzip header: %w", err)
	}
	z := &chunkedGzip{
		w:     w,
		level: level,
		jobs:  make(chan *gzipJob),
		queue: make(chan *gzipJob, workers+1),
		free:  make(chan []byte, workers+2),
		outs:  make(chan []byte, workers+2),
		done:  make(chan struct{}),
	}
	z.buf = z.chunkBuf()
	for range workers {
		z.wg.Add(1)
		go z.compress()
	}
	go z.write()
	return z, nil
}

// chunkBuf returns an empty input buffer of gzipChunk bytes' room.
func (z *chunkedGzip) chunkBuf() []byte {
	select {
	case b := <-z.free:
		return b[:0]
	default:
		return make([]byte, 0, gzipChunk)
	}
}

// fail records err unless an error is already recorded.
func (z *chunkedGzip) fail(err error) {
	z.mu.Lock()
	defer z.mu.Unlock()
	if z.err == nil {
		z.err = err
	}
}

// failed returns the first error recorded.
func (z *chunkedGzip) failed() error {
	z.mu.Lock()
	defer z.mu.Unlock()
	return z.err
}

// compress is one compressor: it takes chunks until the jobs end.
func (z *chunkedGzip) compress() {
	defer z.wg.Done()
	var fw *flate.Writer
	for j := range z.jobs {
		j.out = bytes.NewBuffer(z.outBuf(len(j.in)))
		if fw == nil {
			fw, j.err = flate.NewWriterDict(j.out, z.level, j.dict)
		} else {
			fw.ResetDict(j.out, j.dict)
		}
		if j.err == nil {
			_, j.err = fw.Write(j.in)
		}
		if j.err == nil {
			if j.last {
				j.err = fw.Close()
			} else {
				j.err = fw.Flush()
			}
		}
		close(j.ready)
	}
}

// write writes the compressed chunks in order; after a failure it only
// drains them.
func (z *chunkedGzip) write() {
	defer close(z.done)
	for j := range z.queue {
		<-j.ready
		if j.err != nil {
			z.fail(fmt.Errorf("compress chunk: %w", j.err))
		} else if z.failed() == nil {
			if _, err := z.w.Write(j.out.Bytes()); err != nil {
				z.fail(fmt.Errorf("write gzip chunk: %w", err))
			}
		}
		select {
		case z.free <- j.in:
		default:
		}
		if j.out != nil {
			select {
			case z.outs <- j.out.Bytes()[:0]:
			default:
			}
		}
	}
}

// outBuf returns an empty buffer with room for the compressed form of n
// bytes even when they do not compress (stored blocks: 5 bytes per 64 KiB).
func (z *chunkedGzip) outBuf(n int) []byte {
	want := n + n>>10 + 1024
	select {
	case b := <-z.outs:
		if cap(b) >= want {
			return b
		}
	default:
	}
	return make([]byte, 0, want)
}

// send hands the filled chunk to the compressors.
func (z *chunkedGzip) send(last bool) {
	j := &gzipJob{in: z.buf, dict: z.dict, last: last, ready: make(chan struct{})}
	z.queue <- j
	z.jobs <- j
	if !last {
		// A full chunk is longer than the window: the next dictionary is
		// its tail alone. (The compressor only reads the chunk, and only
		// this goroutine takes it back from z.free for reuse.)
		z.dict = bytes.Clone(z.buf[len(z.buf)-gzipWindow:])
		z.buf = z.chunkBuf()
	}
}

// Write compresses p.
func (z *chunkedGzip) Write(p []byte) (int, error) {
	if z.closed {
		return 0, errors.New("write to a closed gzip stream")
	}
	if err := z.failed(); err != nil {
		return 0, err
	}
	z.crc = crc32.Update(z.crc, crc32.IEEETable, p)
	z.size += uint32(len(p))
	n := len(p)
	for len(p) > 0 {
		k := copy(z.buf[len(z.buf):gzipChunk], p)
		z.buf, p = z.buf[:len(z.buf)+k], p[k:]
		if len(z.buf) == gzipChunk {
			z.send(false)
		}
	}
	return n, nil
}

// stop ends the compressors and the writer, after a last chunk if last.
func (z *chunkedGzip) stop(last bool) error {
	if z.closed {
		return errors.New("gzip stream already closed")
	}
	z.closed = true
	if last {
		z.send(true)
	}
	close(z.jobs)
	close(z.queue)
	z.wg.Wait()
	<-z.done
	return z.failed()
}

// Close compresses what is left and writes the member's trailer.
func (z *chunkedGzip) Close() error {
	if err := z.stop(true); err != nil {
		return err
	}
	var trailer [8]byte
	binary.LittleEndian.PutUint32(trailer[:4], z.crc)
	binary.LittleEndian.PutUint32(trailer[4:], z.size)
	if _, err := z.w.Write(trailer[:]); err != nil {
		return fmt.Errorf("write gzip trailer: %w", err)
	}
	return nil
}

// abort stops the stream without finishing it: chunks in flight are
// dropped, not written, and the output is incomplete.
func (z *chunkedGzip) abort() {
	if !z.closed {
		z.fail(errGzipAborted)
		_ = z.stop(false)
	}
}
