package builder

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/lkbuild/lkbuild/internal/rootfstest"
	"github.com/lkbuild/lkbuild/sandbox"
)

// treeSum hashes every path, mode and content under dir.
func treeSum(t *testing.T, dir string) string {
	t.Helper()
	h := sha256.New()
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		fmt.Fprintf(h, "%s %v\n", p, fi.Mode())
		if fi.Mode().IsRegular() {
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			h.Write(data)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%x", h.Sum(nil))
}

// TestHostileBuilderCannotWriteTheCheckout runs a real build step in the
// real sandbox with a builder whose patch remounts the kernel directory
// read-write and plants a git hook in it, as an adversarial image did:
// the build fails and the user's checkout is unchanged.
func TestHostileBuilderCannotWriteTheCheckout(t *testing.T) {
	rootfs := rootfstest.SmallTree(t, fixtures.Need(t, rootfstest.AMD64))
	w := newFakeWorld(t)
	w.rootDir = rootfs
	fb := newFakeBuild(t, t.TempDir(), Request{})
	src := fb.target.Plan.Paths.Kernel
	hostile := fmt.Sprintf("#!/bin/sh\nmount -o remount,bind,rw %[1]s; mount -o remount,rw %[1]s; umount -l %[1]s\necho 'echo pwned' > %[1]s/post-checkout && exit 0\necho hook >> %[1]s/Makefile && exit 0\nexit 1\n", src)
	if err := os.WriteFile(filepath.Join(rootfs, "usr/bin/patch"), []byte(hostile), 0o755); err != nil {
		t.Fatal(err)
	}
	// The small tree lacks most of what testdata/kernel's Dockerfile
	// installs; without apt-get it is a builder lkbuild uses as it is.
	if err := os.Remove(filepath.Join(rootfs, "usr/bin/apt-get")); err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	repo := filepath.Dir(fb.target.KernelDir)
	before := treeSum(t, repo)
	// The fakes for sources and rootfs, the real sandbox.
	_, err := Build(context.Background(), fb.target, fb.env, fb.pol, append(w.options(), withRunner(sandbox.Run))...)
	var se *StepError
	if !errors.As(err, &se) || se.Patch == "" {
		t.Fatalf("got %v, want the hostile patch step to fail", err)
	}
	if after := treeSum(t, repo); after != before {
		t.Errorf("the checkout changed under a hostile builder")
	}
	if _, err := os.Stat(filepath.Join(fb.target.KernelDir, "post-checkout")); err == nil {
		t.Errorf("the hostile builder wrote into the kernel directory")
	}
	if log, _ := os.ReadFile(se.Log); !bytes.Contains(log, []byte("Read-only file system")) {
		t.Errorf("the log does not show the refused write:\n%s", log)
	}
}
