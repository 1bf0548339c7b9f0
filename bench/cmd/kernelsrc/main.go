// Command kernelsrc is lkbuild's side of the kernel source benchmark
// (bench/kernel-source.sh). Its subcommands let the script time each step
// as a whole process, the way it times GNU tar:
//
//	kernelsrc mirror -src FILE.tar.xz -version V -fixtures DIR
//	kernelsrc fetch -mirror DIR -keys FILE -version V -cache DIR [-workers N] [-cpuprofile FILE]
//	kernelsrc decode [-workers N] FILE.tar.xz
//	kernelsrc next -src FILE.tar.xz -version V -fixtures DIR
//	kernelsrc zfs -src zfs-V.tar.gz -fixtures DIR
//
// mirror (untimed setup) makes, or finds in DIR, a kernel.org-style mirror
// that serves FILE.tar.xz as linux-V.tar.xz, signed by a key it generates,
// and prints "<mirror dir> <keys.asc> <tarball in the mirror>". fetch runs
// kernelsrc.Fetch (get, verify, extract, or find in the cache) and prints
// "cached=<bool> dir=<tree>". decode decodes the file to nowhere with
// kernel.XZReader and prints the decoded size; -workers 1 is the
// sequential decoder of github.com/ulikunitz/xz. next (a fixture of the
// lkbuild bump tests, not a benchmark) makes, or finds in DIR, a mirror
// serving FILE.tar.xz as linux-V.tar.xz and a made-up next patch release
// (next.go says what differs), signed by a key it generates, and prints
// "<mirror dir> <keys.asc>". zfs (also a fixture) does the same for an
// OpenZFS release tarball, in OpenZFS's release layout (zfs.go).
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
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/lkbuild/lkbuild/internal/kernelsrc"
	"github.com/lkbuild/lkbuild/internal/kernelsrc/mirrortest"
	"github.com/lkbuild/lkbuild/internal/pgptest"
	"github.com/lkbuild/lkbuild/kernel"
)

const usage = `usage:
  kernelsrc mirror -src FILE.tar.xz -version V -fixtures DIR
  kernelsrc fetch -mirror DIR -keys FILE -version V -cache DIR [-workers N] [-cpuprofile FILE]
  kernelsrc decode [-workers N] FILE.tar.xz
  kernelsrc next -src FILE.tar.xz -version V -fixtures DIR
  kernelsrc zfs -src zfs-V.tar.gz -fixtures DIR`

// mirrorFormat names the layout of the mirror fixture; change it to make
// new fixtures.
const mirrorFormat = "kernel-mirror-v1"

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, usage)
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "mirror":
		err = mirrorCmd(os.Args[2:])
	case "fetch":
		err = fetchCmd(os.Args[2:])
	case "decode":
		err = decodeCmd(os.Args[2:])
	case "next":
		err = nextCmd(os.Args[2:])
	case "zfs":
		err = zfsCmd(os.Args[2:])
	default:
		fmt.Fprintln(os.Stderr, usage)
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "kernelsrc:", err)
		os.Exit(1)
	}
}

func mirrorCmd(args []string) error {
	fs := flag.NewFlagSet("mirror", flag.ExitOnError)
	src := fs.String("src", "/usr/src/linux-source-6.12.tar.xz", "the kernel `tarball` to serve")
	version := fs.String("version", "6.12.117", "the `version` to serve it as")
	fixtures := fs.String("fixtures", "/var/cache/lkbuild-fixtures", "fixture cache `dir`")
	_ = fs.Parse(args)
	v, err := kernel.ParseVersion(*version)
	if err != nil {
		return err
	}
	dir, err := makeMirror(*fixtures, *src, v)
	if err != nil {
		return err
	}
	files, err := kernel.SourceURLs(filepath.Join(dir, "mirror"), v)
	if err != nil {
		return err
	}
	fmt.Println(filepath.Join(dir, "mirror"), filepath.Join(dir, "keys.asc"), files.Tarball)
	return nil
}

// makeMirror returns the fixture directory for src served as v, making it
// first if it is missing: <fixtures>/kernel-mirror-<key>/ with keys.asc,
// mirror/ and INFO (see fixture).
func makeMirror(fixtures, src string, v kernel.Version) (string, error) {
	return fixture(fixtures, "kernel-mirror", mirrorFormat, v.String(), src, func(tmp, digest string) (string, error) {
		fmt.Fprintf(os.Stderr, "kernelsrc: making the mirror fixture in %s (signing the decompressed tar, a minute or so)\n", fixtures)
		signer, err := newSigner(tmp, "lkbuild benchmark", "bench@lkbuild.invalid")
		if err != nil {
			return "", err
		}
		// The C xz decompresses the tar to sign: a decoder independent of the
		// one the benchmark measures, and faster.
		tar := func() (io.ReadCloser, error) { return xzDecompress(src) }
		if err := mirrortest.Write(filepath.Join(tmp, "mirror"), signer, mirrortest.Release{Version: v, XZ: src, Tar: tar}); err != nil {
			return "", err
		}
		return fmt.Sprintf("made-by: bench/cmd/kernelsrc mirror (%s)\nsource: %s sha256:%s\nserved as: linux-%s.tar.xz\nsigned by: a key generated then, public part in keys.asc\n",
			mirrorFormat, src, digest, v), nil
	})
}

// fixture returns <fixtures>/<prefix>-<key>/, where key hashes format,
// version and the contents of src, making it first if it has no INFO: make
// fills a temporary directory (and returns the text of INFO, to which the
// date and the seconds it took are added), which is renamed into place
// when complete, under a lock.
func fixture(fixtures, prefix, format, version, src string, make func(tmp, digest string) (string, error)) (string, error) {
	digest, err := fileSHA256(src)
	if err != nil {
		return "", err
	}
	k := sha256.Sum256([]byte(format + "\n" + version + "\n" + digest))
	key := hex.EncodeToString(k[:8])
	dir := filepath.Join(fixtures, prefix+"-"+key)
	if _, err := os.Stat(filepath.Join(dir, "INFO")); err == nil {
		return dir, nil
	}
	if err := os.MkdirAll(fixtures, 0o755); err != nil {
		return "", err
	}
	lock, err := os.OpenFile(filepath.Join(fixtures, "."+prefix+"-"+key+".lock"), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return "", err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return "", err
	}
	if _, err := os.Stat(filepath.Join(dir, "INFO")); err == nil {
		return dir, nil
	}
	tmp, err := os.MkdirTemp(fixtures, "."+prefix+"-"+key+".tmp.")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	start := time.Now()
	info, err := make(tmp, digest)
	if err != nil {
		return "", err
	}
	info += fmt.Sprintf("date: %s\nseconds: %.0f\n", time.Now().UTC().Format(time.RFC3339), time.Since(start).Seconds())
	if err := os.WriteFile(filepath.Join(tmp, "INFO"), []byte(info), 0o644); err != nil {
		return "", err
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		return "", err
	}
	if err := os.Rename(tmp, dir); err != nil {
		return "", err
	}
	return dir, nil
}

// newSigner makes a key and writes its public part to dir/keys.asc.
func newSigner(dir, name, email string) (*pgptest.Key, error) {
	signer, err := pgptest.NewKey(name, email, nil)
	if err != nil {
		return nil, err
	}
	keys, err := signer.Public()
	if err != nil {
		return nil, err
	}
	return signer, os.WriteFile(filepath.Join(dir, "keys.asc"), keys, 0o644)
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// xzDecompress streams `xz -dc FILE`.
type xzProcess struct {
	io.ReadCloser
	cmd *exec.Cmd
}

func xzDecompress(path string) (io.ReadCloser, error) {
	cmd := exec.Command("xz", "-dc", "-T0", path)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	return &xzProcess{ReadCloser: out, cmd: cmd}, nil
}

func (p *xzProcess) Close() error {
	_, _ = io.Copy(io.Discard, p.ReadCloser)
	if err := p.cmd.Wait(); err != nil {
		return fmt.Errorf("xz -dc: %w", err)
	}
	return nil
}

func fetchCmd(args []string) error {
	fs := flag.NewFlagSet("fetch", flag.ExitOnError)
	mirror := fs.String("mirror", "", "mirror `dir` or URL")
	keys := fs.String("keys", "", "keys.asc `file`")
	version := fs.String("version", "6.12.117", "kernel `version`")
	cache := fs.String("cache", "", "cache `dir`")
	workers := fs.Int("workers", 0, "xz decoding `goroutines` (0: all CPUs)")
	cpuprofile := fs.String("cpuprofile", "", "write a CPU profile to `file`")
	_ = fs.Parse(args)
	if *mirror == "" || *keys == "" || *cache == "" || fs.NArg() != 0 {
		return errors.New(usage)
	}
	v, err := kernel.ParseVersion(*version)
	if err != nil {
		return err
	}
	kf, err := os.Open(*keys)
	if err != nil {
		return err
	}
	kr, err := kernel.ReadKeyring(*keys, kf)
	kf.Close()
	if err != nil {
		return err
	}
	if *cpuprofile != "" {
		stop, err := startCPUProfile(*cpuprofile)
		if err != nil {
			return err
		}
		defer stop()
	}
	tree, err := kernelsrc.Fetch(context.Background(), kernelsrc.Options{
		Mirror:  *mirror,
		Dir:     filepath.Join(*cache, "sources"),
		Keyring: kr,
		Workers: *workers,
	}, v)
	if err != nil {
		return err
	}
	fmt.Printf("cached=%v dir=%s\n", tree.Cached, tree.Dir)
	return nil
}

func decodeCmd(args []string) error {
	fs := flag.NewFlagSet("decode", flag.ExitOnError)
	workers := fs.Int("workers", 0, "decoding `goroutines` (0: all CPUs; 1: sequential)")
	_ = fs.Parse(args)
	if fs.NArg() != 1 {
		return errors.New(usage)
	}
	f, err := os.Open(fs.Arg(0))
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	x, err := kernel.NewXZReader(f, st.Size(), kernel.XZReaderConfig{Workers: *workers})
	if err != nil {
		return err
	}
	defer x.Close()
	n, err := io.Copy(io.Discard, x)
	if err != nil {
		return err
	}
	fmt.Printf("decoded=%d blocks=%d parallel=%v\n", n, len(x.Index().Blocks), x.Parallel())
	return nil
}

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
		f.Close()
	}, nil
}
