package kernel

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"slices"
	"strings"
)

// DockerfileName is the file whose first stage installs the build
// packages in LinuxKit's kernel directory.
const DockerfileName = "common/Dockerfile"

// Package managers BuildPackages knows.
const (
	ManagerApk = "apk"
	ManagerApt = "apt"
)

// BuildPackages are the packages the kernel directory's Dockerfile installs
// into BUILD_IMAGE before the build (LinuxKit's `RUN apk add ...` in the
// first stage of common/Dockerfile).
type BuildPackages struct {
	// File is the Dockerfile, as the user knows it.
	File string
	// Manager is the package manager the Dockerfile calls: ManagerApk or
	// ManagerApt.
	Manager string
	// Packages are the package names in the order the Dockerfile gives
	// them, each once.
	Packages []string
}

// BuildPackages reads the packages the Dockerfile of a build installs
// into BUILD_IMAGE: common/Dockerfile's for the kernel (tool ""), the
// tool's Dockerfile (ToolDockerfile) for a tool image. It returns nil and
// no error when the directory has no such Dockerfile or it installs
// nothing.
func (d *Dir) BuildPackages(tool string) (*BuildPackages, error) {
	name := DockerfileName
	if tool != "" {
		name = d.ToolDockerfile(tool)
	}
	f, err := d.FS.Open(name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("build packages: %w", err)
	}
	defer f.Close()
	return ParseBuildPackages(d.file(name), io.LimitReader(f, 1<<20))
}

// ParseBuildPackages reads a Dockerfile and returns what the RUN
// instructions of its build stage install with `apk add`, `apt-get
// install` or `apt install`; nil when they install nothing. The build
// stage is the first FROM ${BUILD_IMAGE} (Dockerfile.perf's second stage:
// its first is the kernel image), else the first stage. It does not run a
// shell: a package name that needs one to expand ($VAR, globs, command
// substitution) is an error, as is a stage that calls two package
// managers.
func ParseBuildPackages(name string, r io.Reader) (*BuildPackages, error) {
	insts, err := dockerInstructions(r)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	stage := buildStage(insts)
	bp := &BuildPackages{File: name}
	froms := 0
	for _, in := range insts {
		switch in.cmd {
		case "FROM":
			froms++
		case "RUN":
			if froms != stage {
				continue
			}
			if err := bp.addRun(in.args); err != nil {
				return nil, fmt.Errorf("%s:%d: %w", name, in.line, err)
			}
		}
		if froms > stage {
			break
		}
	}
	if len(bp.Packages) == 0 {
		return nil, nil
	}
	return bp, nil
}

// buildStage is the number (from 1) of the stage whose FROM is the build
// image, ${BUILD_IMAGE} or $BUILD_IMAGE; 1 when none is.
func buildStage(insts []dockerInstruction) int {
	n := 0
	for _, in := range insts {
		if in.cmd != "FROM" {
			continue
		}
		n++
		for _, f := range strings.Fields(in.args) {
			if strings.HasPrefix(f, "--") {
				continue // --platform=...
			}
			if f == "${"+KeyBuildImage+"}" || f == "$"+KeyBuildImage {
				return n
			}
			break
		}
	}
	return 1
}

type dockerInstruction struct {
	line int // where it starts
	cmd  string
	args string
}

// dockerInstructions splits a Dockerfile into instructions: comment lines
// dropped (also inside continued instructions, as Docker does), lines
// ending in a backslash joined with the next.
func dockerInstructions(r io.Reader) ([]dockerInstruction, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var out []dockerInstruction
	var cur *dockerInstruction
	var b strings.Builder
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimRight(sc.Text(), " \t\r")
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "#") || (trimmed == "" && cur == nil) {
			continue
		}
		if cur == nil {
			cur = &dockerInstruction{line: n}
			b.Reset()
		}
		cont := strings.HasSuffix(line, `\`)
		b.WriteString(strings.TrimSuffix(line, `\`))
		b.WriteByte(' ')
		if cont {
			continue
		}
		text := strings.TrimSpace(b.String())
		cmd, args, _ := strings.Cut(text, " ")
		if cmd == "" {
			cur = nil
			continue
		}
		cur.cmd, cur.args = strings.ToUpper(cmd), strings.TrimSpace(args)
		out = append(out, *cur)
		cur = nil
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read: %w", err)
	}
	return out, nil
}

// addRun adds what one RUN instruction installs.
func (bp *BuildPackages) addRun(args string) error {
	var cmds [][]string
	if strings.HasPrefix(args, "[") {
		var argv []string
		if err := json.Unmarshal([]byte(args), &argv); err != nil {
			return fmt.Errorf("RUN %s: %w", args, err)
		}
		cmds = [][]string{argv}
	} else {
		// Options such as RUN --mount=... come first.
		for strings.HasPrefix(args, "--") {
			_, args, _ = strings.Cut(args, " ")
			args = strings.TrimSpace(args)
		}
		var err error
		if cmds, err = shellCommands(args); err != nil {
			return fmt.Errorf("RUN %s: %w", args, err)
		}
	}
	for _, argv := range cmds {
		manager, pkgs, err := installArgs(argv)
		if err != nil {
			return err
		}
		if manager == "" {
			continue
		}
		if bp.Manager != "" && bp.Manager != manager {
			return fmt.Errorf("the first stage installs with both %s and %s", bp.Manager, manager)
		}
		bp.Manager = manager
		for _, p := range pkgs {
			if !slices.Contains(bp.Packages, p) {
				bp.Packages = append(bp.Packages, p)
			}
		}
	}
	return nil
}

// shellCommands splits a shell command line into simple commands at ;, &,
// &&, | and ||, each into words, with quotes removed. It knows only what
// package installs need; anything it cannot split stays in a word and is
// refused later if it is a package name.
func shellCommands(s string) ([][]string, error) {
	var cmds [][]string
	var words []string
	var w strings.Builder
	inWord, redirect := false, false
	endWord := func() {
		if inWord && !redirect {
			words = append(words, w.String())
		}
		if inWord {
			w.Reset()
			inWord, redirect = false, false
		}
	}
	endCmd := func() {
		endWord()
		if len(words) > 0 {
			cmds = append(cmds, words)
			words = nil
		}
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch c {
		case ' ', '\t', '\n':
			endWord()
		case ';', '&', '|', '(', ')':
			endCmd()
		case '<', '>':
			// A redirection: the file descriptor before it and the
			// word after it are not arguments.
			if inWord && strings.Trim(w.String(), "0123456789") == "" {
				w.Reset()
				inWord = false
			}
			endWord()
			for i+1 < len(s) && strings.IndexByte("<>&|", s[i+1]) >= 0 {
				i++
			}
			for i+1 < len(s) && (s[i+1] == ' ' || s[i+1] == '\t') {
				i++
			}
			redirect = true
		case '\'', '"':
			// What a package name needs of quotes: their text, verbatim
			// ($ in it is refused later, not expanded).
			j := strings.IndexByte(s[i+1:], c)
			if j < 0 {
				return nil, errors.New("unterminated quote")
			}
			w.WriteString(s[i+1 : i+1+j])
			inWord = true
			i += j + 1
		default:
			w.WriteByte(c)
			inWord = true
		}
	}
	endCmd()
	return cmds, nil
}

// installArgs returns the manager and package names of a command that
// installs packages, "" for any other command.
func installArgs(argv []string) (manager string, pkgs []string, err error) {
	// Words that may come before a command, and the options of apk and
	// apt that take a value as the next word.
	shellPrefixes := []string{"sudo", "env", "exec", "time", "then", "do", "else", "!", "{"}
	apkValueOpts := []string{"-X", "--repository", "-t", "--virtual", "-p", "--root", "--arch", "--keys-dir", "--cache-dir", "--repositories-file"}
	aptValueOpts := []string{"-o", "--option", "-t", "--target-release", "--default-release", "-c", "--config-file", "-a", "--host-architecture"}
	for len(argv) > 0 && (slices.Contains(shellPrefixes, argv[0]) || strings.Contains(argv[0], "=") && !strings.HasPrefix(argv[0], "-")) {
		argv = argv[1:]
	}
	if len(argv) == 0 {
		return "", nil, nil
	}
	prog := argv[0]
	if i := strings.LastIndexByte(prog, '/'); i >= 0 {
		prog = prog[i+1:]
	}
	var sub string
	var valueOpts []string
	switch prog {
	case "apk":
		manager, sub, valueOpts = ManagerApk, "add", apkValueOpts
	case "apt-get", "apt":
		manager, sub, valueOpts = ManagerApt, "install", aptValueOpts
	default:
		return "", nil, nil
	}
	rest := argv[1:]
	found := false
	for i := 0; i < len(rest); i++ {
		a := rest[i]
		switch {
		case slices.Contains(valueOpts, a):
			i++
		case strings.HasPrefix(a, "-"):
		case !found:
			if a != sub {
				return "", nil, nil // apk update, apt-get update, ...
			}
			found = true
		default:
			if strings.ContainsAny(a, "$`*?[]{}<>~\\") {
				return "", nil, fmt.Errorf("%s %s: package %q needs a shell to expand; list packages literally", prog, sub, a)
			}
			pkgs = append(pkgs, a)
		}
	}
	if !found {
		return "", nil, nil
	}
	return manager, pkgs, nil
}
