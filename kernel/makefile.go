package kernel

import (
	"bufio"
	"fmt"
	"io"
	"strings"
)

// makefile is what lkbuild reads from a kernel directory's Makefile: plain
// variable assignments and `$(eval $(call kernel,...))` lines. It is not a
// make interpreter: conditionals are not evaluated (every assignment
// counts), references like $(X) are not expanded, and define blocks are
// skipped. That is enough for the values LinuxKit keeps there as literals:
// TOOLS, IMAGE_BUILDER and, in the flat layout, the kernel lists.
type makefile struct {
	file  string
	vars  map[string]makeVar
	calls []makeCall // $(eval $(call kernel,VERSION,SERIES,EXTRA,DEBUG)), in file order
}

type makeVar struct {
	Value string
	Line  int
}

type makeCall struct {
	Args []string
	Line int
}

func readMakefile(file string, r io.Reader) (*makefile, error) {
	m := &makefile{file: file, vars: map[string]makeVar{}}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	inDefine, inRecipe := false, false
	var logical strings.Builder
	start := 0
	for n := 1; sc.Scan(); n++ {
		raw := sc.Text()
		if inRecipe || logical.Len() == 0 && strings.HasPrefix(raw, "\t") {
			// A recipe line, and the lines it continues onto: shell, not make.
			inRecipe = strings.HasSuffix(raw, `\`)
			continue
		}
		if logical.Len() == 0 {
			start = n
		} else {
			raw = strings.TrimLeft(raw, " \t")
		}
		// A backslash-newline and the blanks around it become one space.
		if body, ok := strings.CutSuffix(raw, `\`); ok {
			logical.WriteString(strings.TrimRight(body, " \t"))
			logical.WriteString(" ")
			continue
		}
		logical.WriteString(raw)
		line := strings.TrimSpace(stripMakeComment(logical.String()))
		logical.Reset()

		switch word, _, _ := strings.Cut(line, " "); {
		case word == "define":
			inDefine = true
			continue
		case word == "endef":
			inDefine = false
			continue
		case inDefine:
			continue
		}
		if args, ok := parseKernelCall(line); ok {
			m.calls = append(m.calls, makeCall{Args: args, Line: start})
			continue
		}
		if name, op, value, ok := parseAssign(line); ok {
			old, set := m.vars[name]
			switch {
			case op == "?=" && set:
			case op == "+=" && set:
				m.vars[name] = makeVar{Value: strings.TrimSpace(old.Value + " " + value), Line: start}
			default:
				m.vars[name] = makeVar{Value: value, Line: start}
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, &FileError{File: file, Err: fmt.Errorf("read: %w", err)}
	}
	return m, nil
}

// parseKernelCall recognises `$(eval $(call kernel,A,B,...))`, the way
// older LinuxKit Makefiles declare each kernel, and returns its arguments.
func parseKernelCall(line string) ([]string, bool) {
	rest, ok := strings.CutPrefix(line, "$(eval")
	if !ok {
		return nil, false
	}
	rest, ok = strings.CutPrefix(strings.TrimLeft(rest, " \t"), "$(call")
	if !ok {
		return nil, false
	}
	rest, ok = strings.CutPrefix(strings.TrimLeft(rest, " \t"), "kernel,")
	if !ok {
		return nil, false
	}
	rest, ok = strings.CutSuffix(rest, "))")
	if !ok {
		return nil, false
	}
	args := strings.Split(rest, ",")
	for i := range args {
		args[i] = strings.TrimSpace(args[i])
	}
	return args, true
}

// parseAssign recognises a variable assignment such as `NAME ?= value`,
// with the operators =, :=, ::=, ?= and +=, and an optional leading
// override or export.
func parseAssign(line string) (name, op, value string, ok bool) {
	for _, kw := range []string{"override ", "export "} {
		if rest, found := strings.CutPrefix(line, kw); found {
			line = strings.TrimLeft(rest, " \t")
		}
	}
	end := strings.IndexFunc(line, func(r rune) bool {
		return !(r == '_' || r == '.' || r == '-' || '0' <= r && r <= '9' || 'A' <= r && r <= 'Z' || 'a' <= r && r <= 'z')
	})
	if end <= 0 {
		return "", "", "", false
	}
	name, rest := line[:end], strings.TrimLeft(line[end:], " \t")
	for _, op := range []string{"?=", "::=", ":=", "+=", "="} {
		if v, found := strings.CutPrefix(rest, op); found {
			return name, op, strings.TrimLeft(v, " \t"), true
		}
	}
	return "", "", "", false
}

// stripMakeComment drops a "#" comment, keeping an escaped "\#".
func stripMakeComment(s string) string {
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case '#':
			return s[:i]
		}
	}
	return s
}

// words returns the literal words of a variable: the blank-separated words
// that hold no make reference such as $(ARCH).
func (m *makefile) words(name string) []string {
	var out []string
	for _, w := range strings.Fields(m.vars[name].Value) {
		if !strings.Contains(w, "$") {
			out = append(out, w)
		}
	}
	return out
}
