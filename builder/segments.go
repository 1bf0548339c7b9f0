package builder

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash/fnv"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"

	"github.com/lkbuild/lkbuild/kernel"
)

// The source archive is a sequence of xz streams, one per segment of
// whole tar entries, each compressed on its own by the builder's xz (xz
// reads concatenated streams as one file). A segment ends before an entry
// whose name hashes to a boundary once the segment holds segmentMin bytes,
// or before any entry once it holds segmentMax. So the boundaries depend
// on names and on the bytes since the last boundary only: a patch changes
// the segments that hold what it changed (and at most the next one or
// two), and every other segment has the bytes it had in the last build,
// whose xz output the segment cache keeps. An incremental build then
// compresses a few megabytes instead of the whole tree.
const (
	segmentMin   = 4 << 20
	segmentMax   = 16 << 20
	segmentEvery = 32 // one name in this many is a boundary
)

// segmenter is the io.Writer of the tar and its oci.TarOptions.BeforeEntry:
// it cuts segments and hands them to xz, at most jobs at a time, writing
// the results to out in order.
type segmenter struct {
	out   io.Writer
	xz    []string
	cache string // holds <sha256 of the segment>.xz; "" for none
	cur   *bytes.Buffer
	sem   chan struct{}
	queue []*segment
	err   error
	// hits and made count the segments taken from the cache and
	// compressed.
	hits, made int
}

type segment struct {
	done chan struct{}
	data []byte
	hit  bool
	err  error
}

func newSegmenter(out io.Writer, xz []string, cache string, jobs int) *segmenter {
	return &segmenter{out: out, xz: xz, cache: cache, cur: newSegmentBuffer(), sem: make(chan struct{}, max(jobs, 1))}
}

func (s *segmenter) Write(p []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	return s.cur.Write(p)
}

// newSegmentBuffer holds a segment of a typical size without growing.
func newSegmentBuffer() *bytes.Buffer {
	return bytes.NewBuffer(make([]byte, 0, segmentMin+segmentMin/2))
}

// beforeEntry cuts the segment before name when the rule says so.
func (s *segmenter) beforeEntry(name string) error {
	n := s.cur.Len()
	if n >= segmentMax || (n >= segmentMin && boundary(name)) {
		s.cut()
	}
	return s.err
}

// boundary reports whether a segment may end before the entry name.
func boundary(name string) bool {
	h := fnv.New64a()
	io.WriteString(h, name)
	return h.Sum64()%segmentEvery == 0
}

// cut starts compressing the current segment and writes out those done.
func (s *segmenter) cut() {
	if s.cur.Len() == 0 {
		return
	}
	seg := &segment{done: make(chan struct{})}
	// The bytes go to the compressor as they are, and the next segment
	// gets a new buffer: no copy, and no buffer that doubled past a large
	// file and stays that big.
	data := s.cur.Bytes()
	s.cur = newSegmentBuffer()
	s.queue = append(s.queue, seg)
	s.sem <- struct{}{}
	go func() {
		defer func() { <-s.sem; close(seg.done) }()
		seg.data, seg.hit, seg.err = s.compress(data)
	}()
	// Keep memory bounded: wait for the oldest while more are queued
	// than run at once.
	for len(s.queue) > 0 {
		if len(s.queue) <= cap(s.sem)+1 {
			select {
			case <-s.queue[0].done:
			default:
				return
			}
		}
		s.writeHead()
	}
}

// writeHead waits for the oldest segment and writes it out.
func (s *segmenter) writeHead() {
	head := s.queue[0]
	<-head.done
	s.queue[0] = nil
	s.queue = s.queue[1:]
	if s.err == nil {
		s.err = head.err
	}
	if s.err == nil {
		_, s.err = s.out.Write(head.data)
	}
	if head.hit {
		s.hits++
	} else {
		s.made++
	}
	head.data = nil
}

// Close compresses what is left and writes everything out.
func (s *segmenter) Close() error {
	s.cut()
	for len(s.queue) > 0 {
		s.writeHead()
	}
	return s.err
}

// compress gives the xz stream of data: from the cache, or made by the xz
// command and then kept there.
func (s *segmenter) compress(data []byte) ([]byte, bool, error) {
	sum := sha256.Sum256(data)
	name := filepath.Join(s.cache, hex.EncodeToString(sum[:])+".xz")
	if s.cache != "" {
		if b, err := os.ReadFile(name); err == nil && wholeXZ(b, len(data)) {
			return b, true, nil
		}
	}
	cmd := exec.Command(s.xz[0], s.xz[1:]...)
	var out, stderr bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = bytes.NewReader(data), &out, &stderr
	if err := cmd.Run(); err != nil {
		return nil, false, fmt.Errorf("%s: %w: %s", s.xz[0], err, bytes.TrimSpace(stderr.Bytes()))
	}
	if s.cache != "" {
		// Losing this only costs the next build the time.
		tmp := name + ".tmp-" + strconv.Itoa(os.Getpid())
		if os.WriteFile(tmp, out.Bytes(), 0o644) == nil && os.Rename(tmp, name) != nil {
			os.Remove(tmp)
		}
	}
	return out.Bytes(), false, nil
}

// wholeXZ reports whether b is a complete xz file of n decoded bytes. A
// cached segment under its final name was written whole, then renamed;
// this catches one damaged since (its index, sizes and CRCs are checked,
// its compressed data is not).
func wholeXZ(b []byte, n int) bool {
	idx, err := kernel.ReadXZIndex(bytes.NewReader(b), int64(len(b)))
	return err == nil && idx.Size == int64(n)
}
