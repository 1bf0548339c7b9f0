package sandbox

import (
	"bufio"
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestSandboxTerminal runs the tool on a pty: it must be the session
// leader with the pty as its controlling terminal and the size given; a
// Ctrl-C typed into the pty reaches it as SIGINT and a resize as
// SIGWINCH with the new size.
func TestSandboxTerminal(t *testing.T) {
	root := tinyRootfs(t)
	tests := []struct {
		name  string
		await string
		poke  func(in io.Writer, resize chan<- WindowSize)
		want  string
	}{
		{"ctrl-c", "INT", func(in io.Writer, _ chan<- WindowSize) { in.Write([]byte{3}) }, "^Cgot interrupt size=33x101"}, // the pty echoes the ^C
		{"resize", "WINCH", func(_ io.Writer, r chan<- WindowSize) { r <- WindowSize{Rows: 40, Cols: 120} }, "got window changed size=40x120"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inR, inW := io.Pipe()
			outR, outW := io.Pipe()
			resize := make(chan WindowSize, 1)
			spec := Spec{
				Rootfs: root, StateDir: t.TempDir(),
				Args:  []string{toolName, "term", "await", tt.await},
				Env:   []string{testPath},
				Stdin: inR, Stdout: outW,
				Terminal: &Terminal{Size: WindowSize{Rows: 33, Cols: 101}, Resize: resize},
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			done := make(chan error, 1)
			go func() {
				err := Run(ctx, spec)
				outW.Close()
				done <- err
			}()
			var lines []string
			sc := bufio.NewScanner(outR)
			for sc.Scan() {
				l := strings.TrimRight(sc.Text(), "\r")
				lines = append(lines, l)
				if l == "ready" {
					tt.poke(inW, resize)
				}
			}
			if err := <-done; err != nil {
				t.Fatalf("run: %v; output %q", err, lines)
			}
			want := []string{"tty=true ctty=true leader=true console=true size=33x101", "ready", tt.want}
			if strings.Join(lines, "\n") != strings.Join(want, "\n") {
				t.Errorf("output %q, want %q", lines, want)
			}
		})
	}
}

func TestRawMode(t *testing.T) {
	var cooked unix.Termios
	cooked.Iflag = unix.ICRNL | unix.IXON | unix.BRKINT
	cooked.Oflag = unix.OPOST | unix.ONLCR
	cooked.Lflag = unix.ECHO | unix.ICANON | unix.ISIG | unix.IEXTEN | unix.ECHOE
	cooked.Cflag = unix.CS7 | unix.PARENB | unix.CREAD
	raw := rawMode(cooked)
	tests := []struct {
		name      string
		got, want uint32
	}{
		{"iflag", raw.Iflag, 0},
		{"oflag", raw.Oflag, unix.ONLCR},
		// ECHOE means nothing without ICANON and stays, as cfmakeraw
		// leaves it.
		{"lflag", raw.Lflag, unix.ECHOE},
		{"cflag", raw.Cflag, unix.CS8 | unix.CREAD},
		{"vmin", uint32(raw.Cc[unix.VMIN]), 1},
		{"vtime", uint32(raw.Cc[unix.VTIME]), 0},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s = %#o, want %#o", tt.name, tt.got, tt.want)
		}
	}
}
