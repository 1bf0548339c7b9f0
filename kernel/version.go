package kernel

import (
	"cmp"
	"fmt"
	"strconv"
	"strings"
)

// Version is a kernel release such as 6.6.71. LinuxKit names every kernel
// by all three numbers, so 6.7 (kernel.org's name for 6.7.0) is not a
// Version here.
type Version struct {
	Major, Minor, Patch int
}

// ParseVersion parses "MAJOR.MINOR.PATCH" with plain decimal numbers and no
// leading zeros, so that String gives back the same text.
func ParseVersion(s string) (Version, error) {
	parts := strings.Split(s, ".")
	if len(parts) != 3 {
		return Version{}, fmt.Errorf("%q is not a kernel version like 6.6.71", s)
	}
	var n [3]int
	for i, p := range parts {
		v, err := strconv.Atoi(p)
		if err != nil || v < 0 || p != strconv.Itoa(v) {
			return Version{}, fmt.Errorf("%q is not a kernel version like 6.6.71", s)
		}
		n[i] = v
	}
	return Version{Major: n[0], Minor: n[1], Patch: n[2]}, nil
}

func (v Version) String() string {
	if v.IsZero() {
		return ""
	}
	return fmt.Sprintf("%d.%d.%d", v.Major, v.Minor, v.Patch)
}

// IsZero reports whether v is unset. 0.0.0 is not a kernel release.
func (v Version) IsZero() bool { return v == Version{} }

// Series is the series v belongs to, e.g. "6.6.x" for 6.6.71: what
// LinuxKit's Makefile derives from a version to find the series folder.
func (v Version) Series() string { return fmt.Sprintf("%d.%d.x", v.Major, v.Minor) }

// Compare orders versions numerically, like `sort -V`: -1, 0 or +1.
func (v Version) Compare(w Version) int {
	if c := cmp.Compare(v.Major, w.Major); c != 0 {
		return c
	}
	if c := cmp.Compare(v.Minor, w.Minor); c != 0 {
		return c
	}
	return cmp.Compare(v.Patch, w.Patch)
}
