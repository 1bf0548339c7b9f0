package kernel

import (
	"bytes"
	"fmt"
	"strings"
)

// LocalVersionPrefix is the CONFIG_LOCALVERSION every LinuxKit config
// stores; AssembleConfig adds EXTRA and DEBUG to it.
const LocalVersionPrefix = "-linuxkit"

// ConfigParts are the inputs of the config a build installs as the arch's
// defconfig.
type ConfigParts struct {
	// Stored is the series' config-<arch>, the final .config of a plain
	// build.
	Stored []byte
	// Variant is the variant's config-<arch> fragment, appended to Stored;
	// nil when there is none.
	Variant []byte
	// Extra is LinuxKit's EXTRA, the variant suffix ("-rt"), or "".
	Extra string
	// Debug selects the debug kernel: CONFIG_PANIC_ON_OOPS=y is turned off
	// and DebugFragment appended.
	Debug bool
	// DebugFragment is common/config-dbg (config-dbg in the flat layout).
	DebugFragment []byte
}

// LocalVersion is the CONFIG_LOCALVERSION the build sets:
// "-linuxkit<EXTRA><DEBUG>", e.g. "-linuxkit-rt-dbg".
func (p ConfigParts) LocalVersion() string {
	s := LocalVersionPrefix + p.Extra
	if p.Debug {
		s += DebugSuffix
	}
	return s
}

// AssembleConfig returns the bytes to install as the arch's defconfig,
// doing exactly what LinuxKit's Dockerfile does with cp, cat and sed:
//
//  1. the stored config, then the variant fragment appended byte for byte
//     (cat >>: a stored config without a final newline runs into the
//     fragment's first line, as it would there);
//  2. in every line, the first `CONFIG_LOCALVERSION="-linuxkit"` becomes
//     `CONFIG_LOCALVERSION="-linuxkit<EXTRA><DEBUG>"` (sed s///, without
//     g, unanchored). A config that does not hold that exact text keeps its
//     own local version, as upstream's does;
//  3. for DEBUG, in every line the first `CONFIG_PANIC_ON_OOPS=y` becomes
//     `# CONFIG_PANIC_ON_OOPS is not set`, and then the debug fragment is
//     appended, so neither substitution touches it.
//
// One deviation, on purpose: upstream's series-layout Dockerfile looks for
// the fragment at <series>-<EXTRA>/config-<arch>, which with EXTRA=-rt is
// "5.11.x--rt" and never exists, so it never appends one. The flat-layout
// Dockerfile appended config-<series>-<arch><EXTRA>, and the Makefile and
// LINUXKIT-COMPAT.md §3 say the fragment is appended; Series.ConfigFiles
// finds it in either layout and lkbuild appends it.
func AssembleConfig(p ConfigParts) []byte {
	out := make([]byte, 0, len(p.Stored)+len(p.Variant)+len(p.DebugFragment))
	out = append(out, p.Stored...)
	out = append(out, p.Variant...)
	out = replaceFirstPerLine(out,
		`CONFIG_LOCALVERSION="`+LocalVersionPrefix+`"`,
		`CONFIG_LOCALVERSION="`+p.LocalVersion()+`"`)
	if p.Debug {
		out = replaceFirstPerLine(out, "CONFIG_PANIC_ON_OOPS=y", "# CONFIG_PANIC_ON_OOPS is not set")
		out = append(out, p.DebugFragment...)
	}
	return out
}

// replaceFirstPerLine is sed's s/old/new/ for an old and new without
// newlines or special characters: the first match in each line.
func replaceFirstPerLine(data []byte, old, new string) []byte {
	if !bytes.Contains(data, []byte(old)) {
		return data
	}
	var b bytes.Buffer
	b.Grow(len(data) + len(new) - len(old))
	for line := range bytes.Lines(data) {
		if i := bytes.Index(line, []byte(old)); i >= 0 {
			b.Write(line[:i])
			b.WriteString(new)
			b.Write(line[i+len(old):])
			continue
		}
		b.Write(line)
	}
	return b.Bytes()
}

// ConfigMismatchError reports a plain build whose .config, after make
// defconfig and make oldconfig, is not byte for byte the stored config.
// That means the stored config was not saved from this kernel with this
// toolchain (a new symbol got its default, CONFIG_CC_VERSION_TEXT names
// another compiler), and the image would not be the kernel the config
// describes.
type ConfigMismatchError struct {
	// File is the stored config as the user knows it,
	// "kernel/6.6.x/config-x86_64"; "" when unknown.
	File string
	// Symbols are the CONFIG_ symbols set differently (or only on one
	// side), in the order they appear in the diff.
	Symbols []string
	// Diff is a unified diff from the stored config (-) to the built
	// .config (+), for the user to read.
	Diff string
}

func (e *ConfigMismatchError) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File + ": ")
	}
	b.WriteString("the .config of the build differs from the stored config")
	const show = 8
	switch n := len(e.Symbols); {
	case n == 0:
		b.WriteString(" in lines that set no symbol (comments or order)")
	case n <= show:
		fmt.Fprintf(&b, " in %s", strings.Join(e.Symbols, ", "))
	default:
		fmt.Fprintf(&b, " in %s and %d more symbols", strings.Join(e.Symbols[:show], ", "), n-show)
	}
	for _, s := range e.Symbols {
		if s == "CONFIG_CC_VERSION_TEXT" || s == "CONFIG_GCC_VERSION" || s == "CONFIG_CLANG_VERSION" {
			b.WriteString(" (the builder's compiler is not the one the config was saved with)")
			break
		}
	}
	b.WriteString("; save the built .config as the stored config (LinuxKit's kconfig workflow) or build with the toolchain it came from")
	return b.String()
}

// CheckFinalConfig compares the .config a plain build ends up with, got,
// to the stored config, as LinuxKit's `diff -u .config <defconfig>` does.
// It returns nil when they are byte for byte equal and a
// *ConfigMismatchError otherwise.
func CheckFinalConfig(stored, got []byte) error {
	if bytes.Equal(stored, got) {
		return nil
	}
	diff := unifiedDiff("stored config", "built .config", stored, got)
	return &ConfigMismatchError{Symbols: changedSymbols(stored, got, diff), Diff: diff}
}

// configSymbol returns the symbol a .config line sets, "CONFIG_FOO" for
// "CONFIG_FOO=y" and for "# CONFIG_FOO is not set", or "".
func configSymbol(line string) string {
	if rest, ok := strings.CutPrefix(line, "# "); ok {
		if sym, ok := strings.CutSuffix(rest, " is not set"); ok && strings.HasPrefix(sym, "CONFIG_") {
			return sym
		}
		return ""
	}
	if sym, _, ok := strings.Cut(line, "="); ok && strings.HasPrefix(sym, "CONFIG_") {
		return sym
	}
	return ""
}

// configValues maps each symbol to the last line that sets it: kconfig
// reads a config top to bottom, so a later line wins.
func configValues(data []byte) map[string]string {
	m := map[string]string{}
	for line := range strings.Lines(string(data)) {
		line = strings.TrimRight(line, "\n")
		if sym := configSymbol(line); sym != "" {
			m[sym] = line
		}
	}
	return m
}

// changedSymbols lists the symbols of the diff's changed lines whose
// settings differ between stored and got. A line that only moved is in
// the diff but not in the list.
func changedSymbols(stored, got []byte, diff string) []string {
	a, b := configValues(stored), configValues(got)
	var out []string
	seen := map[string]bool{}
	lines := splitLines(diff)
	if len(lines) > 2 {
		lines = lines[2:] // the --- and +++ header
	}
	for _, line := range lines {
		if line[0] != '-' && line[0] != '+' {
			continue
		}
		sym := configSymbol(strings.TrimRight(line[1:], "\n"))
		if sym == "" || seen[sym] {
			continue
		}
		seen[sym] = true
		va, oka := a[sym]
		vb, okb := b[sym]
		if oka != okb || va != vb {
			out = append(out, sym)
		}
	}
	return out
}

// ToolchainSymbols are the config symbols that record the toolchain rather
// than a choice: its names and versions, and what it can link. A cross
// compiler of the same version differs in these only.
func ToolchainSymbols() []string {
	return []string{
		"CONFIG_CC_VERSION_TEXT", "CONFIG_CC_IS_GCC", "CONFIG_GCC_VERSION", "CONFIG_CC_IS_CLANG", "CONFIG_CLANG_VERSION",
		"CONFIG_AS_IS_GNU", "CONFIG_AS_IS_LLVM", "CONFIG_AS_VERSION", "CONFIG_LD_IS_BFD", "CONFIG_LD_IS_LLD",
		"CONFIG_LD_VERSION", "CONFIG_LLD_VERSION", "CONFIG_RUSTC_VERSION", "CONFIG_RUSTC_LLVM_VERSION",
		"CONFIG_PAHOLE_VERSION", "CONFIG_CC_CAN_LINK", "CONFIG_CC_CAN_LINK_STATIC",
	}
}

// withoutToolchain drops the lines that set a ToolchainSymbols symbol.
func withoutToolchain(config []byte) []byte {
	drop := map[string]bool{}
	for _, s := range ToolchainSymbols() {
		drop[s] = true
	}
	var out []byte
	for line := range strings.Lines(string(config)) {
		if !drop[configSymbol(strings.TrimRight(line, "\n"))] {
			out = append(out, line...)
		}
	}
	return out
}
