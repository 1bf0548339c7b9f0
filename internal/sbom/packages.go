package sbom

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
)

// Where the package databases are, relative to the rootfs.
const (
	dpkgStatus   = "var/lib/dpkg/status"
	apkInstalled = "lib/apk/db/installed"
)

// Limits on what Packages reads. A Debian builder's status file is a few
// MiB and its longest line (a Provides or Description) a few KiB.
const (
	maxDBSize = 64 << 20
	maxLine   = 1 << 20
)

var (
	// ErrTooLarge is returned (wrapped) by Packages for a database file or
	// a line in it that is over the limit.
	ErrTooLarge = errors.New("package database too large")
	// ErrNotRegular is returned (wrapped) by Packages when a database path
	// resolves to something other than a regular file (a FIFO, a device,
	// a directory).
	ErrNotRegular = errors.New("package database is not a regular file")
)

// Packages returns the packages installed in the rootfs at root, as its
// dpkg status file (var/lib/dpkg/status) or apk database
// (lib/apk/db/installed) lists them, sorted by manager, name, arch and
// version. A rootfs with neither gives nil and no error.
//
// The rootfs is not trusted: symlinks are resolved inside root, as if root
// were "/", and only regular files of at most 64 MiB with lines of at most
// 1 MiB are read.
func Packages(root string) ([]Package, error) {
	// A missing root is the caller's mistake, not a rootfs without a
	// database: say so rather than return nothing.
	if fi, err := os.Stat(root); err != nil {
		return nil, fmt.Errorf("read packages: %w", err)
	} else if !fi.IsDir() {
		return nil, fmt.Errorf("read packages: %s is not a directory", root)
	}
	var all []Package
	for _, db := range []struct {
		path  string
		parse func(io.Reader) ([]Package, error)
	}{
		{dpkgStatus, parseDpkgStatus},
		{apkInstalled, parseApkInstalled},
	} {
		ps, err := parseInRoot(root, db.path, db.parse)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		all = append(all, ps...)
	}
	if len(all) == 0 {
		return nil, nil
	}
	return sortedPackages(all), nil
}

// parseInRoot parses the regular file at name inside root (see
// openInRoot), reading at most maxDBSize bytes of it.
func parseInRoot(root, name string, parse func(io.Reader) ([]Package, error)) ([]Package, error) {
	f, size, err := openInRoot(root, name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if size > maxDBSize {
		return nil, fmt.Errorf("read %s: %d bytes: %w", name, size, ErrTooLarge)
	}
	// The file may grow after the size check: capReader notices.
	ps, err := parse(&capReader{r: f, left: maxDBSize})
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	return ps, nil
}

// capReader reads r and fails with ErrTooLarge past left bytes.
type capReader struct {
	r    io.Reader
	left int64
}

func (c *capReader) Read(p []byte) (int, error) {
	if int64(len(p)) > c.left+1 {
		p = p[:c.left+1]
	}
	n, err := c.r.Read(p)
	if c.left -= int64(n); c.left < 0 {
		return 0, ErrTooLarge
	}
	return n, err
}

// field is one "Name: value" field of a deb822 paragraph or one "X:value"
// line of an apk record.
type field struct{ name, value string }

// paragraphs calls fn with the fields of each blank-line separated
// paragraph of r. With deb822 set, lines starting with a space or tab
// continue the previous field (their text is not kept: no field Packages
// reads spans lines) and field names are case-insensitive; otherwise each
// line is "X:value".
func paragraphs(r io.Reader, deb822 bool, fn func([]field) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), maxLine)
	var (
		para []field
		n    int
	)
	flush := func() error {
		if len(para) == 0 {
			return nil
		}
		err := fn(para)
		para = para[:0]
		return err
	}
	for sc.Scan() {
		n++
		line := sc.Text()
		if strings.TrimRight(line, " \t\r") == "" {
			if err := flush(); err != nil {
				return err
			}
			continue
		}
		if deb822 && (line[0] == ' ' || line[0] == '\t') {
			if len(para) == 0 {
				return fmt.Errorf("line %d: continuation line outside a field", n)
			}
			continue
		}
		name, value, ok := strings.Cut(line, ":")
		if !ok || name == "" {
			return fmt.Errorf("line %d: not a field", n)
		}
		if deb822 {
			name = strings.ToLower(name)
		}
		para = append(para, field{name, strings.TrimSpace(value)})
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return fmt.Errorf("line %d: longer than %d bytes: %w: %w", n+1, maxLine, ErrTooLarge, err)
		}
		return err
	}
	return flush()
}

// parseDpkgStatus returns the installed packages of a dpkg status file.
// Installed means the Status field's last word is "installed", whatever
// the selection: "hold ok installed" and "deinstall ok installed" are on
// disk, "deinstall ok config-files" and "purge ok not-installed" are not.
func parseDpkgStatus(r io.Reader) ([]Package, error) {
	var ps []Package
	err := paragraphs(r, true, func(fields []field) error {
		p := Package{Manager: Dpkg}
		installed := false
		for _, f := range fields {
			switch f.name {
			case "package":
				p.Name = f.value
			case "version":
				p.Version = f.value
			case "architecture":
				p.Arch = f.value
			case "source":
				// "Source: glibc (2.36-9)" when the source version differs.
				p.Source, _, _ = strings.Cut(f.value, " ")
			case "status":
				w := strings.Fields(f.value)
				installed = len(w) == 3 && w[2] == "installed"
			}
		}
		if installed && p.Name != "" {
			ps = append(ps, p)
		}
		return nil
	})
	return ps, err
}

// parseApkInstalled returns the packages of an apk database
// (lib/apk/db/installed): P: name, V: version, A: arch, o: origin.
func parseApkInstalled(r io.Reader) ([]Package, error) {
	var ps []Package
	err := paragraphs(r, false, func(fields []field) error {
		p := Package{Manager: Apk}
		for _, f := range fields {
			switch f.name {
			case "P":
				p.Name = f.value
			case "V":
				p.Version = f.value
			case "A":
				p.Arch = f.value
			case "o":
				p.Source = f.value
			}
		}
		if p.Name != "" {
			ps = append(ps, p)
		}
		return nil
	})
	return ps, err
}
