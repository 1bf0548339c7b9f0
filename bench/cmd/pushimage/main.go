// Command pushimage is the untimed setup of the first-time rootfs
// benchmark (bench/rootfs.sh): it pushes an image from an OCI store to a
// registry, so that lkbuild's timed side has to pull it as a real build
// does.
//
//	pushimage -store DIR -image DIGEST REF
//
// The store and image come from `extract prepare` (bench/cmd/extract), which
// puts the builder rootfs layer into a store as a one-layer linux/amd64
// image. Credentials come from the docker config ($DOCKER_CONFIG), as for
// lkbuild; 127.0.0.1 is spoken to over plain HTTP. It prints the pushed
// manifest digest.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/lkbuild/lkbuild/oci"
)

const usage = "usage: pushimage -store DIR -image DIGEST REF"

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "pushimage:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("pushimage", flag.ExitOnError)
	store := fs.String("store", "", "OCI layout `dir` that holds the image")
	image := fs.String("image", "", "manifest `digest` of the image in the store")
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
		return fmt.Errorf("image %s is not complete in %s", h, *store)
	}
	reg, err := oci.NewRegistry()
	if err != nil {
		return err
	}
	d, err := reg.Push(context.Background(), img, fs.Arg(0))
	if err != nil {
		return err
	}
	fmt.Println(d)
	return nil
}
