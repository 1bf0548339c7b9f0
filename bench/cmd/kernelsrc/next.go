package main

import (
	"archive/tar"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/lkbuild/lkbuild/internal/kernelsrc/mirrortest"
	"github.com/lkbuild/lkbuild/kernel"
)

// nextFormat names what nextEdits do; change it with them.
const nextFormat = "kernel-next-v1"

// NextSymbol is the Kconfig symbol the next release adds, default y: a
// config refresh of the next release adds it to every stored config.
const nextSymbol = "LKBUILD_NEXT_RELEASE"

// nextEdits are what the made-up next release changes in the source:
// its version in the Makefile; a line of start_kernel that is context of
// testdata/kernel's e2e patch, so that the patch stops applying; and a
// new Kconfig symbol. @old@ and @next@ stand for the patch levels.
var nextEdits = []struct {
	file     string
	old, new string
}{
	{"Makefile", "\nSUBLEVEL = @old@\n", "\nSUBLEVEL = @next@\n"},
	{"init/main.c", "\tpage_address_init();\n\tpr_notice(\"%s\", linux_banner);\n",
		"\tpage_address_init();\n\t/* the next release, @next@, moved this */\n\tpr_notice(\"%s\", linux_banner);\n"},
	{"init/Kconfig", "", "\nconfig " + nextSymbol + "\n\tbool \"lkbuild test: a symbol new in the next release\"\n\tdefault y\n"},
}

// nextCmd is `kernelsrc next`: a mirror with a release and a made-up next
// one, for the tests of lkbuild bump.
func nextCmd(args []string) error {
	fs := flag.NewFlagSet("next", flag.ExitOnError)
	src := fs.String("src", "/usr/src/linux-source-6.12.tar.xz", "the kernel `tarball` of the release")
	version := fs.String("version", "6.12.117", "the `version` it is")
	fixtures := fs.String("fixtures", "/var/cache/lkbuild-fixtures", "fixture cache `dir`")
	_ = fs.Parse(args)
	v, err := kernel.ParseVersion(*version)
	if err != nil {
		return err
	}
	dir, err := makeNext(*fixtures, *src, v)
	if err != nil {
		return err
	}
	fmt.Println(filepath.Join(dir, "mirror"), filepath.Join(dir, "keys.asc"))
	return nil
}

// makeNext returns the fixture directory <fixtures>/kernel-next-<key>/
// (keys.asc, mirror/, INFO) serving src as v and, made from it with
// nextEdits, v's next patch release, making it first if it is missing.
func makeNext(fixtures, src string, v kernel.Version) (string, error) {
	return fixture(fixtures, "kernel-next", nextFormat, v.String(), src, func(tmp, digest string) (string, error) {
		next := kernel.Version{Major: v.Major, Minor: v.Minor, Patch: v.Patch + 1}
		fmt.Fprintf(os.Stderr, "kernelsrc: making the fixture of %s and a made-up %s in %s (a minute or two)\n", v, next, fixtures)
		nextXZ := filepath.Join(tmp, "next.tar.xz")
		if err := writeNext(src, nextXZ, v, next); err != nil {
			return "", err
		}
		signer, err := newSigner(tmp, "lkbuild next release", "next@lkbuild.invalid")
		if err != nil {
			return "", err
		}
		err = mirrortest.Write(filepath.Join(tmp, "mirror"), signer,
			mirrortest.Release{Version: v, XZ: src, Tar: func() (io.ReadCloser, error) { return xzDecompress(src) }},
			mirrortest.Release{Version: next, XZ: nextXZ, Tar: func() (io.ReadCloser, error) { return xzDecompress(nextXZ) }},
		)
		if err != nil {
			return "", err
		}
		if err := os.Remove(nextXZ); err != nil {
			return "", err
		}
		return fmt.Sprintf("made-by: bench/cmd/kernelsrc next (%s)\nsource: %s sha256:%s, served as linux-%s.tar.xz\nnext: linux-%s.tar.xz, the same with SUBLEVEL %d, a line added to start_kernel (the e2e patch's context) and CONFIG_%s (default y) in init/Kconfig\nsigned by: a key generated then, public part in keys.asc\n",
			nextFormat, src, digest, v, next, next.Patch, nextSymbol), nil
	})
}

// writeNext writes the tarball of next, src with nextEdits, as an xz
// file at dst.
func writeNext(src, dst string, v, next kernel.Version) error {
	in, err := xzDecompress(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	defer out.Close()
	xz := exec.Command("xz", "-0", "-T2", "-c")
	xz.Stdout, xz.Stderr = out, os.Stderr
	pipe, err := xz.StdinPipe()
	if err != nil {
		return err
	}
	if err := xz.Start(); err != nil {
		return err
	}
	err = rewriteTar(in, pipe, v, next)
	if cerr := pipe.Close(); err == nil {
		err = cerr
	}
	if werr := xz.Wait(); err == nil && werr != nil {
		err = fmt.Errorf("xz: %w", werr)
	}
	if err != nil {
		return err
	}
	return out.Close()
}

// rewriteTar copies the tar r to w with nextEdits made.
func rewriteTar(r io.Reader, w io.Writer, v, next kernel.Version) error {
	tr, tw := tar.NewReader(r), tar.NewWriter(w)
	done := map[string]bool{}
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		var data []byte
		if h.Typeflag == tar.TypeReg {
			if data, err = io.ReadAll(tr); err != nil {
				return err
			}
			for _, e := range nextEdits {
				if rel, ok := relName(h.Name); !ok || rel != e.file {
					continue
				}
				levels := strings.NewReplacer("@old@", strconv.Itoa(v.Patch), "@next@", strconv.Itoa(next.Patch))
				old, nw := levels.Replace(e.old), levels.Replace(e.new)
				switch {
				case old == "":
					data = append(data, nw...)
				case bytes.Count(data, []byte(old)) != 1:
					return fmt.Errorf("%s: %q is not there exactly once", h.Name, old)
				default:
					data = bytes.Replace(data, []byte(old), []byte(nw), 1)
				}
				done[e.file] = true
			}
			h.Size = int64(len(data))
		}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if data != nil {
			if _, err := tw.Write(data); err != nil {
				return err
			}
		}
	}
	for _, e := range nextEdits {
		if !done[e.file] {
			return fmt.Errorf("the tarball has no %s", e.file)
		}
	}
	return tw.Close()
}

// relName is a tar member's name below the top directory.
func relName(name string) (string, bool) {
	name = path.Clean(name)
	i := 0
	for i < len(name) && name[i] != '/' {
		i++
	}
	if i == len(name) {
		return "", false
	}
	return name[i+1:], true
}
