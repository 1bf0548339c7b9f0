// Command compress is lkbuild's side of the layer compression benchmark
// (bench/compress.sh):
//
//	compress -store DIR [-cpuprofile FILE] INPUT
//
// It streams the file INPUT through (*oci.Store).WriteLayer, the code that
// turns every tar lkbuild builds into a gzip layer blob, and prints the
// blob's path, size and digest and the layer's diff ID. INPUT is used as an
// opaque byte stream: it need not be a valid tar.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/pprof"

	"github.com/lkbuild/lkbuild/oci"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "compress:", err)
		os.Exit(1)
	}
}

func run() error {
	store := flag.String("store", "", "OCI layout `dir` to write the layer into (created if missing)")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the compression to `file`")
	flag.Parse()
	if *store == "" || flag.NArg() != 1 {
		return errors.New("usage: compress -store DIR [-cpuprofile FILE] INPUT")
	}
	s, err := oci.OpenStore(*store)
	if err != nil {
		return err
	}
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			f.Close()
			return err
		}
		defer func() {
			pprof.StopCPUProfile()
			if err := f.Close(); err != nil {
				fmt.Fprintln(os.Stderr, "compress: cpu profile:", err)
			}
		}()
	}
	l, err := s.WriteLayer(func(w io.Writer) error {
		f, err := os.Open(flag.Arg(0))
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = io.Copy(w, f)
		return err
	})
	if err != nil {
		return err
	}
	d, err := l.Digest()
	if err != nil {
		return err
	}
	size, err := l.Size()
	if err != nil {
		return err
	}
	diffID, err := l.DiffID()
	if err != nil {
		return err
	}
	fmt.Println(s.BlobPath(d), size, d, diffID)
	return nil
}
