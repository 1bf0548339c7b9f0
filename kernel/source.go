package kernel

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// DefaultSourceMirror is where LinuxKit's Dockerfile downloads kernel
// sources from: the folder that holds v<MAJOR>.x/.
const DefaultSourceMirror = "https://www.kernel.org/pub/linux/kernel"

// Errors of source verification that callers can test for with errors.Is.
// The errors returned wrap one of them and name the file.
var (
	// ErrUnknownKey means a signature was made by a key that is not in the
	// keyring (common/keys.asc).
	ErrUnknownKey = errors.New("signed by a key that is not in keys.asc")
	// ErrBadSignature means a signature does not verify: the signed data
	// or the signature was changed, or the signing key is revoked.
	ErrBadSignature = errors.New("bad PGP signature")
	// ErrNotSigned means a file that must be clear-signed is not.
	ErrNotSigned = errors.New("not a clear-signed PGP message")
	// ErrNotInSums means sha256sums.asc has no line for the tarball.
	ErrNotInSums = errors.New("not listed in sha256sums.asc")
	// ErrHashMismatch means a file's SHA-256 differs from its line in
	// sha256sums.asc.
	ErrHashMismatch = errors.New("SHA-256 does not match sha256sums.asc")
)

// SourceFiles are the locations of one kernel release in the kernel.org
// layout, under a mirror base that is a URL or a local directory:
//
//	<base>/v6.x/linux-6.6.71.tar.xz
//	<base>/v6.x/linux-6.6.71.tar.sign   (detached, over the .tar)
//	<base>/v6.x/sha256sums.asc          (clear-signed, whole folder)
type SourceFiles struct {
	Version Version
	// Tarball, Signature and Sums are base joined with the paths above by
	// a "/", which suits a URL and a local path alike.
	Tarball, Signature, Sums string
	// TarballName is the tarball's file name, as sha256sums.asc lists it.
	TarballName string
}

// SourceURLs returns where release v lives under base (a URL such as
// DefaultSourceMirror, or a directory). Trailing slashes of base are
// ignored. kernel.org names a .0 release by two numbers (linux-6.7.tar.xz),
// and so does SourceURLs.
func SourceURLs(base string, v Version) (SourceFiles, error) {
	if v.IsZero() {
		return SourceFiles{}, errors.New("source urls: no kernel version")
	}
	if v.Major < 0 || v.Minor < 0 || v.Patch < 0 {
		return SourceFiles{}, fmt.Errorf("source urls: negative number in version %d.%d.%d", v.Major, v.Minor, v.Patch)
	}
	base = strings.TrimRight(base, "/")
	if base == "" {
		return SourceFiles{}, errors.New("source urls: empty mirror")
	}
	name := strconv.Itoa(v.Major) + "." + strconv.Itoa(v.Minor)
	if v.Patch != 0 {
		name += "." + strconv.Itoa(v.Patch)
	}
	dir := base + "/v" + strconv.Itoa(v.Major) + ".x/"
	return SourceFiles{
		Version:     v,
		Tarball:     dir + "linux-" + name + ".tar.xz",
		Signature:   dir + "linux-" + name + ".tar.sign",
		Sums:        dir + "sha256sums.asc",
		TarballName: "linux-" + name + ".tar.xz",
	}, nil
}

// SHA256Sums maps file names to SHA-256 digests, as listed by a
// sha256sums file.
type SHA256Sums map[string][32]byte

// ParseSHA256Sums reads the lines of a sha256sums file in the format
// sha256sum(1) writes: 64 hex digits, a space, a space or "*", the name.
// Other lines (blank, comments) are skipped, as LinuxKit's grep skips
// them: the signature covers the whole file, so nothing unsigned gets in.
// A name listed twice with different digests is an error naming file and
// line.
func ParseSHA256Sums(file string, text []byte) (SHA256Sums, error) {
	sums := SHA256Sums{}
	sc := bufio.NewScanner(bytes.NewReader(text))
	sc.Buffer(nil, 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimRight(sc.Text(), " \t\r")
		var sum [32]byte
		if len(line) < 67 || line[64] != ' ' || (line[65] != ' ' && line[65] != '*') {
			continue
		}
		if _, err := hex.Decode(sum[:], []byte(line[:64])); err != nil {
			continue
		}
		name := line[66:]
		if old, dup := sums[name]; dup && old != sum {
			return nil, &FileError{File: file, Line: n, Err: fmt.Errorf("%s is listed again with another digest", name)}
		}
		sums[name] = sum
	}
	if err := sc.Err(); err != nil {
		return nil, &FileError{File: file, Err: fmt.Errorf("read: %w", err)}
	}
	return sums, nil
}

// Lookup returns the digest listed for name, or an error wrapping
// ErrNotInSums.
func (s SHA256Sums) Lookup(name string) ([32]byte, error) {
	sum, ok := s[name]
	if !ok {
		return sum, fmt.Errorf("%s: %w", name, ErrNotInSums)
	}
	return sum, nil
}
