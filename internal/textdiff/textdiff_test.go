package textdiff

import (
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/lkbuild/lkbuild/internal/testenv"
)

func TestUnified(t *testing.T) {
	for _, tc := range []struct {
		name, a, b, want string
	}{
		{name: "equal", a: "x\ny\n", b: "x\ny\n", want: ""},
		{name: "both empty", want: ""},
		{
			name: "change in the middle",
			a:    "1\n2\n3\n4\n5\n6\n7\n8\n9\n",
			b:    "1\n2\n3\n4\nfive\n6\n7\n8\n9\n",
			want: "--- a\n+++ b\n@@ -2,7 +2,7 @@\n 2\n 3\n 4\n-5\n+five\n 6\n 7\n 8\n",
		},
		{
			name: "add to empty",
			b:    "x\n",
			want: "--- a\n+++ b\n@@ -0,0 +1 @@\n+x\n",
		},
		{
			name: "remove everything",
			a:    "x\ny\n",
			want: "--- a\n+++ b\n@@ -1,2 +0,0 @@\n-x\n-y\n",
		},
		{
			name: "append at the end",
			a:    "1\n2\n3\n4\n",
			b:    "1\n2\n3\n4\n5\n",
			want: "--- a\n+++ b\n@@ -2,3 +2,4 @@\n 2\n 3\n 4\n+5\n",
		},
		{
			name: "missing final newline",
			a:    "x\ny",
			b:    "x\ny\n",
			want: "--- a\n+++ b\n@@ -1,2 +1,2 @@\n x\n-y\n\\ No newline at end of file\n+y\n",
		},
		{
			// Six unchanged lines between two changes: their contexts touch,
			// so diff makes one hunk; seven make two.
			name: "changes six apart share a hunk",
			a:    "a\n1\n2\n3\n4\n5\n6\nb\n",
			b:    "A\n1\n2\n3\n4\n5\n6\nB\n",
			want: "--- a\n+++ b\n@@ -1,8 +1,8 @@\n-a\n+A\n 1\n 2\n 3\n 4\n 5\n 6\n-b\n+B\n",
		},
		{
			name: "changes seven apart make two hunks",
			a:    "a\n1\n2\n3\n4\n5\n6\n7\nb\n",
			b:    "A\n1\n2\n3\n4\n5\n6\n7\nB\n",
			want: "--- a\n+++ b\n@@ -1,4 +1,4 @@\n-a\n+A\n 1\n 2\n 3\n@@ -6,4 +6,4 @@\n 5\n 6\n 7\n-b\n+B\n",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Unified("a", "b", []byte(tc.a), []byte(tc.b)); got != tc.want {
				t.Errorf("diff:\n%s\nwant:\n%s", got, tc.want)
			}
		})
	}
}

// randomPair makes two texts that share most lines, with deletions,
// insertions and changes in runs, sometimes without a final newline, and
// every line unique so that the shortest diff is unique too.
func randomPair(r *rand.Rand) (string, string) {
	var a, b strings.Builder
	for j := range r.IntN(60) {
		switch r.IntN(8) {
		case 0:
			fmt.Fprintf(&a, "a%d\n", j)
		case 1:
			fmt.Fprintf(&b, "b%d\n", j)
		case 2:
			fmt.Fprintf(&a, "a%d\n", j)
			fmt.Fprintf(&b, "b%d\n", j)
		default:
			fmt.Fprintf(&a, "c%d\n", j)
			fmt.Fprintf(&b, "c%d\n", j)
		}
	}
	as, bs := a.String(), b.String()
	if r.IntN(5) == 0 && as != "" {
		as = as[:len(as)-1]
	}
	return as, bs
}

// TestUnifiedMatchesGNU compares with diff -u, line for line, on
// inputs whose shortest diff is unique.
func TestUnifiedMatchesGNU(t *testing.T) {
	diffBin, err := exec.LookPath("diff")
	testenv.Need(t, err == nil, "GNU diff is not in PATH")
	dir := t.TempDir()
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 30 {
		a, b := randomPair(r)
		fa, fb := filepath.Join(dir, "a"), filepath.Join(dir, "b")
		if err := os.WriteFile(fa, []byte(a), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(fb, []byte(b), 0o644); err != nil {
			t.Fatal(err)
		}
		want, err := exec.Command(diffBin, "-u", "--label", "A", "--label", "B", fa, fb).Output()
		if ee, ok := err.(*exec.ExitError); err != nil && (!ok || ee.ExitCode() != 1) {
			t.Fatalf("diff: %v", err)
		}
		if got := Unified("A", "B", []byte(a), []byte(b)); got != string(want) {
			t.Errorf("case %d:\n%s\nGNU diff:\n%s", i, got, want)
		}
	}
}

// TestUnifiedApplies applies the diff of random texts, with repeated
// lines that make many shortest diffs, and gets the second text back.
func TestUnifiedApplies(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for i := range 500 {
		gen := func() string {
			var b strings.Builder
			for range r.IntN(40) {
				b.WriteString(string(rune('a'+r.IntN(4))) + "\n")
			}
			return b.String()
		}
		a, b := gen(), gen()
		d := Unified("a", "b", []byte(a), []byte(b))
		if got := applyDiff(t, a, d); got != b {
			t.Fatalf("case %d: applying\n%s\nto %q gives %q, want %q", i, d, a, got, b)
		}
	}
}

// applyDiff applies a unified diff of newline-terminated lines, checking
// every context and removed line and every hunk header.
func applyDiff(t *testing.T, a, d string) string {
	t.Helper()
	al := splitLines(a)
	dl := splitLines(d)
	if len(dl) == 0 {
		return a
	}
	dl = dl[2:]
	var out []string
	pos := 0 // next line of a to copy
	for len(dl) > 0 {
		h := strings.TrimSuffix(dl[0], "\n")
		f := strings.Fields(h)
		if len(f) != 4 || f[0] != "@@" || f[3] != "@@" || f[1][0] != '-' || f[2][0] != '+' {
			t.Fatalf("bad hunk header %q", h)
		}
		as, ac := parseRange(t, f[1][1:])
		_, bc := parseRange(t, f[2][1:])
		start := as - 1
		if ac == 0 {
			start = as
		}
		out = append(out, al[pos:start]...)
		pos = start
		dl = dl[1:]
		na, nb := 0, 0
		for len(dl) > 0 && !strings.HasPrefix(dl[0], "@@") {
			line := dl[0]
			dl = dl[1:]
			switch line[0] {
			case ' ', '-':
				if al[pos] != line[1:] {
					t.Fatalf("line %d is %q, diff says %q", pos+1, al[pos], line[1:])
				}
				pos++
				na++
				if line[0] == ' ' {
					out = append(out, line[1:])
					nb++
				}
			case '+':
				out = append(out, line[1:])
				nb++
			}
		}
		if na != ac || nb != bc {
			t.Fatalf("hunk %q has %d and %d lines", h, na, nb)
		}
	}
	out = append(out, al[pos:]...)
	return strings.Join(out, "")
}

func parseRange(t *testing.T, s string) (start, count int) {
	t.Helper()
	first, second, ok := strings.Cut(s, ",")
	start, err := strconv.Atoi(first)
	if err != nil {
		t.Fatalf("bad range %q", s)
	}
	count = 1
	if ok {
		if count, err = strconv.Atoi(second); err != nil {
			t.Fatalf("bad range %q", s)
		}
	}
	return start, count
}

func TestUnifiedLargeDistance(t *testing.T) {
	// Two texts with nothing in common and more lines than maxDiffCost:
	// the diff falls back to replacing everything and stays correct.
	var a, b strings.Builder
	for i := range maxDiffCost + 10 {
		fmt.Fprintf(&a, "a%d\n", i)
		fmt.Fprintf(&b, "b%d\n", i)
	}
	d := Unified("a", "b", []byte(a.String()), []byte(b.String()))
	if got := applyDiff(t, a.String(), d); got != b.String() {
		t.Fatal("fallback diff does not apply")
	}
}
