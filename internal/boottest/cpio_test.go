package boottest

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/lkbuild/lkbuild/internal/testenv"
)

// cpioHeader is a parsed newc header; readCPIO checks the fields the
// writer promises to fix (uid, gid, mtime, check).
type cpioHeader struct {
	ino, mode, uid, gid, nlink, mtime, size, major, minor, rmajor, rminor, namesize, check uint32
}

// readCPIO parses a newc archive independently of the writer's code and
// returns its members up to the trailer.
func readCPIO(data []byte) ([]cpioEntry, []cpioHeader, error) {
	var out []cpioEntry
	var hdrs []cpioHeader
	off := 0
	for {
		if len(data)-off < 110 {
			return nil, nil, fmt.Errorf("short header at %d", off)
		}
		h := data[off : off+110]
		if string(h[:6]) != "070701" {
			return nil, nil, fmt.Errorf("bad magic %q at %d", h[:6], off)
		}
		var f [13]uint32
		for i := range f {
			v, err := strconv.ParseUint(string(h[6+8*i:14+8*i]), 16, 32)
			if err != nil {
				return nil, nil, fmt.Errorf("field %d at %d: %w", i, off, err)
			}
			f[i] = uint32(v)
		}
		hd := cpioHeader{f[0], f[1], f[2], f[3], f[4], f[5], f[6], f[7], f[8], f[9], f[10], f[11], f[12]}
		off += 110
		if hd.namesize == 0 || off+int(hd.namesize) > len(data) || data[off+int(hd.namesize)-1] != 0 {
			return nil, nil, fmt.Errorf("bad name at %d", off)
		}
		name := string(data[off : off+int(hd.namesize)-1])
		off += int(hd.namesize)
		off = (off + 3) &^ 3
		if off+int(hd.size) > len(data) {
			return nil, nil, fmt.Errorf("%s: short data", name)
		}
		body := data[off : off+int(hd.size)]
		off += int(hd.size)
		off = (off + 3) &^ 3
		if name == "TRAILER!!!" {
			if off != len(data) {
				return nil, nil, fmt.Errorf("%d bytes after the trailer", len(data)-off)
			}
			return out, hdrs, nil
		}
		e := cpioEntry{name: name, mode: hd.mode, rmajor: hd.rmajor, rmin: hd.rminor}
		if len(body) > 0 {
			e.data = append([]byte(nil), body...)
		}
		out = append(out, e)
		hdrs = append(hdrs, hd)
	}
}

func TestWriteCPIORoundTrip(t *testing.T) {
	tests := []struct {
		name    string
		entries []cpioEntry
	}{
		{"empty", nil},
		{"padding", []cpioEntry{
			// Name and data lengths that hit every padding width.
			{name: "a", mode: cpioReg | 0o644},
			{name: "ab", mode: cpioReg | 0o644, data: []byte("1")},
			{name: "abc", mode: cpioReg | 0o644, data: []byte("12")},
			{name: "abcd", mode: cpioReg | 0o600, data: []byte("123")},
			{name: "abcde", mode: cpioReg | 0o755, data: []byte("1234")},
		}},
		{"kinds", []cpioEntry{
			{name: "bin", mode: cpioDir | 0o755},
			{name: "bin/busybox", mode: cpioReg | 0o755, data: []byte("\x7fELF...")},
			{name: "bin/sh", mode: cpioSymlink | 0o777, data: []byte("busybox")},
			{name: "dev", mode: cpioDir | 0o755},
			{name: "dev/console", mode: cpioChar | 0o600, rmajor: 5, rmin: 1},
			{name: "tmp", mode: cpioDir | 0o1777},
			{name: "usr/bin/su", mode: cpioReg | 0o4755, data: []byte("x")},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Reversed input: the archive is sorted whatever the order.
			in := append([]cpioEntry(nil), tt.entries...)
			for i, j := 0, len(in)-1; i < j; i, j = i+1, j-1 {
				in[i], in[j] = in[j], in[i]
			}
			var buf bytes.Buffer
			if err := writeCPIO(&buf, in); err != nil {
				t.Fatal(err)
			}
			got, hdrs, err := readCPIO(buf.Bytes())
			if err != nil {
				t.Fatal(err)
			}
			want := append([]cpioEntry(nil), tt.entries...)
			sort.Slice(want, func(i, j int) bool { return want[i].name < want[j].name })
			if len(want) == 0 {
				want = nil
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("read back\n%+v\nwant\n%+v", got, want)
			}
			for i, h := range hdrs {
				if h.uid != 0 || h.gid != 0 || h.mtime != 0 || h.check != 0 || h.ino != uint32(i+1) {
					t.Errorf("%s: header %+v, want uid, gid, mtime, check 0 and ino %d", got[i].name, h, i+1)
				}
			}
			var again bytes.Buffer
			if err := writeCPIO(&again, tt.entries); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(buf.Bytes(), again.Bytes()) {
				t.Error("two writes of the same entries differ")
			}
		})
	}
}

func TestWriteCPIOErrors(t *testing.T) {
	tests := []struct {
		name    string
		entries []cpioEntry
	}{
		{"duplicate", []cpioEntry{{name: "a", mode: cpioReg}, {name: "a", mode: cpioDir}}},
		{"absolute", []cpioEntry{{name: "/a", mode: cpioReg}}},
		{"empty name", []cpioEntry{{name: "", mode: cpioReg}}},
		{"nul in name", []cpioEntry{{name: "a\x00b", mode: cpioReg}}},
		{"directory with data", []cpioEntry{{name: "d", mode: cpioDir, data: []byte("x")}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := writeCPIO(&bytes.Buffer{}, tt.entries); err == nil {
				t.Error("no error")
			}
		})
	}
}

// TestWriteCPIOWithCpioTool reads an archive back with GNU cpio, an
// implementation that shares no code with ours.
func TestWriteCPIOWithCpioTool(t *testing.T) {
	cpio := testenv.LookPath(t, "cpio", "cpio")
	entries := []cpioEntry{
		{name: "bin", mode: cpioDir | 0o755},
		{name: "bin/sh", mode: cpioSymlink | 0o777, data: []byte("busybox")},
		{name: "bin/busybox", mode: cpioReg | 0o755, data: []byte("not really busybox\n")},
		{name: "dev", mode: cpioDir | 0o755},
		{name: "dev/console", mode: cpioChar | 0o600, rmajor: 5, rmin: 1},
		{name: "etc/odd name", mode: cpioReg | 0o644, data: []byte("abc")},
	}
	var buf bytes.Buffer
	if err := writeCPIO(&buf, entries); err != nil {
		t.Fatal(err)
	}
	archive := filepath.Join(t.TempDir(), "a.cpio")
	if err := os.WriteFile(archive, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(cpio, args...)
		in, err := os.Open(archive)
		if err != nil {
			t.Fatal(err)
		}
		defer in.Close()
		cmd.Stdin = in
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("cpio %s: %v: %s", strings.Join(args, " "), err, stderr.Bytes())
		}
		return string(out)
	}
	if got, want := run("-i", "-t", "--quiet"), "bin\nbin/busybox\nbin/sh\ndev\ndev/console\netc/odd name\n"; got != want {
		t.Errorf("cpio -t listed\n%s\nwant\n%s", got, want)
	}
	if got := run("-i", "--quiet", "--to-stdout", "bin/busybox"); got != "not really busybox\n" {
		t.Errorf("bin/busybox holds %q", got)
	}
	verbose := run("-i", "-t", "-v", "--quiet", "--numeric-uid-gid")
	for _, want := range []string{"bin/sh -> busybox", "crw-------   1 0        0          5,   1", "-rwxr-xr-x   1 0        0              19"} {
		if !strings.Contains(verbose, want) {
			t.Errorf("cpio -tv shows no %q:\n%s", want, verbose)
		}
	}
}

func FuzzWriteCPIO(f *testing.F) {
	f.Add("bin/sh", []byte("busybox"), uint32(cpioSymlink|0o777))
	f.Add("a", []byte{}, uint32(cpioReg|0o644))
	f.Add("odd/name with spaces", []byte("12345"), uint32(cpioReg|0o4755))
	f.Fuzz(func(t *testing.T, name string, data []byte, mode uint32) {
		e := cpioEntry{name: name, mode: mode, data: data}
		if len(data) == 0 {
			e.data = nil
		}
		var buf bytes.Buffer
		if err := writeCPIO(&buf, []cpioEntry{e}); err != nil {
			return // names and modes the writer refuses
		}
		got, _, err := readCPIO(buf.Bytes())
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 || !reflect.DeepEqual(got[0], e) {
			t.Fatalf("read back %+v, want %+v", got, e)
		}
	})
}
