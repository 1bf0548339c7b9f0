package kernel

import "strings"

// PatchHunk returns hunk n (counted from 1) of the changes a unified diff
// makes to file, as it appears in the patch: its "@@" line and body. file
// is the name GNU patch prints after stripping one leading component
// (-p1): "init/main.c" for "+++ b/init/main.c". It returns "" when the
// patch has no such hunk.
func PatchHunk(patch []byte, file string, n int) string {
	lines := strings.SplitAfter(string(patch), "\n")
	inFile := false
	count := 0
	var hunk strings.Builder
	for _, l := range lines {
		switch {
		case strings.HasPrefix(l, "+++ "):
			inFile = stripComponent(strings.TrimSpace(strings.TrimPrefix(l, "+++ "))) == file
			if hunk.Len() > 0 {
				return hunk.String()
			}
			continue
		case strings.HasPrefix(l, "diff ") || strings.HasPrefix(l, "--- ") || l == "-- \n":
			if hunk.Len() > 0 {
				return hunk.String()
			}
			continue
		case strings.HasPrefix(l, "@@"):
			if hunk.Len() > 0 {
				return hunk.String()
			}
			if inFile {
				count++
			}
		}
		if inFile && count == n {
			hunk.WriteString(l)
		}
	}
	return hunk.String()
}

// stripComponent removes the first path component and a trailing
// timestamp (after a tab), as patch -p1 does with a diff header's name.
func stripComponent(name string) string {
	name, _, _ = strings.Cut(name, "\t")
	if _, rest, ok := strings.Cut(name, "/"); ok {
		return rest
	}
	return name
}
