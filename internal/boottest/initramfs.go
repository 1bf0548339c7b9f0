// This file is long because it writes a whole newc initramfs in Go: the
// cpio format, the busybox /init and the module markers the boot tests
// look for.

package boottest

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// DefaultBusybox is where Debian's busybox-static package installs its
// statically linked busybox.
const DefaultBusybox = "/bin/busybox"

// InitramfsSpec says what goes into an initramfs.
type InitramfsSpec struct {
	// Busybox is the host path of a statically linked busybox; the default
	// is DefaultBusybox (Debian package busybox-static).
	Busybox string

	// ModuleTree is the host directory of an unpacked kernel.tar: it holds
	// lib/modules/<release>/. Modules with a Path are taken from it.
	ModuleTree string

	// Release picks lib/modules/<release> in ModuleTree. The default is
	// the only directory there.
	Release string

	// Modules are loaded with insmod in this order, each reporting a
	// marker line. The caller lists dependencies before the modules that
	// need them.
	Modules []Module

	// Commands are shell commands that /init runs after the modules, one
	// at a time, each reporting its exit status.
	Commands []string

	// Files are extra files for the image.
	Files []File
}

// Module is a kernel module for /init to load. Exactly one of Path,
// HostPath, Data and Guest says where it comes from. Modules compressed
// with xz, gzip or zstd (.ko.xz, .ko.gz, .ko.zst) are decompressed into
// the image, since busybox's insmod reads only plain ELF.
type Module struct {
	// Name labels the marker lines. The default is the file name without
	// .ko and a compression suffix.
	Name string

	// Path is relative to lib/modules/<release>/ in
	// InitramfsSpec.ModuleTree, e.g. "kernel/lib/crc7.ko".
	Path string

	// HostPath is a module file on the host, such as an out-of-tree .ko.
	HostPath string

	// Data is the module's contents; Name must be set with it.
	Data []byte

	// Guest is the path of a module inside the image, put there by Files
	// or not at all: insmod gets it as it is.
	Guest string

	// Params are insmod's module parameters, e.g. "debug=1".
	Params []string
}

// File is an extra file for the image: its contents come from HostPath or
// Data.
type File struct {
	// Path is where the file goes in the image, e.g. "/etc/motd". Missing
	// parent directories are created.
	Path string

	// HostPath is read when Data is nil.
	HostPath string

	// Data is the file's contents.
	Data []byte

	// Mode holds the permission bits; 0 means 0644.
	Mode fs.FileMode
}

// Initramfs writes a gzip-compressed newc cpio archive for Boot: busybox
// with the symlinks /init needs, /dev/console, the modules, the extra
// files, and an /init script that mounts proc, sysfs and devtmpfs, prints
// "BOOTTEST start", loads the modules, runs the commands, prints "BOOTTEST
// done" and powers the machine off. The output depends only on the spec
// and the files' contents: members are sorted and get uid 0 and mtime 0.
func Initramfs(w io.Writer, spec InitramfsSpec) error {
	entries, err := imageEntries(spec)
	if err != nil {
		return err
	}
	// A zero gzip.Header has no name and mtime 0.
	zw, err := gzip.NewWriterLevel(w, gzip.BestSpeed)
	if err != nil {
		return err
	}
	if err := writeCPIO(zw, entries); err != nil {
		return fmt.Errorf("write initramfs: %w", err)
	}
	if err := zw.Close(); err != nil {
		return fmt.Errorf("write initramfs: %w", err)
	}
	return nil
}

// imageTree collects the members of an image, adding parent directories.
type imageTree struct {
	entries map[string]cpioEntry
}

func (t *imageTree) add(e cpioEntry) error {
	if _, ok := t.entries[e.name]; ok {
		return fmt.Errorf("%q is in the image twice", "/"+e.name)
	}
	for dir := path.Dir(e.name); dir != "."; dir = path.Dir(dir) {
		if d, ok := t.entries[dir]; ok {
			if d.mode&cpioTypeMask != cpioDir {
				return fmt.Errorf("%q: parent %q is not a directory", "/"+e.name, "/"+dir)
			}
			continue
		}
		t.entries[dir] = cpioEntry{name: dir, mode: cpioDir | 0o755}
	}
	t.entries[e.name] = e
	return nil
}

// imagePath turns an absolute or relative path in the image into a cpio
// member name, refusing anything that leaves the root.
func imagePath(p string) (string, error) {
	clean := path.Clean("/" + p)
	if p == "" || clean == "/" || strings.Contains(p, "\x00") {
		return "", fmt.Errorf("bad path in image %q", p)
	}
	for _, el := range strings.Split(strings.TrimPrefix(p, "/"), "/") {
		if el == ".." {
			return "", fmt.Errorf("path in image %q leaves the root", p)
		}
	}
	return strings.TrimPrefix(clean, "/"), nil
}

func imageEntries(spec InitramfsSpec) ([]cpioEntry, error) {
	t := &imageTree{entries: map[string]cpioEntry{}}
	bb := spec.Busybox
	if bb == "" {
		bb = DefaultBusybox
	}
	data, err := os.ReadFile(bb)
	if err != nil {
		return nil, fmt.Errorf("read busybox (Debian package busybox-static): %w", err)
	}
	if err := t.add(cpioEntry{name: "bin/busybox", mode: cpioReg | 0o755, data: data}); err != nil {
		return nil, err
	}
	// The applets /init calls before it installs links for all the rest.
	for _, l := range []string{"mkdir", "mount", "poweroff", "sh"} {
		if err := t.add(cpioEntry{name: "bin/" + l, mode: cpioSymlink | 0o777, data: []byte("busybox")}); err != nil {
			return nil, err
		}
	}
	// The kernel opens /dev/console for init's stdio before /init can
	// mount devtmpfs, so the node has to be in the archive.
	for _, e := range []cpioEntry{
		{name: "dev/console", mode: cpioChar | 0o600, rmajor: 5, rmin: 1},
		{name: "proc", mode: cpioDir | 0o555},
		{name: "sys", mode: cpioDir | 0o555},
		{name: "tmp", mode: cpioDir | 0o1777},
	} {
		if err := t.add(e); err != nil {
			return nil, err
		}
	}

	var release string
	guest := make([]string, len(spec.Modules))
	names := make([]string, len(spec.Modules))
	for i, m := range spec.Modules {
		names[i] = moduleName(m)
		if !safeName(names[i]) {
			return nil, fmt.Errorf("module %d: name %q: want letters, digits and _-.,+@", i, names[i])
		}
		var data []byte
		var src string
		switch {
		case countSet(m.Path != "", m.HostPath != "", m.Data != nil, m.Guest != "") != 1:
			return nil, fmt.Errorf("module %s: set exactly one of Path, HostPath, Data and Guest", names[i])
		case m.Guest != "":
			guest[i] = m.Guest
			continue
		case m.Path != "":
			if spec.ModuleTree == "" {
				return nil, fmt.Errorf("module %s: Path %q needs a ModuleTree", names[i], m.Path)
			}
			if release == "" {
				if release, err = moduleRelease(spec.ModuleTree, spec.Release); err != nil {
					return nil, err
				}
			}
			rel, err := imagePath(m.Path)
			if err != nil {
				return nil, fmt.Errorf("module %s: %w", names[i], err)
			}
			src = filepath.Join(spec.ModuleTree, "lib", "modules", release, filepath.FromSlash(rel))
		case m.HostPath != "":
			src = m.HostPath
		default:
			data = m.Data
		}
		if src != "" {
			if data, err = os.ReadFile(src); err != nil {
				return nil, fmt.Errorf("module %s: %w", names[i], err)
			}
		}
		if data, err = decompressModule(path.Base(filepath.ToSlash(src)), data); err != nil {
			return nil, fmt.Errorf("module %s: %w", names[i], err)
		}
		// Numbered, so two modules of one name (or an in-tree and an
		// out-of-tree build) cannot collide.
		name := fmt.Sprintf("boottest/modules/%02d-%s.ko", i, names[i])
		if err := t.add(cpioEntry{name: name, mode: cpioReg | 0o644, data: data}); err != nil {
			return nil, err
		}
		guest[i] = "/" + name
	}

	for _, f := range spec.Files {
		name, err := imagePath(f.Path)
		if err != nil {
			return nil, err
		}
		data := f.Data
		if data == nil {
			if f.HostPath == "" {
				return nil, fmt.Errorf("file %q: neither Data nor HostPath", f.Path)
			}
			if data, err = os.ReadFile(f.HostPath); err != nil {
				return nil, fmt.Errorf("file %q: %w", f.Path, err)
			}
		}
		mode := f.Mode
		if mode == 0 {
			mode = 0o644
		}
		if err := t.add(cpioEntry{name: name, mode: cpioReg | cpioPerm(mode), data: data}); err != nil {
			return nil, err
		}
	}

	script := initScript(names, guest, spec.Modules, spec.Commands)
	if err := t.add(cpioEntry{name: "init", mode: cpioReg | 0o755, data: []byte(script)}); err != nil {
		return nil, err
	}
	out := make([]cpioEntry, 0, len(t.entries))
	for _, e := range t.entries {
		out = append(out, e)
	}
	return out, nil // writeCPIO sorts
}

func countSet(b ...bool) int {
	n := 0
	for _, v := range b {
		if v {
			n++
		}
	}
	return n
}

// moduleName is m.Name or the file name of its source without .ko and a
// compression suffix.
func moduleName(m Module) string {
	if m.Name != "" {
		return m.Name
	}
	p := m.Path + m.HostPath + m.Guest // only one is set
	if p == "" {
		return ""
	}
	b := path.Base(filepath.ToSlash(p))
	for _, s := range []string{".xz", ".gz", ".zst"} {
		b = strings.TrimSuffix(b, s)
	}
	return strings.TrimSuffix(b, ".ko")
}

// moduleRelease returns want, or the only directory under
// tree/lib/modules.
func moduleRelease(tree, want string) (string, error) {
	dir := filepath.Join(tree, "lib", "modules")
	if want != "" {
		if _, err := os.Stat(filepath.Join(dir, want)); err != nil {
			return "", fmt.Errorf("module tree: %w", err)
		}
		return want, nil
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return "", fmt.Errorf("module tree: %w", err)
	}
	var found []string
	for _, e := range ents {
		if e.IsDir() {
			found = append(found, e.Name())
		}
	}
	if len(found) != 1 {
		return "", fmt.Errorf("module tree %s has %d releases %q: set Release", dir, len(found), found)
	}
	return found[0], nil
}

// decompressModule decompresses a module by its file name's suffix; other
// data is returned as it is.
func decompressModule(name string, data []byte) ([]byte, error) {
	var r io.Reader
	var err error
	switch {
	case strings.HasSuffix(name, ".xz"):
		r, err = xz.NewReader(bytes.NewReader(data))
	case strings.HasSuffix(name, ".gz"):
		r, err = gzip.NewReader(bytes.NewReader(data))
	case strings.HasSuffix(name, ".zst"):
		var d *zstd.Decoder
		if d, err = zstd.NewReader(bytes.NewReader(data), zstd.WithDecoderConcurrency(1)); err == nil {
			defer d.Close()
			r = d
		}
	default:
		return data, nil
	}
	if err != nil {
		return nil, fmt.Errorf("decompress %s: %w", name, err)
	}
	out, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("decompress %s: %w", name, err)
	}
	return out, nil
}

// Marker lines /init prints on the console. Result parses them.
const (
	markerStart  = "BOOTTEST start"
	markerInsmod = "BOOTTEST insmod "
	markerCmd    = "BOOTTEST command "
	markerDone   = "BOOTTEST done"
)

// initScript is /init: names[i] labels the markers of the module at
// guest[i]; names are safeName.
func initScript(names, guest []string, mods []Module, commands []string) string {
	var b strings.Builder
	b.WriteString(`#!/bin/sh
# Written by lkbuild's internal/boottest.
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
/bin/busybox mkdir -p /usr/bin /usr/sbin /sbin
/bin/busybox --install -s 2>/dev/null
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
echo "` + markerStart + `"
`)
	for i := range names {
		fmt.Fprintf(&b, "insmod %s", shellQuote(guest[i]))
		for _, p := range mods[i].Params {
			fmt.Fprintf(&b, " %s", shellQuote(p))
		}
		// Status first: the kernel's own complaint (unknown symbol, bad
		// format) is already on the console above the marker.
		fmt.Fprintf(&b, `
rc=$?
if [ $rc -eq 0 ]; then echo "%[1]s%[2]s ok"; else echo "%[1]s%[2]s failed: $rc"; fi
`, markerInsmod, names[i])
	}
	for i, c := range commands {
		fmt.Fprintf(&b, "(\n%s\n)\nrc=$?\necho \"%s%d exit $rc\"\n", c, markerCmd, i)
	}
	b.WriteString(`echo "` + markerDone + `"
poweroff -f
`)
	return b.String()
}

// safeName reports whether a module name can go into marker lines and
// file names as it is.
func safeName(s string) bool {
	return s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.,+@") == ""
}

// shellQuote quotes s as one word for sh.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.,/=:+@") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
