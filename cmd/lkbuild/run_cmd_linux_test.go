package main

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/lkbuild/lkbuild/builder"
	"github.com/lkbuild/lkbuild/sandbox"
)

// TestMain lets the test binary serve as the sandbox init, as lkbuild's
// main does.
func TestMain(m *testing.M) {
	sandbox.MaybeInit(os.Args)
	builder.MaybeRunStep(os.Args)
	os.Exit(m.Run())
}

// shellRootfs makes a minimal rootfs holding the host's dash and the C
// library it needs.
func shellRootfs(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	for src, dst := range map[string]string{
		"/usr/bin/dash":                   "bin/sh",
		"/lib/x86_64-linux-gnu/libc.so.6": "lib/x86_64-linux-gnu/libc.so.6",
		"/lib64/ld-linux-x86-64.so.2":     "lib64/ld-linux-x86-64.so.2",
	} {
		in, err := os.Open(src)
		if err != nil {
			t.Fatalf("host file for the test rootfs: %v", err)
		}
		p := filepath.Join(root, dst)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		out, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY, 0o755)
		if err != nil {
			t.Fatal(err)
		}
		_, err = io.Copy(out, in)
		in.Close()
		if cerr := out.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestRunPassesExitStatus(t *testing.T) {
	root := shellRootfs(t)
	shared := t.TempDir()
	tests := []struct {
		name   string
		args   []string
		code   int
		stdout string
	}{
		{"success", []string{"--", "/bin/sh", "-c", "echo inside"}, 0, "inside\n"},
		{"exit status", []string{"--", "/bin/sh", "-c", "exit 7"}, 7, ""},
		{"signal", []string{"--", "/bin/sh", "-c", "kill -9 $$"}, 137, ""},
		{"env and workdir", []string{"--env", "FOO=bar", "--workdir", "/lib64", "--", "/bin/sh", "-c", `test "$FOO" = bar && test "$PWD" = /lib64 && exit 3`}, 3, ""},
		{"bind", []string{"--bind", shared + ":/shared", "--", "/bin/sh", "-c", "echo hi > /shared/f"}, 0, ""},
		{"missing program", []string{"--", "no-such-program"}, 127, ""},
		{"not a program", []string{"--", "/lib64/ld-linux-x86-64.so.2/x"}, 126, ""},
		{"no command", []string{}, 1, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			args := append([]string{"lkbuild", "--cache-dir", t.TempDir(), "run", "--rootfs", root}, tt.args...)
			if code := run(args, &stdout, &stderr); code != tt.code {
				t.Fatalf("exit %d, want %d; stderr:\n%s", code, tt.code, stderr.String())
			}
			if stdout.String() != tt.stdout {
				t.Errorf("stdout %q, want %q", stdout.String(), tt.stdout)
			}
		})
	}
	if b, err := os.ReadFile(filepath.Join(shared, "f")); err != nil || string(b) != "hi\n" {
		t.Errorf("bind: %q, %v", b, err)
	}
}
