package kernel

import (
	"bufio"
	"fmt"
	"io"
	"strings"
)

// Keys of build-args that lkbuild reads itself. Every other key is kept and
// passed through to the build, in file order.
const (
	KeyKernelVersion = "KERNEL_VERSION"
	KeyKernelSeries  = "KERNEL_SERIES"
	KeyBuildImage    = "BUILD_IMAGE"
)

// BuildArg is one KEY=VALUE line of a build-args file.
type BuildArg struct {
	Key, Value string
	Line       int // 1-based line in File; 0 when the value was not read from a line
}

// BuildArgs is a parsed build-args file: KEY=VALUE lines, in file order.
type BuildArgs struct {
	File string // path as the user knows it, for error messages
	Args []BuildArg
}

// ParseBuildArgs reads a build-args file. Like `linuxkit pkg build
// --build-arg-file`, it trims each line and splits it at the first "=";
// the value is kept verbatim (no quotes are removed, no variables
// expanded). Unlike linuxkit it allows blank lines and "#" comments, which
// linuxkit would pass to docker as malformed arguments. A line without
// "=", a key that is not a shell-style name or a key set twice is an error
// that names file and line.
func ParseBuildArgs(file string, r io.Reader) (*BuildArgs, error) {
	b := &BuildArgs{File: file}
	seen := map[string]int{}
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		key, value, ok := strings.Cut(line, "=")
		if !ok {
			return nil, &FileError{File: file, Line: n, Err: fmt.Errorf("%q is not KEY=VALUE", line)}
		}
		if !isName(key) {
			return nil, &FileError{File: file, Line: n, Err: fmt.Errorf("%q is not a valid build-arg name", key)}
		}
		if first, dup := seen[key]; dup {
			return nil, &FileError{File: file, Line: n, Err: fmt.Errorf("%s is set again (first on line %d)", key, first)}
		}
		seen[key] = n
		b.Args = append(b.Args, BuildArg{Key: key, Value: value, Line: n})
	}
	if err := sc.Err(); err != nil {
		return nil, &FileError{File: file, Err: fmt.Errorf("read: %w", err)}
	}
	return b, nil
}

// Lookup returns the argument with the given key.
func (b *BuildArgs) Lookup(key string) (BuildArg, bool) {
	if b == nil {
		return BuildArg{}, false
	}
	for _, a := range b.Args {
		if a.Key == key {
			return a, true
		}
	}
	return BuildArg{}, false
}

// Get returns the value of key, or "" when it is not set.
func (b *BuildArgs) Get(key string) string {
	a, _ := b.Lookup(key)
	return a.Value
}

// isName reports whether s is a shell-style variable name, which is what
// docker accepts as a build-arg name in practice.
func isName(s string) bool {
	if s == "" {
		return false
	}
	for i, c := range s {
		switch {
		case c == '_', 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z':
		case i > 0 && '0' <= c && c <= '9':
		default:
			return false
		}
	}
	return true
}
