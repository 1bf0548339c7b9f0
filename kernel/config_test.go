package kernel

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

const storedConfig = `#
# Automatically generated file; DO NOT EDIT.
# Linux/x86 6.6.71 Kernel Configuration
#
CONFIG_CC_VERSION_TEXT="gcc (Alpine 14.2.0) 14.2.0"
CONFIG_LOCALVERSION="-linuxkit"
# CONFIG_LOCALVERSION_AUTO is not set
CONFIG_PANIC_ON_OOPS=y
CONFIG_PANIC_ON_OOPS_VALUE=1
`

func TestAssembleConfig(t *testing.T) {
	dbg := "\n\n## LinuxKit DEBUG OPTIONS ##\n\nCONFIG_LOCKDEP=y\nCONFIG_PANIC_ON_OOPS=y\n"
	for _, tc := range []struct {
		name  string
		parts ConfigParts
		want  string
		lv    string
	}{
		{
			name:  "plain kernel keeps the stored config byte for byte",
			parts: ConfigParts{Stored: []byte(storedConfig)},
			want:  storedConfig,
			lv:    "-linuxkit",
		},
		{
			name:  "debug sets local version, turns panic on oops off, appends config-dbg untouched",
			parts: ConfigParts{Stored: []byte(storedConfig), Debug: true, DebugFragment: []byte(dbg)},
			want: strings.NewReplacer(
				`CONFIG_LOCALVERSION="-linuxkit"`, `CONFIG_LOCALVERSION="-linuxkit-dbg"`,
				"CONFIG_PANIC_ON_OOPS=y\n", "# CONFIG_PANIC_ON_OOPS is not set\n",
			).Replace(storedConfig) + dbg,
			lv: "-linuxkit-dbg",
		},
		{
			name:  "variant fragment is appended before the substitution, which reaches it",
			parts: ConfigParts{Stored: []byte("CONFIG_A=y\n"), Variant: []byte("CONFIG_LOCALVERSION=\"-linuxkit\"\nCONFIG_PREEMPT_RT=y\n"), Extra: "-rt"},
			want:  "CONFIG_A=y\nCONFIG_LOCALVERSION=\"-linuxkit-rt\"\nCONFIG_PREEMPT_RT=y\n",
			lv:    "-linuxkit-rt",
		},
		{
			name: "variant and debug",
			parts: ConfigParts{
				Stored: []byte(storedConfig), Variant: []byte("CONFIG_PREEMPT_RT=y\n"), Extra: "-rt",
				Debug: true, DebugFragment: []byte("CONFIG_KGDB=y\n"),
			},
			want: strings.NewReplacer(
				`CONFIG_LOCALVERSION="-linuxkit"`, `CONFIG_LOCALVERSION="-linuxkit-rt-dbg"`,
				"CONFIG_PANIC_ON_OOPS=y\n", "# CONFIG_PANIC_ON_OOPS is not set\n",
			).Replace(storedConfig) + "CONFIG_PREEMPT_RT=y\nCONFIG_KGDB=y\n",
			lv: "-linuxkit-rt-dbg",
		},
		{
			// sed only replaces the exact text; another local version stays.
			name:  "other local version is left alone",
			parts: ConfigParts{Stored: []byte("CONFIG_LOCALVERSION=\"-custom\"\n"), Debug: true},
			want:  "CONFIG_LOCALVERSION=\"-custom\"\n",
			lv:    "-linuxkit-dbg",
		},
		{
			// s/old/new/ without g: once per line, on every line.
			name:  "first match of each line",
			parts: ConfigParts{Stored: []byte("CONFIG_PANIC_ON_OOPS=y CONFIG_PANIC_ON_OOPS=y\nx CONFIG_PANIC_ON_OOPS=y\n"), Debug: true},
			want:  "# CONFIG_PANIC_ON_OOPS is not set CONFIG_PANIC_ON_OOPS=y\nx # CONFIG_PANIC_ON_OOPS is not set\n",
			lv:    "-linuxkit-dbg",
		},
		{
			// cat >> runs the fragment into a last line without newline.
			name:  "stored config without final newline",
			parts: ConfigParts{Stored: []byte("CONFIG_A=y"), Variant: []byte("CONFIG_B=y\n"), Extra: "-foo"},
			want:  "CONFIG_A=yCONFIG_B=y\n",
			lv:    "-linuxkit-foo",
		},
		{
			name:  "a last line without newline is still substituted",
			parts: ConfigParts{Stored: []byte(`CONFIG_LOCALVERSION="-linuxkit"`), Extra: "-foo"},
			want:  `CONFIG_LOCALVERSION="-linuxkit-foo"`,
			lv:    "-linuxkit-foo",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stored := slices.Clone(tc.parts.Stored)
			got := AssembleConfig(tc.parts)
			if string(got) != tc.want {
				t.Errorf("config:\n%s\nwant:\n%s", got, tc.want)
			}
			if lv := tc.parts.LocalVersion(); lv != tc.lv {
				t.Errorf("local version = %q, want %q", lv, tc.lv)
			}
			if !slices.Equal(tc.parts.Stored, stored) {
				t.Error("AssembleConfig changed its input")
			}
		})
	}
}

func TestCheckFinalConfig(t *testing.T) {
	for _, tc := range []struct {
		name     string
		got      string
		symbols  []string
		inError  []string
		diffHas  []string
		wantNone bool
	}{
		{name: "identical", got: storedConfig, wantNone: true},
		{
			name:    "compiler differs",
			got:     strings.Replace(storedConfig, "gcc (Alpine 14.2.0) 14.2.0", "gcc (Debian 14.2.0-19) 14.2.0", 1),
			symbols: []string{"CONFIG_CC_VERSION_TEXT"},
			inError: []string{"CONFIG_CC_VERSION_TEXT", "compiler"},
			diffHas: []string{
				`-CONFIG_CC_VERSION_TEXT="gcc (Alpine 14.2.0) 14.2.0"`,
				`+CONFIG_CC_VERSION_TEXT="gcc (Debian 14.2.0-19) 14.2.0"`,
			},
		},
		{
			name:    "symbol turned off, symbol added",
			got:     strings.Replace(storedConfig, "CONFIG_PANIC_ON_OOPS=y\n", "# CONFIG_PANIC_ON_OOPS is not set\nCONFIG_NEW=m\n", 1),
			symbols: []string{"CONFIG_PANIC_ON_OOPS", "CONFIG_NEW"},
			inError: []string{"CONFIG_PANIC_ON_OOPS, CONFIG_NEW"},
			diffHas: []string{"-CONFIG_PANIC_ON_OOPS=y", "+# CONFIG_PANIC_ON_OOPS is not set", "+CONFIG_NEW=m"},
		},
		{
			name:    "symbol dropped",
			got:     strings.Replace(storedConfig, "CONFIG_PANIC_ON_OOPS_VALUE=1\n", "", 1),
			symbols: []string{"CONFIG_PANIC_ON_OOPS_VALUE"},
			diffHas: []string{"-CONFIG_PANIC_ON_OOPS_VALUE=1"},
		},
		{
			name:    "comment only",
			got:     strings.Replace(storedConfig, "Linux/x86 6.6.71", "Linux/x86 6.6.72", 1),
			inError: []string{"no symbol"},
			diffHas: []string{"-# Linux/x86 6.6.71 Kernel Configuration"},
		},
		{
			// The same settings in another order: the lines differ, the
			// symbols do not.
			name: "moved line",
			got: strings.Replace(storedConfig, "CONFIG_PANIC_ON_OOPS=y\nCONFIG_PANIC_ON_OOPS_VALUE=1\n",
				"CONFIG_PANIC_ON_OOPS_VALUE=1\nCONFIG_PANIC_ON_OOPS=y\n", 1),
			inError: []string{"no symbol"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckFinalConfig([]byte(storedConfig), []byte(tc.got))
			if tc.wantNone {
				if err != nil {
					t.Fatalf("err = %v", err)
				}
				return
			}
			var m *ConfigMismatchError
			if !errors.As(err, &m) {
				t.Fatalf("err = %v, want a *ConfigMismatchError", err)
			}
			if !slices.Equal(m.Symbols, tc.symbols) {
				t.Errorf("symbols = %q, want %q", m.Symbols, tc.symbols)
			}
			if !strings.HasPrefix(m.Diff, "--- stored config\n+++ built .config\n@@ ") {
				t.Errorf("diff does not start with its header:\n%s", m.Diff)
			}
			for _, s := range tc.diffHas {
				if !strings.Contains(m.Diff, s+"\n") {
					t.Errorf("diff lacks %q:\n%s", s, m.Diff)
				}
			}
			for _, s := range tc.inError {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q lacks %q", err, s)
				}
			}
		})
	}
}

func TestConfigMismatchErrorNamesFileAndShortensList(t *testing.T) {
	var syms []string
	for _, s := range strings.Fields("A B C D E F G H I J") {
		syms = append(syms, "CONFIG_"+s)
	}
	e := &ConfigMismatchError{File: "kernel/6.6.x/config-x86_64", Symbols: syms}
	msg := e.Error()
	for _, want := range []string{"kernel/6.6.x/config-x86_64: ", "CONFIG_A, ", "CONFIG_H and 2 more symbols"} {
		if !strings.Contains(msg, want) {
			t.Errorf("%q lacks %q", msg, want)
		}
	}
	if strings.Contains(msg, "CONFIG_I") {
		t.Errorf("%q lists more than eight symbols", msg)
	}
}

func TestConfigSymbol(t *testing.T) {
	for line, want := range map[string]string{
		"CONFIG_A=y":                 "CONFIG_A",
		`CONFIG_B="x=y"`:             "CONFIG_B",
		"# CONFIG_C is not set":      "CONFIG_C",
		"# Linux/x86 6.6.71":         "",
		"#":                          "",
		"":                           "",
		"# FOO is not set":           "",
		"NOTCONFIG=1":                "",
		"# CONFIG_D is not set, but": "",
	} {
		if got := configSymbol(line); got != want {
			t.Errorf("configSymbol(%q) = %q, want %q", line, got, want)
		}
	}
}
