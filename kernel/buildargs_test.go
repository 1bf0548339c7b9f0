package kernel

import (
	"errors"
	"strings"
	"testing"
)

func TestParseBuildArgs(t *testing.T) {
	in := "KERNEL_VERSION=6.6.71\n" +
		"# comment\n" +
		"\n" +
		"KERNEL_SERIES=6.6.x\n" +
		"  BUILD_IMAGE=linuxkit/alpine:35b33c6b03c40e51046c3b053dd131a68a26c37a  \n" +
		"ZETA=1\n" +
		"ALPHA=a=b \"quoted\"\n" +
		"EMPTY=\n"
	b, err := ParseBuildArgs("k/6.6.x/build-args", strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	want := []BuildArg{
		{"KERNEL_VERSION", "6.6.71", 1},
		{"KERNEL_SERIES", "6.6.x", 4},
		{"BUILD_IMAGE", "linuxkit/alpine:35b33c6b03c40e51046c3b053dd131a68a26c37a", 5},
		{"ZETA", "1", 6},             // unknown keys stay, in file order
		{"ALPHA", `a=b "quoted"`, 7}, // split at the first '=', value verbatim
		{"EMPTY", "", 8},
	}
	if len(b.Args) != len(want) {
		t.Fatalf("got %+v", b.Args)
	}
	for i := range want {
		if b.Args[i] != want[i] {
			t.Errorf("arg %d = %+v, want %+v", i, b.Args[i], want[i])
		}
	}
	if got := b.Get(KeyBuildImage); got != want[2].Value {
		t.Errorf("Get(BUILD_IMAGE) = %q", got)
	}
	if _, ok := b.Lookup("NOPE"); ok {
		t.Error("Lookup(NOPE) found something")
	}
	var nilArgs *BuildArgs
	if nilArgs.Get(KeyKernelVersion) != "" {
		t.Error("Get on nil BuildArgs")
	}
}

func TestParseBuildArgsErrors(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		line     int
		msg      string
	}{
		{"no equals", "KERNEL_VERSION=6.6.71\nKERNEL_SERIES 6.6.x\n", 2, `f:2: "KERNEL_SERIES 6.6.x" is not KEY=VALUE`},
		{"bad key", "KERNEL_VERSION=6.6.71\n\n1ABC=x\n", 3, `f:3: "1ABC" is not a valid build-arg name`},
		{"empty key", "=x\n", 1, `f:1: "" is not a valid build-arg name`},
		{"key with space", "KERNEL VERSION=6.6.71\n", 1, `f:1: "KERNEL VERSION" is not a valid build-arg name`},
		{"duplicate", "KERNEL_VERSION=6.6.71\nA=1\nKERNEL_VERSION=6.6.72\n", 3, "f:3: KERNEL_VERSION is set again (first on line 1)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseBuildArgs("f", strings.NewReader(tc.in))
			var fe *FileError
			if !errors.As(err, &fe) || fe.File != "f" || fe.Line != tc.line || err.Error() != tc.msg {
				t.Errorf("err = %v, want %q", err, tc.msg)
			}
		})
	}
}
