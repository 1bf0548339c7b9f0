// Command extract is lkbuild's side of the extraction benchmark
// (bench/extract.sh). It has two subcommands, so that the script can time
// the extraction alone, as a whole process, the same way it times GNU tar:
//
//	extract prepare -store DIR [-name NAME] LAYER.tar.gz
//	extract run -store DIR -image DIGEST [-cpuprofile FILE] OUTDIR
//
// prepare (untimed setup) puts the gzip blob into the store as the only layer
// of a linux/amd64 image and prints "<image digest> <layer blob path>"; with
// -name the layout's index names the image (oci:DIR:NAME for lkbuild). run
// (timed) opens the store, loads that image and calls oci.Extract into
// OUTDIR, which is what a build does with its builder rootfs; it prints what
// was extracted.
package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/pprof"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/gzip"

	"github.com/lkbuild/lkbuild/oci"
)

const usage = `usage:
  extract prepare -store DIR [-name NAME] LAYER.tar.gz
  extract run -store DIR -image DIGEST [-cpuprofile FILE] OUTDIR`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, usage)
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "prepare":
		err = prepareCmd(os.Args[2:])
	case "run":
		err = runCmd(os.Args[2:])
	default:
		fmt.Fprintln(os.Stderr, usage)
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "extract:", err)
		os.Exit(1)
	}
}

func prepareCmd(args []string) error {
	fs := flag.NewFlagSet("prepare", flag.ExitOnError)
	store := fs.String("store", "", "OCI layout `dir` to put the image in (created if missing)")
	name := fs.String("name", "", "`name` of the image in the layout's index")
	_ = fs.Parse(args)
	if *store == "" || fs.NArg() != 1 {
		return errors.New(usage)
	}
	img, blob, err := prepare(*store, fs.Arg(0), *name)
	if err != nil {
		return err
	}
	fmt.Println(img, blob)
	return nil
}

// prepare stores the gzip'd tar at src as a one-layer image and returns the
// image's digest and the path of the layer blob in the store.
func prepare(storeDir, src, name string) (v1.Hash, string, error) {
	s, err := oci.OpenStore(storeDir)
	if err != nil {
		return v1.Hash{}, "", err
	}
	digest, size, diffID, err := layerHashes(src)
	if err != nil {
		return v1.Hash{}, "", err
	}
	f, err := os.Open(src)
	if err != nil {
		return v1.Hash{}, "", err
	}
	defer f.Close()
	if err := s.WriteBlob(digest, size, f); err != nil {
		return v1.Hash{}, "", err
	}
	l, err := s.Layer(digest, size, diffID, types.OCILayer)
	if err != nil {
		return v1.Hash{}, "", err
	}
	img, err := oci.NewImage(oci.ImageSpec{
		Platform: v1.Platform{OS: "linux", Architecture: "amd64"},
		Layers:   []oci.ImageLayer{{Layer: l, CreatedBy: "bench/extract.sh"}},
	})
	if err != nil {
		return v1.Hash{}, "", err
	}
	if name != "" {
		err = s.WriteLayout(context.Background(), img, v1.Platform{OS: "linux", Architecture: "amd64"}, name)
	} else {
		err = s.WriteImage(context.Background(), img, nil)
	}
	if err != nil {
		return v1.Hash{}, "", err
	}
	h, err := img.Digest()
	if err != nil {
		return v1.Hash{}, "", err
	}
	return h, s.BlobPath(digest), nil
}

// layerHashes reads the gzip'd tar at src once and returns its digest and
// size, and the digest of its uncompressed content (the diff ID).
func layerHashes(src string) (digest v1.Hash, size int64, diffID v1.Hash, err error) {
	f, err := os.Open(src)
	if err != nil {
		return v1.Hash{}, 0, v1.Hash{}, err
	}
	defer f.Close()
	ch := sha256.New()
	cr := &countingReader{r: io.TeeReader(f, ch)}
	zr, err := gzip.NewReader(cr)
	if err != nil {
		return v1.Hash{}, 0, v1.Hash{}, fmt.Errorf("%s: %w", src, err)
	}
	dh := sha256.New()
	if _, err := io.Copy(dh, zr); err != nil {
		return v1.Hash{}, 0, v1.Hash{}, fmt.Errorf("%s: %w", src, err)
	}
	// The gzip reader may stop before a trailing part of the file (padding,
	// a second member it does not read): hash that too.
	if _, err := io.Copy(io.Discard, cr); err != nil {
		return v1.Hash{}, 0, v1.Hash{}, fmt.Errorf("%s: %w", src, err)
	}
	return sha256Hash(ch.Sum(nil)), cr.n, sha256Hash(dh.Sum(nil)), nil
}

func sha256Hash(sum []byte) v1.Hash {
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum)}
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

func runCmd(args []string) error {
	fs := flag.NewFlagSet("run", flag.ExitOnError)
	store := fs.String("store", "", "OCI layout `dir` made by prepare")
	image := fs.String("image", "", "`digest` of the image printed by prepare")
	cpuprofile := fs.String("cpuprofile", "", "write a CPU profile of the extraction to `file`")
	_ = fs.Parse(args)
	if *store == "" || *image == "" || fs.NArg() != 1 {
		return errors.New(usage)
	}
	h, err := v1.NewHash(*image)
	if err != nil {
		return err
	}
	s, err := oci.OpenStore(*store)
	if err != nil {
		return err
	}
	img, ok := s.Image(h)
	if !ok {
		return fmt.Errorf("image %s is not complete in %s; run prepare first", h, *store)
	}
	if *cpuprofile != "" {
		stop, err := startCPUProfile(*cpuprofile)
		if err != nil {
			return err
		}
		defer stop()
	}
	st, err := oci.Extract(context.Background(), img, fs.Arg(0))
	if err != nil {
		return err
	}
	fmt.Printf("files=%d dirs=%d symlinks=%d hardlinks=%d devices=%d skipped-devices=%d bytes=%d\n",
		st.Files, st.Dirs, st.Symlinks, st.Hardlinks, st.Devices, st.SkippedDevices, st.Bytes)
	return nil
}

// startCPUProfile starts a CPU profile into path; the returned function
// stops it and closes the file.
func startCPUProfile(path string) (func(), error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() {
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			fmt.Fprintln(os.Stderr, "extract: cpu profile:", err)
		}
	}, nil
}
