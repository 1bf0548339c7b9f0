package imagediff

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"unicode/utf8"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/lkbuild/lkbuild/internal/textdiff"
	"github.com/lkbuild/lkbuild/oci"
)

// source is one side's tar: a layer, or a member of a tar in a layer. It
// is read from the start for every pass.
type source struct {
	label string // "a" or "b", for errors
	open  func() (io.ReadCloser, error)
	// layerErr points to the first error met reading the layer under
	// this tar, which tells a broken layer (an error) from a nested tar
	// that cannot be read (a Note).
	layerErr *error
}

// layerSource returns the source of layer l, read by l.Uncompressed.
func layerSource(label string, l v1.Layer) *source {
	s := &source{label: label, layerErr: new(error)}
	s.open = func() (io.ReadCloser, error) {
		rc, err := l.Uncompressed()
		if err != nil {
			*s.layerErr = err
			return nil, err
		}
		return &layerReader{rc: rc, err: s.layerErr}, nil
	}
	return s
}

// layerReader notes the first error reading a layer.
type layerReader struct {
	rc  io.ReadCloser
	err *error
}

func (r *layerReader) Read(p []byte) (int, error) {
	n, err := r.rc.Read(p)
	if err != nil && err != io.EOF && *r.err == nil {
		*r.err = err
	}
	return n, err
}

func (r *layerReader) Close() error { return r.rc.Close() }

// errMemberGone is returned when a member found by one pass over a tar
// is missing from the next: the layer changed between the two.
var errMemberGone = errors.New("member missing on reading the tar again")

// member returns the source of the tar held by the member whose header
// is the ord'th (from 0) of s, decompressed as its first bytes say.
func (s *source) member(ctx context.Context, ord int) *source {
	return &source{label: s.label, layerErr: s.layerErr, open: func() (io.ReadCloser, error) {
		rc, err := s.open()
		if err != nil {
			return nil, err
		}
		tr := tar.NewReader(bufio.NewReaderSize(rc, 64<<10))
		for i := 0; ; i++ {
			if err := ctx.Err(); err != nil {
				rc.Close()
				return nil, err
			}
			_, err := tr.Next()
			if err == io.EOF {
				err = errMemberGone
			}
			if err != nil {
				rc.Close()
				return nil, err
			}
			if i < ord {
				continue
			}
			r, closeDec, err := oci.Decompress(tr)
			if err != nil {
				rc.Close()
				return nil, err
			}
			return &nestedReader{Reader: r, close: func() error {
				closeDec()
				return rc.Close()
			}}, nil
		}
	}}
}

type nestedReader struct {
	io.Reader
	close func() error
}

func (r *nestedReader) Close() error { return r.close() }

// isTarName reports whether a member is opened as a tar, by its name.
func isTarName(name string) bool {
	for _, s := range []string{".tar", ".tar.gz", ".tgz", ".tar.xz", ".tar.zst"} {
		if strings.HasSuffix(name, s) {
			return true
		}
	}
	return false
}

// memberKey is the name under which a member is matched with the other
// side's: "./usr/" and "usr" name the same file on extraction.
func memberKey(name string) string {
	for strings.HasPrefix(name, "./") {
		name = name[2:]
	}
	name = strings.TrimRight(name, "/")
	if name == "" {
		return "."
	}
	return name
}

// tarEntry is a member as the first pass finds it.
type tarEntry struct {
	Entry
	name string // as in the header
	ord  int    // index of its header in the tar, from 0
}

// tarIndex lists the members of a tar. When a name appears more than
// once, the last entry wins, in the place of the first.
type tarIndex struct {
	keys    []string // memberKey of each member, in tar order
	entries map[string]*tarEntry
}

// index reads the tar of s once, hashing every file. A nil s is an empty
// tar.
func (c *comparer) index(ctx context.Context, s *source) (*tarIndex, error) {
	idx := &tarIndex{entries: map[string]*tarEntry{}}
	if s == nil {
		return idx, nil
	}
	rc, err := s.open()
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", s.label, err)
	}
	defer rc.Close()
	tr := tar.NewReader(bufio.NewReaderSize(rc, 64<<10))
	for ord := 0; ; ord++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			return idx, nil
		}
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", s.label, err)
		}
		if hdr.Typeflag == tar.TypeXGlobalHeader {
			continue
		}
		e := &tarEntry{Entry: entryOf(hdr), name: hdr.Name, ord: ord}
		if e.Type == TypeFile {
			h := sha256.New()
			if _, err := io.CopyBuffer(h, tr, c.buf); err != nil {
				return nil, fmt.Errorf("read %s: %s: %w", s.label, hdr.Name, err)
			}
			e.SHA256 = hex.EncodeToString(h.Sum(nil))
		}
		k := memberKey(hdr.Name)
		if _, seen := idx.entries[k]; !seen {
			idx.keys = append(idx.keys, k)
		}
		idx.entries[k] = e
	}
}

func entryOf(h *tar.Header) Entry {
	e := Entry{
		Type:     typeName(h.Typeflag),
		Mode:     h.Mode & 0o7777,
		UID:      h.Uid,
		GID:      h.Gid,
		ModTime:  h.ModTime.UTC(),
		Size:     h.Size,
		Linkname: h.Linkname,
	}
	if h.Typeflag == tar.TypeChar || h.Typeflag == tar.TypeBlock {
		e.Devmajor, e.Devminor = h.Devmajor, h.Devminor
	}
	return e
}

func typeName(flag byte) string {
	switch flag {
	case tar.TypeReg, tar.TypeCont, tar.TypeGNUSparse:
		return TypeFile
	case tar.TypeDir:
		return TypeDir
	case tar.TypeSymlink:
		return TypeSymlink
	case tar.TypeLink:
		return TypeHardlink
	case tar.TypeChar:
		return TypeChar
	case tar.TypeBlock:
		return TypeBlock
	case tar.TypeFifo:
		return TypeFifo
	}
	return fmt.Sprintf("tar type %q", flag)
}

// textJob is a member whose text diff may be made: its index in the
// member list and its header indexes in the two tars.
type textJob struct {
	i          int
	aOrd, bOrd int
	aSize      int64
}

// nestJob is a member to compare as a tar.
type nestJob struct {
	i, aOrd, bOrd int
}

// Notes for tars that differ with no member that differs.
const (
	noteOrder   = "no member differs, but the members are in a different order"
	noteHeaders = "no member differs in type, mode, owner, modification time, size, content or link target: " +
		"the tar headers differ in fields not compared (names spelt differently, such as ./x for x; " +
		"user or group names; other PAX records), in entries that a later one of the same name replaces, " +
		"or in padding"
	noteHeadersCompressed = noteHeaders + "; or the compression differs"
)

// compareTar compares the tars of a and b (either may be nil: an empty
// tar) and returns their differing members, with prefix before their
// names, each nested tar's differing members after it. When no member
// differs, note says what can make the tars differ instead.
func (c *comparer) compareTar(ctx context.Context, a, b *source, prefix string, depth int) (_ []Member, note string, _ error) {
	ia, err := c.index(ctx, a)
	if err != nil {
		return nil, "", err
	}
	ib, err := c.index(ctx, b)
	if err != nil {
		return nil, "", err
	}
	var (
		members []Member
		texts   []textJob
		nested  []nestJob
	)
	for _, k := range ia.keys {
		ea, eb := ia.entries[k], ib.entries[k]
		if eb != nil && ea.equal(&eb.Entry) {
			continue
		}
		m := Member{Path: prefix + ea.name, A: copyEntry(ea)}
		if eb == nil {
			members = append(members, m)
			continue
		}
		m.B = copyEntry(eb)
		if ea.Type == TypeFile && eb.Type == TypeFile && ea.SHA256 != eb.SHA256 {
			switch {
			case isTarName(ea.name) && depth >= maxDepth:
				m.Note = fmt.Sprintf("a tar nested more than %d deep: not compared inside", maxDepth)
			case isTarName(ea.name):
				nested = append(nested, nestJob{i: len(members), aOrd: ea.ord, bOrd: eb.ord})
			case c.maxText >= 0 && ea.Size <= c.maxText && eb.Size <= c.maxText && c.diffsLeft == 0:
				m.Note = fmt.Sprintf("no text diff: the report holds %d already", maxTextDiffs)
			case c.maxText >= 0 && ea.Size <= c.maxText && eb.Size <= c.maxText:
				c.diffsLeft--
				texts = append(texts, textJob{i: len(members), aOrd: ea.ord, bOrd: eb.ord, aSize: ea.Size})
			}
		}
		members = append(members, m)
	}
	for _, k := range ib.keys {
		if eb := ib.entries[k]; ia.entries[k] == nil {
			members = append(members, Member{Path: prefix + eb.name, B: copyEntry(eb)})
		}
	}
	if len(members) == 0 {
		if !slices.Equal(ia.keys, ib.keys) {
			return nil, noteOrder, nil
		}
		return nil, noteHeaders, nil
	}
	if err := c.textDiffs(ctx, a, b, members, texts); err != nil {
		return nil, "", err
	}
	inner := map[int][]Member{}
	for _, j := range nested {
		m := &members[j.i]
		sub, note, err := c.compareTar(ctx, a.member(ctx, j.aOrd), b.member(ctx, j.bOrd), m.Path+"/", depth+1)
		switch {
		case err != nil && (ctx.Err() != nil || *a.layerErr != nil || *b.layerErr != nil):
			return nil, "", fmt.Errorf("%s: %w", m.Path, err)
		case err != nil:
			m.Note = "cannot be read as a tar, not compared inside: " + err.Error()
		case len(sub) == 0 && note == noteHeaders && !strings.HasSuffix(m.Path, ".tar"):
			m.Note = noteHeadersCompressed
		case len(sub) == 0:
			m.Note = note
		}
		inner[j.i] = sub
	}
	if len(inner) == 0 {
		return members, "", nil
	}
	out := make([]Member, 0, len(members))
	for i, m := range members {
		out = append(out, m)
		out = append(out, inner[i]...)
	}
	return out, "", nil
}

func copyEntry(e *tarEntry) *Entry {
	c := e.Entry
	return &c
}

// textDiffs fills in the Diff of the members jobs name. To keep memory
// bounded it reads image a's members in batches of at most c.textBatch
// bytes, then image b's members of the batch one at a time.
func (c *comparer) textDiffs(ctx context.Context, a, b *source, members []Member, jobs []textJob) error {
	for len(jobs) > 0 {
		n, total := 0, int64(0)
		for n < len(jobs) && (n == 0 || total+jobs[n].aSize <= c.textBatch) {
			total += jobs[n].aSize
			n++
		}
		batch := jobs[:n]
		jobs = jobs[n:]

		texts := map[int][]byte{} // by aOrd
		want := map[int]bool{}
		for _, j := range batch {
			want[j.aOrd] = true
		}
		err := c.readMembers(ctx, a, want, func(ord int, data []byte) {
			if isText(data) {
				texts[ord] = data
			}
		})
		if err != nil {
			return err
		}
		byB := map[int]textJob{}
		want = map[int]bool{}
		for _, j := range batch {
			if texts[j.aOrd] != nil {
				byB[j.bOrd] = j
				want[j.bOrd] = true
			}
		}
		err = c.readMembers(ctx, b, want, func(ord int, data []byte) {
			j := byB[ord]
			if isText(data) {
				p := members[j.i].Path
				members[j.i].Diff = textdiff.Unified("a/"+p, "b/"+p, texts[j.aOrd], data)
			}
			delete(texts, j.aOrd)
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// readMembers reads the tar of s up to the last member whose header index
// is in want, calling fn with the content of each, read up to c.maxText
// bytes.
func (c *comparer) readMembers(ctx context.Context, s *source, want map[int]bool, fn func(ord int, data []byte)) error {
	if len(want) == 0 {
		return nil
	}
	rc, err := s.open()
	if err != nil {
		return fmt.Errorf("open %s: %w", s.label, err)
	}
	defer rc.Close()
	tr := tar.NewReader(bufio.NewReaderSize(rc, 64<<10))
	left := len(want)
	for ord := 0; left > 0; ord++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			err = errMemberGone
		}
		if err != nil {
			return fmt.Errorf("read %s: %w", s.label, err)
		}
		if !want[ord] {
			continue
		}
		data, err := io.ReadAll(io.LimitReader(tr, c.maxText+1))
		if err != nil {
			return fmt.Errorf("read %s: %s: %w", s.label, hdr.Name, err)
		}
		fn(ord, data)
		left--
	}
	return nil
}

// isText reports whether data looks like text: valid UTF-8 without a NUL
// byte.
func isText(data []byte) bool {
	return bytes.IndexByte(data, 0) < 0 && utf8.Valid(data)
}
