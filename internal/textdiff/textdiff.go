// Package textdiff writes unified diffs (the `diff -u` format) of texts
// held in memory. It serves lkbuild's messages: the stored and the built
// kernel config, the members of two images.
package textdiff

import (
	"fmt"
	"strings"
)

// diffContext is the number of unchanged lines around each change, as in
// `diff -u`.
const diffContext = 3

// maxDiffCost bounds the edit distance the line diff searches for. Its
// memory grows with the square of the distance; past the bound (configs
// that share almost nothing) the middle is shown as removed and added
// whole, which is still a correct diff.
const maxDiffCost = 1000

// diffOp is one line of an edit script.
type diffOp struct {
	kind byte // ' ', '-' or '+'
	a, b int  // line indexes in a and b (the one that does not apply is -1)
}

// Unified returns a unified diff (`diff -u` format, three lines of
// context) that turns a into b, or "" when they are equal. aName and bName
// go in the --- and +++ header lines. Lines are compared byte for byte; a
// missing final newline is shown the way diff shows it.
//
// The edit script is a shortest one as long as the texts differ in at most
// maxDiffCost (1000) lines; past that the differing middle is shown as
// removed and added whole, which is still a correct diff.
func Unified(aName, bName string, a, b []byte) string {
	al, bl := splitLines(string(a)), splitLines(string(b))
	ops := diffLines(al, bl)
	var w strings.Builder
	aSeen, bSeen := 0, 0 // lines of a and b before ops[i]
	count := func(ops []diffOp) {
		for _, op := range ops {
			if op.a >= 0 {
				aSeen++
			}
			if op.b >= 0 {
				bSeen++
			}
		}
	}
	for i := 0; i < len(ops); {
		// Skip to the next change, then extend its hunk over every change
		// that follows within twice the context, as diff does.
		j := i
		for j < len(ops) && ops[j].kind == ' ' {
			j++
		}
		if j == len(ops) {
			break
		}
		start := max(j-diffContext, i)
		end := j + 1
		for k := end; k < len(ops) && k-end <= 2*diffContext; k++ {
			if ops[k].kind != ' ' {
				end = k + 1
			}
		}
		stop := min(end+diffContext, len(ops))
		if w.Len() == 0 {
			fmt.Fprintf(&w, "--- %s\n+++ %s\n", aName, bName)
		}
		count(ops[i:start])
		writeHunk(&w, ops[start:stop], al, bl, aSeen, bSeen)
		count(ops[start:stop])
		i = stop
	}
	return w.String()
}

// writeHunk writes one hunk, its @@ header and lines. aBefore and bBefore
// are the numbers of lines of a and b before it.
func writeHunk(w *strings.Builder, ops []diffOp, al, bl []string, aBefore, bBefore int) {
	aCount, bCount := 0, 0
	for _, op := range ops {
		if op.a >= 0 {
			aCount++
		}
		if op.b >= 0 {
			bCount++
		}
	}
	fmt.Fprintf(w, "@@ -%s +%s @@\n", hunkRange(aBefore, aCount), hunkRange(bBefore, bCount))
	for _, op := range ops {
		line := ""
		if op.kind == '-' {
			line = al[op.a]
		} else {
			line = bl[op.b]
		}
		w.WriteByte(op.kind)
		if text, ok := strings.CutSuffix(line, "\n"); ok {
			w.WriteString(text)
			w.WriteByte('\n')
		} else {
			w.WriteString(line)
			w.WriteString("\n\\ No newline at end of file\n")
		}
	}
}

// hunkRange formats one side of a hunk header as diff does: a 1-based
// "start,count", "start" alone when count is 1, and for a side with no
// lines in the hunk the line before it and ",0".
func hunkRange(before, count int) string {
	switch count {
	case 0:
		return fmt.Sprintf("%d,0", before)
	case 1:
		return fmt.Sprintf("%d", before+1)
	}
	return fmt.Sprintf("%d,%d", before+1, count)
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

// diffLines returns an edit script from a to b: Myers' greedy algorithm
// after cutting off the common head and tail, which for configs is
// almost everything.
func diffLines(a, b []string) []diffOp {
	head := 0
	for head < len(a) && head < len(b) && a[head] == b[head] {
		head++
	}
	tail := 0
	for tail < len(a)-head && tail < len(b)-head && a[len(a)-1-tail] == b[len(b)-1-tail] {
		tail++
	}
	ops := make([]diffOp, 0, len(a)+len(b))
	for i := range head {
		ops = append(ops, diffOp{' ', i, i})
	}
	ops = append(ops, myers(a[head:len(a)-tail], b[head:len(b)-tail], head, head)...)
	for i := range tail {
		ops = append(ops, diffOp{' ', len(a) - tail + i, len(b) - tail + i})
	}
	return ops
}

// myers finds a shortest edit script from a to b (E. Myers, "An O(ND)
// difference algorithm and its variations", 1986), keeping the frontier of
// every round to walk the path back. ao and bo are added to the indexes
// in the result.
func myers(a, b []string, ao, bo int) []diffOp {
	n, m := len(a), len(b)
	if n == 0 || m == 0 || minCost(n, m) > maxDiffCost {
		return replaceAll(n, m, ao, bo)
	}
	limit := min(n+m, maxDiffCost)
	off := limit + 1
	v := make([]int, 2*limit+3)
	var trace [][]int
	found := -1
	for d := 0; d <= limit && found < 0; d++ {
		for k := -d; k <= d; k += 2 {
			var x int
			if k == -d || k != d && v[off+k-1] < v[off+k+1] {
				x = v[off+k+1] // down: insert from b
			} else {
				x = v[off+k-1] + 1 // right: delete from a
			}
			y := x - k
			for x < n && y < m && a[x] == b[y] {
				x, y = x+1, y+1
			}
			v[off+k] = x
			if x >= n && y >= m {
				found = d
				break
			}
		}
		trace = append(trace, append([]int(nil), v[off-d:off+d+1]...))
	}
	if found < 0 {
		return replaceAll(n, m, ao, bo)
	}
	// Walk back from (n, m), one round at a time.
	var rev []diffOp
	x, y := n, m
	for d := found; d > 0; d-- {
		prev := trace[d-1] // covers k in [-(d-1), d-1]
		at := func(k int) int { return prev[k+d-1] }
		k := x - y
		var pk int
		if k == -d || k != d && at(k-1) < at(k+1) {
			pk = k + 1
		} else {
			pk = k - 1
		}
		px := at(pk)
		py := px - pk
		for x > px && y > py {
			x, y = x-1, y-1
			rev = append(rev, diffOp{' ', ao + x, bo + y})
		}
		if pk == k+1 {
			y--
			rev = append(rev, diffOp{'+', -1, bo + y})
		} else {
			x--
			rev = append(rev, diffOp{'-', ao + x, -1})
		}
	}
	for x > 0 && y > 0 {
		x, y = x-1, y-1
		rev = append(rev, diffOp{' ', ao + x, bo + y})
	}
	ops := make([]diffOp, len(rev))
	for i, op := range rev {
		ops[len(rev)-1-i] = op
	}
	return ops
}

// minCost is a lower bound of the edit distance between sequences of
// lengths n and m.
func minCost(n, m int) int {
	if n > m {
		return n - m
	}
	return m - n
}

// replaceAll is the edit script that removes all of a and adds all of b.
func replaceAll(n, m, ao, bo int) []diffOp {
	ops := make([]diffOp, 0, n+m)
	for i := range n {
		ops = append(ops, diffOp{'-', ao + i, -1})
	}
	for j := range m {
		ops = append(ops, diffOp{'+', -1, bo + j})
	}
	return ops
}
