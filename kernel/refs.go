package kernel

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
)

// RefUpdater rewrites references to a kernel image in text files, as
// LinuxKit's `make update-kernel-yamls` does (update-kernel-hash-yaml-% and
// update-kernel-semver-yaml-%), with these rules for <org>/<image>:<tag>:
//
//   - a release tag (6.6.13, 5.11.4-rt, 6.6.13-dbg) becomes the highest
//     version of the series lkbuild builds with that variant suffix (the
//     highest of every plain series for a plain tag), keeping -dbg;
//   - a release tag with a series hash (6.6.13-<hash>, 6.6.13-dbg-<hash>)
//     becomes the current version and hash of the same series (6.6.x, or
//     6.6.x-rt for a -rt tag), never another series;
//   - anything else is left as it is: a series lkbuild does not build (a
//     deprecated one), arch tags (-amd64), -builder, other images, and every
//     reference in a comment.
//
// Upstream's sed updates only plain hash tags and rewrites comments too.
type RefUpdater struct {
	// Repository is the image's repository, "linuxkit/kernel".
	Repository string
	// highest is the highest version per variant suffix ("" plain).
	highest map[string]Version
	// current is the version and series hash per series folder.
	current map[string]seriesRef
}

type seriesRef struct {
	version Version
	hash    string
}

// ErrDirtyHash is returned by RefUpdater when the kernel directory has
// uncommitted changes: its series hashes end in -dirty, and no image has
// such a tag to point at.
var ErrDirtyHash = errors.New("the kernel directory has uncommitted changes (its series hashes end in " + DirtySuffix + "): commit them first")

// RefUpdater is the updater of references to q's image (its Org and Image)
// for the series this checkout builds (those lkbuild list prints).
func (c *Checkout) RefUpdater(q Query) (*RefUpdater, error) {
	u := &RefUpdater{Repository: Name{Org: q.Org, Image: q.Image}.Repository(), highest: map[string]Version{}, current: map[string]seriesRef{}}
	for _, s := range c.Dir.Series {
		if s.Deprecated || s.BuildArgs == nil || s.Version.IsZero() {
			continue
		}
		h, err := c.Hash(s)
		if err != nil {
			return nil, err
		}
		if strings.HasSuffix(h, DirtySuffix) {
			return nil, fmt.Errorf("%s: %w", c.Dir.file(s.Name), ErrDirtyHash)
		}
		u.current[s.Name] = seriesRef{version: s.Version, hash: h}
		if v, ok := u.highest[s.Extra]; !ok || s.Version.Compare(v) > 0 {
			u.highest[s.Extra] = s.Version
		}
	}
	if len(u.current) == 0 {
		return nil, fmt.Errorf("%s: no series to point references at (every one is deprecated or has no build-args)", c.Dir.Path)
	}
	return u, nil
}

// RefChange is one reference RefUpdater rewrote.
type RefChange struct {
	Line     int // from 1
	Old, New string
}

// Update returns data with its references rewritten and the changes, in
// order. yaml says the data is YAML, whose block scalars (a | or >
// value's indented lines) hold no comments; in other files (Dockerfile,
// Makefile, shell) a # after a blank starts one.
func (u *RefUpdater) Update(data []byte, yaml bool) ([]byte, []RefChange) {
	var out bytes.Buffer
	var changes []RefChange
	block := -1 // the indentation of the key of the block scalar we are in
	lines := bytes.SplitAfter(data, []byte("\n"))
	for i, line := range lines {
		text := string(line)
		indent := len(text) - len(strings.TrimLeft(text, " "))
		blank := strings.TrimSpace(text) == ""
		if block >= 0 && (blank || indent > block) {
			// Inside a block scalar: content, no comments.
			text, changes = u.updateLine(text, len(text), i+1, changes)
			out.WriteString(text)
			continue
		}
		block = -1
		end := len(text)
		if c := commentStart(text); c >= 0 {
			end = c
		}
		if yaml && startsBlockScalar(text[:end]) {
			block = indent
		}
		text, changes = u.updateLine(text, end, i+1, changes)
		out.WriteString(text)
	}
	return out.Bytes(), changes
}

// updateLine rewrites the references in line[:end].
func (u *RefUpdater) updateLine(line string, end, n int, changes []RefChange) (string, []RefChange) {
	prefix := u.Repository + ":"
	var b strings.Builder
	i := 0
	for {
		j := strings.Index(line[i:end], prefix)
		if j < 0 {
			break
		}
		j += i
		k := j + len(prefix)
		t := k
		for t < end && !isRefEnd(line[t]) {
			t++
		}
		if j > 0 && !isRefStart(line[j-1]) || t < len(line) && !isRefEnd(line[t]) {
			b.WriteString(line[i:k])
			i = k
			continue
		}
		b.WriteString(line[i:k])
		tag := line[k:t]
		if nt, ok := u.newTag(tag); ok && nt != tag {
			changes = append(changes, RefChange{Line: n, Old: prefix + tag, New: prefix + nt})
			tag = nt
		}
		b.WriteString(tag)
		i = t
	}
	b.WriteString(line[i:])
	return b.String(), changes
}

// newTag is the tag a reference's tag becomes, ok false when the rules
// leave it.
func (u *RefUpdater) newTag(tag string) (string, bool) {
	parts := strings.Split(tag, "-")
	v, err := ParseVersion(parts[0])
	if err != nil {
		return "", false
	}
	rest := parts[1:]
	hash := ""
	if n := len(rest); n > 0 && isSeriesHash(rest[n-1]) {
		hash, rest = rest[n-1], rest[:n-1]
	}
	debug := ""
	if n := len(rest); n > 0 && rest[n-1] == strings.TrimPrefix(DebugSuffix, "-") {
		debug, rest = DebugSuffix, rest[:n-1]
	}
	extra := ""
	if len(rest) > 0 {
		extra = "-" + strings.Join(rest, "-")
	}
	if hash == "" {
		h, ok := u.highest[extra]
		if !ok {
			return "", false // a variant, an arch or -builder: not ours
		}
		return h.String() + extra + debug, true
	}
	cur, ok := u.current[v.Series()+extra]
	if !ok {
		return "", false
	}
	return cur.version.String() + extra + debug + "-" + cur.hash, true
}

// isSeriesHash reports whether s is a git object id.
func isSeriesHash(s string) bool {
	if len(s) != 40 && len(s) != 64 {
		return false
	}
	return strings.Trim(s, "0123456789abcdef") == ""
}

// A reference starts after a blank, a quote, a [ , ( or = or at the line's
// start, and ends at a blank, a quote, a comma, ] , ) or the line's end.
func isRefStart(c byte) bool { return strings.IndexByte(" \t\"'[,(=", c) >= 0 }
func isRefEnd(c byte) bool   { return strings.IndexByte(" \t\r\n\"',])", c) >= 0 }

// commentStart is where a # comment starts in line, -1 for none: a # at
// the start or after a blank, outside quotes.
func commentStart(line string) int {
	var quote byte
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '"' || c == '\'':
			quote = c
		case c == '#' && (i == 0 || line[i-1] == ' ' || line[i-1] == '\t'):
			return i
		}
	}
	return -1
}

// startsBlockScalar reports whether a YAML line (its comment cut off) ends
// in a block scalar indicator: "key: |", "- >-", "run: |2".
func startsBlockScalar(line string) bool {
	s := strings.TrimRight(line, " \t\r\n")
	i := strings.LastIndexAny(s, "|>")
	if i < 0 || strings.Trim(s[i+1:], "+-0123456789") != "" {
		return false
	}
	before := strings.TrimRight(s[:i], " \t")
	return before == "" || strings.HasSuffix(before, ":") || strings.HasSuffix(before, "-")
}
