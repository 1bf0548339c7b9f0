package boottest

import (
	"bufio"
	"fmt"
	"io"
	"io/fs"
	"sort"
	"strings"
)

// Mode type bits of the newc format, the same as the kernel's S_IF* values
// (the kernel's initramfs unpacker reads them, see init/initramfs.c).
const (
	cpioTypeMask = 0o170000
	cpioDir      = 0o040000
	cpioReg      = 0o100000
	cpioSymlink  = 0o120000
	cpioChar     = 0o020000
)

// cpioEntry is one member of a newc archive: a directory, a regular file
// (data), a symbolic link (data is the target) or a character device.
type cpioEntry struct {
	name         string // without a leading slash, e.g. "bin/sh"
	mode         uint32 // type bits | permission bits
	data         []byte
	rmajor, rmin uint32 // device number of a character device
}

// writeCPIO writes entries as a newc ("070701") archive, sorted by name,
// followed by the TRAILER!!! member. Every member gets uid and gid 0, mtime
// 0 and an inode number from its position, so the same entries always give
// the same bytes whatever the host's clock, owner or umask. Names must be
// unique; parents are not added here (see imageTree).
func writeCPIO(w io.Writer, entries []cpioEntry) error {
	sorted := append([]cpioEntry(nil), entries...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].name < sorted[j].name })
	bw := bufio.NewWriter(w)
	for i, e := range sorted {
		if i > 0 && sorted[i-1].name == e.name {
			return fmt.Errorf("cpio: %q twice", e.name)
		}
		if err := writeCPIOMember(bw, uint32(i+1), e); err != nil {
			return err
		}
	}
	if err := writeCPIOMember(bw, 0, cpioEntry{name: "TRAILER!!!"}); err != nil {
		return err
	}
	return bw.Flush()
}

func writeCPIOMember(w *bufio.Writer, ino uint32, e cpioEntry) error {
	if e.name == "" || strings.HasPrefix(e.name, "/") || strings.IndexByte(e.name, 0) >= 0 || (e.name == "TRAILER!!!" && ino != 0) {
		return fmt.Errorf("cpio: bad member name %q", e.name)
	}
	nlink := uint32(1)
	if e.mode&cpioTypeMask == cpioDir {
		nlink = 2
	}
	if e.mode&cpioTypeMask == cpioDir || e.mode&cpioTypeMask == cpioChar {
		if len(e.data) > 0 {
			return fmt.Errorf("cpio: %q: data in a member without contents", e.name)
		}
	}
	// 13 fields of 8 hex digits: ino, mode, uid, gid, nlink, mtime,
	// filesize, devmajor, devminor, rdevmajor, rdevminor, namesize, check.
	namesize := len(e.name) + 1
	hdr := fmt.Sprintf("070701%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x",
		ino, e.mode, 0, 0, nlink, 0, len(e.data), 0, 0, e.rmajor, e.rmin, namesize, 0)
	if _, err := w.WriteString(hdr); err != nil {
		return err
	}
	// bufio.Writer keeps its first error: the last Write reports it.
	w.WriteString(e.name)
	w.WriteByte(0)
	// Name and data each end on a 4-byte boundary (the header is 110 bytes).
	w.Write(make([]byte, pad4(len(hdr)+namesize)))
	w.Write(e.data)
	_, err := w.Write(make([]byte, pad4(len(e.data))))
	return err
}

func pad4(n int) int { return (4 - n%4) % 4 }

// cpioPerm turns a file mode's permission and special bits into cpio mode
// bits (Go's fs.FileMode keeps setuid and friends outside the low 12 bits).
func cpioPerm(m fs.FileMode) uint32 {
	p := uint32(m.Perm())
	if m&fs.ModeSetuid != 0 {
		p |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		p |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		p |= 0o1000
	}
	return p
}
