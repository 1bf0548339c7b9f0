package kernel

import (
	"strings"

	"github.com/lkbuild/lkbuild/internal/textdiff"
)

// unifiedDiff returns the `diff -u` of a and b (see textdiff.Unified), or
// "" when they are equal.
func unifiedDiff(aName, bName string, a, b []byte) string {
	return textdiff.Unified(aName, bName, a, b)
}

// splitLines splits s into lines that keep their "\n"; a last line
// without one is kept as it is.
func splitLines(s string) []string {
	var out []string
	for line := range strings.Lines(s) {
		out = append(out, line)
	}
	return out
}
