package imagediff

import (
	"context"
	"fmt"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// DefaultMaxTextDiff is the default of Options.MaxTextDiff.
const DefaultMaxTextDiff = 1 << 20

// maxDepth is how many tars deep Compare opens nested tars: a layer's
// kernel.tar is one deep. It bounds the work a tar of tars can cause.
const maxDepth = 4

// Options controls Compare. The zero value gives the defaults.
type Options struct {
	// MaxTextDiff is the size up to which a text member (valid UTF-8
	// without a NUL byte) whose content differs gets a unified diff. The
	// default (0) is DefaultMaxTextDiff; a negative value turns text
	// diffs off.
	MaxTextDiff int64
}

// Report says how image B differs from image A. Everything but A, B and
// Identical lists differences only.
type Report struct {
	// A and B are the manifest digests of the two images.
	A v1.Hash `json:"a"`
	B v1.Hash `json:"b"`
	// Identical is true when the manifest digests are equal; nothing else
	// is filled in then.
	Identical bool `json:"identical"`
	// Manifest lists the manifest fields that differ (annotations key by
	// key, media types, ...), except the config's and the layers' digests
	// and sizes: the Config and Layers lists say how those differ.
	Manifest []Field `json:"manifest,omitempty"`
	// Config lists the fields of the image config that differ, key by key
	// ("config.Labels.org.mobyproject.linuxkit.kernel.buildimage",
	// "created", "history.2.created_by", ...), except rootfs.diff_ids,
	// which the Layers list covers.
	Config []Field `json:"config,omitempty"`
	// Layers has an entry for each layer index whose layers differ, or
	// that only one image has.
	Layers []LayerDiff `json:"layers,omitempty"`
}

// Field is a value that differs between the two manifests or configs.
//
// A and B are the values as compact JSON: a string keeps its quotes, so
// `"amd64"`, `3`, `null` and `{"a":"b"}` are all possible. A JSON text is
// never empty, so "" means that side has no such field.
type Field struct {
	// Path names the field: object keys and array indexes joined with
	// ".", as they are ("config.Labels.org.opencontainers.image.title",
	// "history.3.created_by"). It is "" when the documents hold the same
	// JSON and only their encoding differs; Note says so.
	Path string `json:"path"`
	A    string `json:"a,omitempty"`
	B    string `json:"b,omitempty"`
	Note string `json:"note,omitempty"`
}

// LayerDiff says how the layers at one index differ.
type LayerDiff struct {
	Index int `json:"index"`
	// A and B describe the two layers; one is nil when only the other
	// image has a layer at Index.
	A *LayerInfo `json:"a,omitempty"`
	B *LayerInfo `json:"b,omitempty"`
	// Members lists the members that differ (see Member). It is never
	// empty: when no member differs although the layers do, it holds one
	// Member with an empty Path and a Note that says what differs instead
	// (the compression, the order of the members, tar header fields that
	// are not compared).
	Members []Member `json:"members"`
}

// LayerInfo describes one layer.
type LayerInfo struct {
	Digest    v1.Hash         `json:"digest"`
	DiffID    v1.Hash         `json:"diffID"`
	MediaType types.MediaType `json:"mediaType"`
	Size      int64           `json:"size"`
}

// Member is a tar member that differs: present on one side only, or with
// entries (Entry) that differ.
//
// Members of one tar are listed in the order of the tar of image A, then
// those only B has in the order of B's tar. When a name appears more
// than once in a tar, the last entry wins, as it does when the tar is
// extracted; names are matched after removing a leading "./" and a
// trailing "/", so "./usr/" and "usr" are one member.
//
// A member that is a tar on both sides (by its name: .tar, .tar.gz, .tgz,
// .tar.xz, .tar.zst; the compression is sniffed from the content) and
// whose content differs is compared member by member too, up to four
// tars deep: its differing members follow it, their Paths joined to its
// own with "/".
type Member struct {
	// Path is the member's name as its tar header has it, after the
	// Paths of the tars it is in: "kernel.tar/lib/modules/6.6.71/foo.ko".
	// Names are not cleaned: "../x" and "/x" are reported as they are.
	Path string `json:"path"`
	// A and B are the member's entries; one is nil when only the other
	// side has the member.
	A *Entry `json:"a,omitempty"`
	B *Entry `json:"b,omitempty"`
	// Diff is a unified diff from A's content to B's for a regular file
	// whose content differs and that is text (valid UTF-8 without a NUL
	// byte) of at most Options.MaxTextDiff bytes on both sides.
	Diff string `json:"diff,omitempty"`
	// Note explains what the entries do not show: why a layer or a
	// nested tar that differs has no differing member, why a nested tar
	// was not compared inside (too deep, or it cannot be read as a tar on
	// one side, with the error).
	Note string `json:"note,omitempty"`
}

// Entry types.
const (
	TypeFile     = "file"
	TypeDir      = "dir"
	TypeSymlink  = "symlink"
	TypeHardlink = "hardlink"
	TypeChar     = "char"
	TypeBlock    = "block"
	TypeFifo     = "fifo"
)

// Entry is what a tar header and content say about a member. Two members
// differ when any of these fields do. Fields that are not compared (user
// and group names, access times, extended attributes and other PAX
// records) can still make two layers differ; LayerDiff notes it.
type Entry struct {
	// Type is one of the Type constants, or `tar type 'X'` for other tar
	// type flags.
	Type string `json:"type"`
	// Mode holds the permission bits and the setuid, setgid and sticky
	// bits (07777).
	Mode    int64     `json:"mode"`
	UID     int       `json:"uid"`
	GID     int       `json:"gid"`
	ModTime time.Time `json:"modTime"`
	Size    int64     `json:"size"`
	// SHA256 is the hex SHA-256 of a file's content, "" for other types.
	SHA256 string `json:"sha256,omitempty"`
	// Linkname is the target of a symlink or hard link.
	Linkname string `json:"linkname,omitempty"`
	// Devmajor and Devminor are a device node's numbers.
	Devmajor int64 `json:"devmajor,omitempty"`
	Devminor int64 `json:"devminor,omitempty"`
}

// equal reports whether e and f are the same entry; times are compared
// as instants.
func (e *Entry) equal(f *Entry) bool {
	return e.Type == f.Type && e.Mode == f.Mode && e.UID == f.UID && e.GID == f.GID &&
		e.ModTime.Equal(f.ModTime) && e.Size == f.Size && e.SHA256 == f.SHA256 &&
		e.Linkname == f.Linkname && e.Devmajor == f.Devmajor && e.Devminor == f.Devminor
}

// Compare reports how image b differs from image a (a: the original, b:
// the rebuild).
//
// Layers are compared pairwise by index; a pair with equal digests, or
// with equal diff IDs (the same tar, compressed differently), is not read.
// Other layers are read, decompressed by v1.Layer.Uncompressed, once to
// hash every member and again for each nested tar and batch of text
// diffs (see the package doc).
//
// A nested tar that cannot be read on one side is reported, with a Note,
// rather than failing the comparison; an error reading a layer itself is
// returned, naming the layer and, where it applies, the member. When ctx
// is cancelled Compare returns ctx.Err(); it checks ctx between members.
func Compare(ctx context.Context, a, b v1.Image, opts Options) (*Report, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	r, err := newComparer(opts).compare(ctx, a, b)
	if err != nil && ctx.Err() != nil {
		return nil, ctx.Err()
	}
	return r, err
}

// comparer holds what the comparison of two images shares.
type comparer struct {
	maxText int64 // < 0: no text diffs
	// textBatch bounds the bytes of image a's text members held at once
	// while their diffs are made.
	textBatch int64
	// diffsLeft is how many more text diffs the report may hold
	// (maxTextDiffs in all): two unrelated trees must not give thousands.
	diffsLeft int
	buf       []byte // for hashing member contents
}

// maxTextDiffs bounds the text diffs of one report; members past it get a
// Note instead.
const maxTextDiffs = 100

func newComparer(opts Options) *comparer {
	c := &comparer{maxText: opts.MaxTextDiff, textBatch: 64 << 20, diffsLeft: maxTextDiffs, buf: make([]byte, 256<<10)}
	if c.maxText == 0 {
		c.maxText = DefaultMaxTextDiff
	}
	c.textBatch = max(c.textBatch, c.maxText)
	return c
}

func (c *comparer) compare(ctx context.Context, a, b v1.Image) (*Report, error) {
	r := &Report{}
	var err error
	if r.A, err = a.Digest(); err != nil {
		return nil, fmt.Errorf("digest of image a: %w", err)
	}
	if r.B, err = b.Digest(); err != nil {
		return nil, fmt.Errorf("digest of image b: %w", err)
	}
	if r.A == r.B {
		r.Identical = true
		return r, nil
	}
	ma, err := a.RawManifest()
	if err != nil {
		return nil, fmt.Errorf("manifest of image a: %w", err)
	}
	mb, err := b.RawManifest()
	if err != nil {
		return nil, fmt.Errorf("manifest of image b: %w", err)
	}
	if r.Manifest, err = diffJSON("manifest", ma, mb, skipManifestField); err != nil {
		return nil, err
	}
	ca, err := a.RawConfigFile()
	if err != nil {
		return nil, fmt.Errorf("config of image a: %w", err)
	}
	cb, err := b.RawConfigFile()
	if err != nil {
		return nil, fmt.Errorf("config of image b: %w", err)
	}
	if r.Config, err = diffJSON("config", ca, cb, skipConfigField); err != nil {
		return nil, err
	}
	la, err := a.Layers()
	if err != nil {
		return nil, fmt.Errorf("layers of image a: %w", err)
	}
	lb, err := b.Layers()
	if err != nil {
		return nil, fmt.Errorf("layers of image b: %w", err)
	}
	for i := range max(len(la), len(lb)) {
		var x, y v1.Layer
		if i < len(la) {
			x = la[i]
		}
		if i < len(lb) {
			y = lb[i]
		}
		d, err := c.compareLayer(ctx, i, x, y)
		if err != nil {
			return nil, fmt.Errorf("layer %d: %w", i, err)
		}
		if d != nil {
			r.Layers = append(r.Layers, *d)
		}
	}
	return r, nil
}

// compareLayer compares the layers at index i, either of which may be
// nil, and returns nil when they are the same.
func (c *comparer) compareLayer(ctx context.Context, i int, la, lb v1.Layer) (*LayerDiff, error) {
	d := &LayerDiff{Index: i}
	var a, b *source
	var err error
	if la != nil {
		if d.A, err = layerInfo(la); err != nil {
			return nil, fmt.Errorf("image a: %w", err)
		}
		a = layerSource("a", la)
	}
	if lb != nil {
		if d.B, err = layerInfo(lb); err != nil {
			return nil, fmt.Errorf("image b: %w", err)
		}
		b = layerSource("b", lb)
	}
	if a != nil && b != nil {
		switch {
		case d.A.Digest == d.B.Digest:
			return nil, nil
		case d.A.DiffID == d.B.DiffID:
			d.Members = []Member{{Note: "the layers hold the same tar (equal diff IDs), compressed differently"}}
			return d, nil
		}
	}
	members, note, err := c.compareTar(ctx, a, b, "", 0)
	if err != nil {
		return nil, err
	}
	if len(members) == 0 {
		if a == nil || b == nil {
			note = "the layer is an empty tar"
		}
		members = []Member{{Note: note}}
	}
	d.Members = members
	return d, nil
}

func layerInfo(l v1.Layer) (*LayerInfo, error) {
	var info LayerInfo
	var err error
	if info.Digest, err = l.Digest(); err != nil {
		return nil, fmt.Errorf("layer digest: %w", err)
	}
	if info.DiffID, err = l.DiffID(); err != nil {
		return nil, fmt.Errorf("layer %s: diff ID: %w", info.Digest, err)
	}
	if info.MediaType, err = l.MediaType(); err != nil {
		return nil, fmt.Errorf("layer %s: media type: %w", info.Digest, err)
	}
	if info.Size, err = l.Size(); err != nil {
		return nil, fmt.Errorf("layer %s: size: %w", info.Digest, err)
	}
	return &info, nil
}
