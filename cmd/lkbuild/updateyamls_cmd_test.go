package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// updateYamlsKernel is seriesKernelFiles with a variant lkbuild builds:
// 6.6.x-rt at 6.6.69.
func updateYamlsKernel() map[string]string {
	files := seriesKernelFiles()
	files["6.6.x-rt/build-args"] = "KERNEL_VERSION=6.6.69\nKERNEL_SERIES=6.6.x\n"
	files["6.6.x-rt/config-x86_64"] = "CONFIG_PREEMPT_RT=y\n"
	return files
}

// seriesHash is the hash lkbuild show-tag prints for series.
func seriesHash(t *testing.T, k, series string) string {
	t.Helper()
	out := strings.TrimSpace(lkbuildOK(t, "show-tag", "--kernel-dir", k, "--series", series))
	return out[strings.LastIndex(out, "-")+1:]
}

func TestUpdateYamls(t *testing.T) {
	testGit(t)
	k := kernelRepo(t, "kernel", updateYamlsKernel())
	src, err := filepath.Abs(filepath.Join("..", "..", "testdata", "update-yamls"))
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "tree")
	if err := os.CopyFS(dir, os.DirFS(filepath.Join(src, "before"))); err != nil {
		t.Fatal(err)
	}
	hashes := map[string]string{}
	for _, s := range []string{"6.6.x", "6.6.x-rt", "6.12.x"} {
		hashes["@"+s+"@"] = seriesHash(t, k, s)
	}

	// --check: the changes, exit 1, nothing written.
	out, stderr, code := lkbuild(t, "update-yamls", "--kernel-dir", k, "--check", dir)
	if code != 1 || !strings.Contains(stderr, "10 references to linuxkit/kernel in 2 files are not current") {
		t.Fatalf("--check: exit %d, want 1 counting 10 references in 2 files:\n%s\n%s", code, out, stderr)
	}
	want := filepath.Join(dir, "linuxkit.yml") + ":4: linuxkit/kernel:5.10.104 -> linuxkit/kernel:6.12.59\n"
	if !strings.HasPrefix(out, want) {
		t.Errorf("--check printed\n%s\nwant it to start with %q", out, want)
	}
	before, _ := os.ReadFile(filepath.Join(src, "before", "linuxkit.yml"))
	if now, _ := os.ReadFile(filepath.Join(dir, "linuxkit.yml")); string(now) != string(before) {
		t.Errorf("--check changed linuxkit.yml")
	}

	// The update: after/, with the hashes filled in.
	if _, stderr, code := lkbuild(t, "update-yamls", "--kernel-dir", k, dir); code != 0 || !strings.Contains(stderr, "updated 10 references") {
		t.Fatalf("update-yamls: exit %d\n%s", code, stderr)
	}
	err = filepath.WalkDir(filepath.Join(src, "after"), func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(filepath.Join(src, "after"), p)
		wantData, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		w := string(wantData)
		for ph, h := range hashes {
			w = strings.ReplaceAll(w, ph, h)
		}
		got, err := os.ReadFile(filepath.Join(dir, rel))
		if err != nil {
			return err
		}
		if string(got) != w {
			t.Errorf("%s after update-yamls:\n%s\nwant\n%s", rel, got, w)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, stderr, code := lkbuild(t, "update-yamls", "--kernel-dir", k, "--check", dir); code != 0 || !strings.Contains(stderr, "every reference to linuxkit/kernel is current") {
		t.Errorf("--check after the update: exit %d\n%s", code, stderr)
	}

	// No directory: the repository that holds the kernel directory.
	root := filepath.Dir(k)
	if err := os.WriteFile(filepath.Join(root, "top.yml"), []byte("kernel:\n  image: linuxkit/kernel:6.6.70\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	lkbuildOK(t, "update-yamls", "--kernel-dir", k)
	if got, _ := os.ReadFile(filepath.Join(root, "top.yml")); string(got) != "kernel:\n  image: linuxkit/kernel:6.12.59\n" {
		t.Errorf("top.yml = %q", got)
	}

	// Uncommitted changes to the kernel directory: no hash to point at.
	if err := os.WriteFile(filepath.Join(k, "6.6.x", "config-x86_64"), []byte("CONFIG_CHANGED=y\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, stderr, code := lkbuild(t, "update-yamls", "--kernel-dir", k, dir); code == 0 || !strings.Contains(stderr, "uncommitted changes") {
		t.Errorf("a dirty kernel dir: exit %d\n%s", code, stderr)
	}
}
