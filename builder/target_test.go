package builder

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lkbuild/lkbuild/kernel"
)

func TestResolve(t *testing.T) {
	kdir := checkout(t, t.TempDir())
	base := Request{KernelDir: kdir, Query: kernel.Query{Series: "6.12.x"}, Arch: "amd64", Getenv: func(string) string { return "" }}
	tg, err := Resolve(context.Background(), base)
	if err != nil {
		t.Fatal(err)
	}
	if tg.Arch.Uname != "x86_64" || tg.Arch.OCI != "amd64" || len(tg.Revision) != 40 || tg.Hash == "" {
		t.Errorf("target %+v", tg)
	}
	if !strings.HasSuffix(tg.Ref, "-amd64") || !strings.HasPrefix(tg.Ref, kernel.DefaultOrg+"/"+kernel.DefaultImage+":6.12.117-"+tg.Hash) {
		t.Errorf("ref %s", tg.Ref)
	}
	if !tg.Plan.Epoch.Equal(time.Unix(1700000000, 0)) || tg.Plan.Jobs < 1 {
		t.Errorf("epoch %v jobs %d: want HEAD's commit time and the usable CPUs", tg.Plan.Epoch, tg.Plan.Jobs)
	}
	if tg.BuilderPull != tg.Plan.BuilderImage || tg.Plan.BuilderImage != "127.0.0.1:5000/lkbuild-e2e/builder:bookworm" {
		t.Errorf("builder %s recorded as %s, want the series' BUILD_IMAGE", tg.BuilderPull, tg.Plan.BuilderImage)
	}

	epoch := time.Unix(1800000000, 0)
	for name, c := range map[string]struct {
		change      func(*Request)
		epoch       time.Time
		pull, named string
	}{
		"SOURCE_DATE_EPOCH": {func(r *Request) {
			r.Getenv = func(k string) string { return map[string]string{"SOURCE_DATE_EPOCH": "1750000000"}[k] }
		}, time.Unix(1750000000, 0), "", ""},
		"epoch over SOURCE_DATE_EPOCH": {func(r *Request) {
			r.Epoch = &epoch
			r.Getenv = func(string) string { return "1750000000" }
		}, epoch, "", ""},
		"registry builder": {func(r *Request) { r.BuilderImage = "registry.example/kb:1" }, time.Unix(1700000000, 0), "registry.example/kb:1", "registry.example/kb:1"},
		"layout builder":   {func(r *Request) { r.BuilderImage = "oci:/some/dir:kb" }, time.Unix(1700000000, 0), "oci:/some/dir:kb", "kb"},
		"named builder": {func(r *Request) { r.BuilderImage, r.BuilderName = "oci:/some/dir:kb", "registry.example/kb:1" },
			time.Unix(1700000000, 0), "oci:/some/dir:kb", "registry.example/kb:1"},
	} {
		r := base
		c.change(&r)
		tg, err := Resolve(context.Background(), r)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if !tg.Plan.Epoch.Equal(c.epoch) {
			t.Errorf("%s: epoch %v, want %v", name, tg.Plan.Epoch, c.epoch)
		}
		if c.pull != "" && (tg.BuilderPull != c.pull || tg.Plan.BuilderImage != c.named) {
			t.Errorf("%s: pull %s named %s, want %s named %s", name, tg.BuilderPull, tg.Plan.BuilderImage, c.pull, c.named)
		}
	}
}

func TestResolveErrors(t *testing.T) {
	kdir := checkout(t, t.TempDir())
	plain := t.TempDir()
	if err := os.CopyFS(plain, os.DirFS(kdir)); err != nil {
		t.Fatal(err)
	}
	base := Request{KernelDir: kdir, Query: kernel.Query{Series: "6.12.x"}, Arch: "x86_64", Getenv: func(string) string { return "" }}
	for name, c := range map[string]struct {
		change func(*Request)
		is     error
	}{
		"not in git":        {func(r *Request) { r.KernelDir = plain }, ErrNoGit},
		"negative jobs":     {func(r *Request) { r.Jobs = -5 }, nil},
		"unknown arch":      {func(r *Request) { r.Arch = "mips" }, nil},
		"unknown series":    {func(r *Request) { r.Query.Series = "9.9.x" }, nil},
		"bad epoch env":     {func(r *Request) { r.Getenv = func(string) string { return "yesterday" } }, nil},
		"unnamed layout":    {func(r *Request) { r.BuilderImage = "oci:" + filepath.Join(plain, "layout") }, nil},
		"cancelled context": {nil, context.Canceled},
	} {
		r := base
		ctx := context.Background()
		if c.change != nil {
			c.change(&r)
		} else {
			var cancel context.CancelFunc
			ctx, cancel = context.WithCancel(ctx)
			cancel()
		}
		_, err := Resolve(ctx, r)
		if err == nil || c.is != nil && !errors.Is(err, c.is) {
			t.Errorf("%s: got %v, want an error (%v)", name, err, c.is)
		}
	}
}

// TestRequestArgs checks the flags that name a target again, as the retry
// hint after a failed push prints them: --hash-commit too.
func TestRequestArgs(t *testing.T) {
	r := Request{
		KernelDir: "/k", HashCommit: "abc123", Arch: "arm64", BuilderImage: "oci:/l:b",
		Query: kernel.Query{Series: "6.6.x", Extra: "-rt", Debug: true, Org: "reg/lk", Image: "kernel"},
	}
	want := []string{"--kernel-dir", "/k", "--series", "6.6.x", "--extra", "-rt", "--debug", "--org", "reg/lk", "--image", "kernel",
		"--hash-commit", "abc123", "--arch", "arm64", "--builder-image", "oci:/l:b"}
	if got := r.Args(); !slices.Equal(got, want) {
		t.Errorf("args\n%q\nwant\n%q", got, want)
	}
	r = Request{KernelDir: "/k", HashCommit: "HEAD", BuilderImage: "registry.example/b:1", Query: kernel.Query{Version: "6.6.71"}, Arch: "x86_64"}
	want = []string{"--kernel-dir", "/k", "--version", "6.6.71", "--arch", "x86_64"}
	if got := r.Args(); !slices.Equal(got, want) {
		t.Errorf("args\n%q\nwant\n%q", got, want)
	}
}
