package kernel

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
)

// SetVersion makes the series called name, and every variant of it that
// takes its version from it, the release v in d's model: what a build
// would see once the series' build-args say KERNEL_VERSION=v. Nothing is
// written; lkbuild bump tries the new release this way before it writes
// it. It returns the series it changed, name's first.
func (d *Dir) SetVersion(name string, v Version) ([]*Series, error) {
	if d.Layout == LayoutFlat {
		return nil, fmt.Errorf("%s uses the flat layout, whose versions are the Makefile's KERNEL_VERSIONS: lkbuild changes build-args files only", d.file("."))
	}
	s, err := d.Lookup(name)
	if err != nil {
		return nil, err
	}
	if s.BuildArgs == nil {
		if s.base != nil {
			return nil, fmt.Errorf("%s takes its version from %s: name that series", s.Name, s.Base)
		}
		return nil, &FileError{File: d.file(s.Name), Err: errors.New("no build-args: nothing names its version")}
	}
	if v.Series() != s.Base {
		return nil, fmt.Errorf("version %s is not in series %s", v, s.Base)
	}
	changed := []*Series{s}
	old := s.Version
	s.Version = v
	for _, o := range d.Series {
		if o.base == s && o.BuildArgs == nil && o.Version == old {
			o.Version = v
			changed = append(changed, o)
		}
	}
	return changed, nil
}

// ReplaceBuildArg returns the build-args file data with key's value set
// to value. Only that line changes: its indentation, its line ending and
// every other line, comments and blank lines included, are kept. A key
// the file does not set is an error.
func ReplaceBuildArg(data []byte, key, value string) ([]byte, error) {
	if !isName(key) {
		return nil, fmt.Errorf("%q is not a valid build-arg name", key)
	}
	if strings.ContainsAny(value, "\r\n") {
		return nil, fmt.Errorf("build-arg %s: a value is one line", key)
	}
	var out bytes.Buffer
	found := false
	for rest := data; len(rest) > 0; {
		line := rest
		if i := bytes.IndexByte(rest, '\n'); i >= 0 {
			line, rest = rest[:i+1], rest[i+1:]
		} else {
			rest = nil
		}
		body := bytes.TrimRight(line, "\r\n")
		end := line[len(body):]
		trimmed := bytes.TrimSpace(body)
		k, _, ok := bytes.Cut(trimmed, []byte("="))
		if !ok || string(k) != key || bytes.HasPrefix(trimmed, []byte("#")) {
			out.Write(line)
			continue
		}
		if found {
			return nil, fmt.Errorf("build-arg %s is set twice", key)
		}
		found = true
		indent := body[:len(body)-len(bytes.TrimLeft(body, " \t"))]
		out.Write(indent)
		out.WriteString(key + "=" + value)
		out.Write(end)
	}
	if !found {
		return nil, fmt.Errorf("no %s line", key)
	}
	return out.Bytes(), nil
}
