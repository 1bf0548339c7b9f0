package boottest

import (
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// fakeTree makes an unpacked kernel.tar with modules and a fake busybox.
func fakeTree(t *testing.T) (tree, busybox string) {
	t.Helper()
	dir := t.TempDir()
	tree = filepath.Join(dir, "tree")
	mods := filepath.Join(tree, "lib", "modules", "6.6.1-linuxkit", "kernel", "lib")
	if err := os.MkdirAll(mods, 0o755); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(mods, "crc7.ko"), []byte("crc7 module"))
	write(t, filepath.Join(mods, "packed.ko.xz"), xzBytes(t, []byte("packed module")))
	busybox = filepath.Join(dir, "busybox")
	write(t, busybox, []byte("fake busybox"))
	return tree, busybox
}

func write(t *testing.T, name string, data []byte) {
	t.Helper()
	if err := os.WriteFile(name, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func xzBytes(t *testing.T, data []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := xz.NewWriter(&buf)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(data)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// readInitramfs gunzips and parses an image into name -> entry.
func readInitramfs(t *testing.T, img []byte) map[string]cpioEntry {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(img))
	if err != nil {
		t.Fatal(err)
	}
	if !zr.ModTime.IsZero() || zr.Name != "" {
		t.Errorf("gzip header has mtime %v, name %q", zr.ModTime, zr.Name)
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	entries, _, err := readCPIO(raw)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]cpioEntry{}
	for i, e := range entries {
		if i > 0 && entries[i-1].name >= e.name {
			t.Errorf("%q after %q: not sorted", e.name, entries[i-1].name)
		}
		m[e.name] = e
	}
	return m
}

func TestInitramfs(t *testing.T) {
	tree, busybox := fakeTree(t)
	outOfTree := filepath.Join(t.TempDir(), "hello.ko")
	write(t, outOfTree, []byte("out of tree"))
	hostFile := filepath.Join(t.TempDir(), "motd")
	write(t, hostFile, []byte("hello\n"))
	spec := InitramfsSpec{
		Busybox:    busybox,
		ModuleTree: tree,
		Modules: []Module{
			{Path: "kernel/lib/crc7.ko"},
			{Path: "/kernel/lib/packed.ko.xz", Params: []string{"a=1", "b=two words"}},
			{HostPath: outOfTree},
			{Name: "raw", Data: []byte("raw bytes")},
			{Guest: "/lib/modules/nosuch.ko"},
		},
		Commands: []string{"cat /etc/motd", "exit 3"},
		Files: []File{
			{Path: "/etc/motd", HostPath: hostFile},
			{Path: "usr/local/bin/tool", Data: []byte("#!/bin/sh\n"), Mode: 0o755},
		},
	}
	var first bytes.Buffer
	if err := Initramfs(&first, spec); err != nil {
		t.Fatal(err)
	}
	// Host timestamps must not reach the image.
	later := time.Now().Add(time.Hour)
	for _, p := range []string{busybox, outOfTree, hostFile} {
		if err := os.Chtimes(p, later, later); err != nil {
			t.Fatal(err)
		}
	}
	var second bytes.Buffer
	if err := Initramfs(&second, spec); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(first.Bytes(), second.Bytes()) {
		t.Error("the same spec gave two different images")
	}

	m := readInitramfs(t, first.Bytes())
	want := []struct {
		name string
		mode uint32
		data string
	}{
		{"bin", cpioDir | 0o755, ""},
		{"bin/busybox", cpioReg | 0o755, "fake busybox"},
		{"bin/sh", cpioSymlink | 0o777, "busybox"},
		{"bin/mount", cpioSymlink | 0o777, "busybox"},
		{"bin/poweroff", cpioSymlink | 0o777, "busybox"},
		{"dev/console", cpioChar | 0o600, ""},
		{"proc", cpioDir | 0o555, ""},
		{"sys", cpioDir | 0o555, ""},
		{"boottest/modules/00-crc7.ko", cpioReg | 0o644, "crc7 module"},
		{"boottest/modules/01-packed.ko", cpioReg | 0o644, "packed module"},
		{"boottest/modules/02-hello.ko", cpioReg | 0o644, "out of tree"},
		{"boottest/modules/03-raw.ko", cpioReg | 0o644, "raw bytes"},
		{"etc", cpioDir | 0o755, ""},
		{"etc/motd", cpioReg | 0o644, "hello\n"},
		{"usr/local", cpioDir | 0o755, ""},
		{"usr/local/bin/tool", cpioReg | 0o755, "#!/bin/sh\n"},
		{"init", cpioReg | 0o755, ""},
	}
	for _, w := range want {
		e, ok := m[w.name]
		if !ok {
			t.Errorf("no %s in the image", w.name)
			continue
		}
		if e.mode != w.mode {
			t.Errorf("%s: mode %o, want %o", w.name, e.mode, w.mode)
		}
		if w.data != "" && string(e.data) != w.data {
			t.Errorf("%s holds %q, want %q", w.name, e.data, w.data)
		}
	}
	if c := m["dev/console"]; c.rmajor != 5 || c.rmin != 1 {
		t.Errorf("dev/console is %d:%d, want 5:1", c.rmajor, c.rmin)
	}
	if _, ok := m["lib/modules/nosuch.ko"]; ok {
		t.Error("a Guest module was added to the image")
	}

	// /init loads the modules in the given order, then runs the commands.
	init := string(m["init"].data)
	var last int
	for _, step := range []string{
		"mount -t devtmpfs devtmpfs /dev",
		`echo "BOOTTEST start"`,
		"insmod /boottest/modules/00-crc7.ko\n",
		"insmod /boottest/modules/01-packed.ko a=1 'b=two words'\n",
		`echo "BOOTTEST insmod packed ok"`,
		"insmod /boottest/modules/02-hello.ko\n",
		"insmod /boottest/modules/03-raw.ko\n",
		"insmod /lib/modules/nosuch.ko\n",
		`echo "BOOTTEST insmod nosuch failed: $rc"`,
		"cat /etc/motd\n",
		`echo "BOOTTEST command 0 exit $rc"`,
		"exit 3\n",
		`echo "BOOTTEST command 1 exit $rc"`,
		`echo "BOOTTEST done"`,
		"poweroff -f",
	} {
		i := strings.Index(init[last:], step)
		if i < 0 {
			t.Fatalf("/init has no %q after offset %d:\n%s", step, last, init)
		}
		last += i + len(step)
	}
}

func TestInitramfsErrors(t *testing.T) {
	tree, busybox := fakeTree(t)
	twoReleases := t.TempDir()
	for _, r := range []string{"6.1.0", "6.6.1"} {
		if err := os.MkdirAll(filepath.Join(twoReleases, "lib", "modules", r), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name     string
		spec     InitramfsSpec
		notExist bool // errors.Is(err, fs.ErrNotExist)
	}{
		{"no busybox", InitramfsSpec{Busybox: filepath.Join(tree, "nosuch")}, true},
		{"module from nowhere", InitramfsSpec{Modules: []Module{{Name: "x"}}}, false},
		{"module from two places", InitramfsSpec{ModuleTree: tree, Modules: []Module{{Path: "kernel/lib/crc7.ko", Data: []byte("x")}}}, false},
		{"data without a name", InitramfsSpec{Modules: []Module{{Data: []byte("x")}}}, false},
		{"name with a space", InitramfsSpec{Modules: []Module{{Name: "a b", Data: []byte("x")}}}, false},
		{"path without a tree", InitramfsSpec{Modules: []Module{{Path: "kernel/lib/crc7.ko"}}}, false},
		{"missing module", InitramfsSpec{ModuleTree: tree, Modules: []Module{{Path: "kernel/lib/nosuch.ko"}}}, true},
		{"module path escapes", InitramfsSpec{ModuleTree: tree, Modules: []Module{{Path: "../../../../etc/passwd"}}}, false},
		{"missing release", InitramfsSpec{ModuleTree: tree, Release: "5.0", Modules: []Module{{Path: "kernel/lib/crc7.ko"}}}, true},
		{"two releases", InitramfsSpec{ModuleTree: twoReleases, Modules: []Module{{Path: "kernel/lib/crc7.ko"}}}, false},
		{"missing host module", InitramfsSpec{Modules: []Module{{HostPath: filepath.Join(tree, "nosuch.ko")}}}, true},
		{"bad xz", InitramfsSpec{Modules: []Module{{HostPath: writeTemp(t, "bad.ko.xz", "not xz")}}}, false},
		{"file escapes", InitramfsSpec{Files: []File{{Path: "/../etc/x", Data: []byte("x")}}}, false},
		{"file over init", InitramfsSpec{Files: []File{{Path: "/init", Data: []byte("x")}}}, false},
		{"file under a file", InitramfsSpec{Files: []File{{Path: "/bin/busybox/x", Data: []byte("x")}}}, false},
		{"file without contents", InitramfsSpec{Files: []File{{Path: "/x"}}}, false},
		{"missing host file", InitramfsSpec{Files: []File{{Path: "/x", HostPath: filepath.Join(tree, "nosuch")}}}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.spec.Busybox == "" {
				tt.spec.Busybox = busybox
			}
			err := Initramfs(io.Discard, tt.spec)
			if err == nil {
				t.Fatal("no error")
			}
			if got := errors.Is(err, fs.ErrNotExist); got != tt.notExist {
				t.Errorf("errors.Is(%v, fs.ErrNotExist) = %v, want %v", err, got, tt.notExist)
			}
		})
	}
}

func writeTemp(t *testing.T, name, data string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	write(t, p, []byte(data))
	return p
}

func TestDecompressModule(t *testing.T) {
	plain := []byte("\x7fELF module")
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(plain)
	zw.Close()
	enc, err := zstd.NewWriter(nil)
	if err != nil {
		t.Fatal(err)
	}
	zst := enc.EncodeAll(plain, nil)
	enc.Close()
	for _, tt := range []struct {
		name string
		data []byte
	}{
		{"m.ko", plain},
		{"m.ko.xz", xzBytes(t, plain)},
		{"m.ko.gz", gz.Bytes()},
		{"m.ko.zst", zst},
	} {
		got, err := decompressModule(tt.name, tt.data)
		if err != nil {
			t.Errorf("%s: %v", tt.name, err)
			continue
		}
		if !bytes.Equal(got, plain) {
			t.Errorf("%s: got %q", tt.name, got)
		}
	}
}
