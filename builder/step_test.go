package builder

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/lkbuild/lkbuild/kernel"
)

// runStep runs a step request through stepMain, as the sandbox does.
func runStep(t *testing.T, a kernel.Action, xz []string) stepResult {
	t.Helper()
	req, err := newStepRequest(a, time.Unix(1700000000, 0), xz)
	if err != nil {
		t.Fatal(err)
	}
	in, _ := json.Marshal(req)
	var out bytes.Buffer
	if code := stepMain(bytes.NewReader(in), &out); code != 0 {
		t.Fatalf("stepMain exit %d", code)
	}
	var res stepResult
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		t.Fatalf("result %q: %v", out.String(), err)
	}
	return res
}

func writeFiles(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for name, data := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func tarNames(t *testing.T, r io.Reader) []string {
	t.Helper()
	var names []string
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return names
		}
		if err != nil {
			t.Fatal(err)
		}
		if !h.ModTime.Equal(time.Unix(1700000000, 0)) {
			t.Errorf("%s: mtime %s", h.Name, h.ModTime)
		}
		names = append(names, h.Name)
	}
}

func TestStepActions(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	writeFiles(t, src, map[string]string{
		"a.txt": "a\n", "sub/b.txt": "b\n", ".config": "CONFIG_X=y\n", "Module.symvers": "",
		"Makefile": "all:\n", "include/linux/x.h": "", "drivers/foo.c": "",
	})
	stored := []byte("CONFIG_X=y\n")
	tests := []struct {
		name    string
		action  kernel.Action
		wantErr string
		// wantIs, when set, is what the error must be, across the re-exec.
		wantIs error
		check  func(t *testing.T, res stepResult)
	}{
		{
			name:   "content",
			action: &kernel.FileContent{Path: filepath.Join(dir, "out/new/file"), Data: []byte("data")},
			check: func(t *testing.T, res stepResult) {
				if got, _ := os.ReadFile(filepath.Join(dir, "out/new/file")); string(got) != "data" {
					t.Errorf("content %q", got)
				}
			},
		},
		{
			name:   "copy takes the first that exists",
			action: &kernel.FileCopy{From: []string{filepath.Join(src, "missing"), filepath.Join(src, "sub/b.txt")}, To: filepath.Join(dir, "out/b")},
			check: func(t *testing.T, res stepResult) {
				if got, _ := os.ReadFile(filepath.Join(dir, "out/b")); string(got) != "b\n" {
					t.Errorf("copy %q", got)
				}
			},
		},
		{
			name:   "copy of a program",
			action: &kernel.FileCopy{From: []string{filepath.Join(src, "a.txt")}, To: filepath.Join(dir, "out/usr/bin/a"), Exec: true},
			check: func(t *testing.T, res stepResult) {
				fi, err := os.Stat(filepath.Join(dir, "out/usr/bin/a"))
				if err != nil || fi.Mode().Perm() != 0o755 {
					t.Errorf("copy of a program: %v, mode %v, want 0755", err, fi.Mode())
				}
				// Without Exec the copy is 0644, whatever the source's mode.
				if fi, err := os.Stat(filepath.Join(dir, "out/b")); err != nil || fi.Mode().Perm() != 0o644 {
					t.Errorf("copy: %v, mode %v, want 0644", err, fi.Mode())
				}
			},
		},
		{
			name:    "copy with nothing to copy",
			action:  &kernel.FileCopy{From: []string{filepath.Join(src, "x"), filepath.Join(src, "y")}, To: filepath.Join(dir, "out/none")},
			wantErr: "none of",
		},
		{
			name:    "copy of a directory",
			action:  &kernel.FileCopy{From: []string{filepath.Join(src, "sub")}, To: filepath.Join(dir, "out/dir")},
			wantErr: "not a regular file",
		},
		{
			name:   "tar",
			action: &kernel.TarArchive{Dir: filepath.Join(src, "sub"), To: filepath.Join(dir, "out/sub.tar"), Prefix: "./"},
			check: func(t *testing.T, res stepResult) {
				f, err := os.Open(filepath.Join(dir, "out/sub.tar"))
				if err != nil {
					t.Fatal(err)
				}
				defer f.Close()
				if got := strings.Join(tarNames(t, f), " "); got != "./ ./b.txt" {
					t.Errorf("entries %s", got)
				}
			},
		},
		{
			name:   "dev tar",
			action: &kernel.TarArchive{Dir: src, To: filepath.Join(dir, "out/dev.tar"), Prefix: kernel.DevPrefix("1.2.3"), Dev: true},
			check: func(t *testing.T, res stepResult) {
				f, err := os.Open(filepath.Join(dir, "out/dev.tar"))
				if err != nil {
					t.Fatal(err)
				}
				defer f.Close()
				got := strings.Join(tarNames(t, f), " ")
				for _, want := range []string{"linux-headers-1.2.3/.config", "linux-headers-1.2.3/Makefile", "linux-headers-1.2.3/include/linux/x.h"} {
					if !strings.Contains(got, want) {
						t.Errorf("dev tar lacks %s: %s", want, got)
					}
				}
				if strings.Contains(got, "foo.c") || strings.Contains(got, "a.txt") {
					t.Errorf("dev tar holds sources: %s", got)
				}
			},
		},
		{
			name:    "dev tar without Module.symvers",
			action:  &kernel.TarArchive{Dir: filepath.Join(src, "sub"), To: filepath.Join(dir, "out/bad.tar"), Dev: true},
			wantErr: "kernel-dev.tar needs .config",
		},
		{
			name:    "config that was never made",
			action:  &kernel.ConfigCheck{Path: filepath.Join(src, "no-such/.config"), Want: stored, File: "kernel/6.6.x/config-x86_64"},
			wantErr: "read the built config",
			wantIs:  fs.ErrNotExist,
		},
		{
			name:   "config that matches",
			action: &kernel.ConfigCheck{Path: filepath.Join(src, ".config"), Want: stored, File: "kernel/6.6.x/config-x86_64"},
		},
		{
			name:    "config that differs",
			action:  &kernel.ConfigCheck{Path: filepath.Join(src, ".config"), Want: []byte("CONFIG_X=m\n"), File: "kernel/6.6.x/config-x86_64"},
			wantErr: "kernel/6.6.x/config-x86_64: the .config of the build differs from the stored config in CONFIG_X",
			check: func(t *testing.T, res stepResult) {
				if res.Mismatch == nil || !strings.Contains(res.Mismatch.Diff, "-CONFIG_X=m") || !strings.Contains(res.Mismatch.Diff, "+CONFIG_X=y") {
					t.Errorf("mismatch %+v", res.Mismatch)
				}
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := runStep(t, tc.action, nil)
			if tc.wantErr == "" && res.Error != "" {
				t.Fatalf("error %s", res.Error)
			}
			if tc.wantErr != "" && !strings.Contains(res.Error, tc.wantErr) {
				t.Fatalf("error %q, want %q", res.Error, tc.wantErr)
			}
			if err := res.err(); tc.wantIs != nil && !errors.Is(err, tc.wantIs) {
				t.Fatalf("error %v (errno %d) is not %v", err, res.Errno, tc.wantIs)
			}
			if tc.check != nil {
				tc.check(t, res)
			}
		})
	}
}

// TestStepTarXZ checks the source archive: the builder's xz (here the
// host's) compresses each segment; the bytes do not depend on how many run
// at once or on the segment cache, and after a change to one file only the
// segments around it are compressed again.
func TestStepTarXZ(t *testing.T) {
	if _, err := exec.LookPath("xz"); err != nil {
		t.Fatal("xz is missing (xz-utils)")
	}
	xz := []string{"xz", "-0", "-T1", "-c"}
	src := t.TempDir()
	files := map[string]string{}
	// ~28 MB in 800 files of distinct text: several segments.
	for i := range 800 {
		var b strings.Builder
		for j := range 1000 {
			fmt.Fprintf(&b, "int f%d_%d(void) { return %d; }\n", i, j, i*j)
		}
		files[filepath.Join("d", strings.Repeat("x", i%7+1), fmt.Sprintf("f%03d.c", i))] = b.String()
	}
	writeFiles(t, src, files)
	archive := func(jobs int, cache string) (data []byte, made, hits int) {
		t.Helper()
		to := filepath.Join(t.TempDir(), "linux.tar.xz")
		req, err := newStepRequest(&kernel.TarArchive{Dir: src, To: to, Prefix: "linux/", XZ: true}, time.Unix(1700000000, 0), xz)
		if err != nil {
			t.Fatal(err)
		}
		req.Jobs, req.Segments = jobs, cache
		in, _ := json.Marshal(req)
		var out bytes.Buffer
		code := stepMain(bytes.NewReader(in), &out)
		var res stepResult
		if code != 0 || json.Unmarshal(out.Bytes(), &res) != nil || res.Error != "" {
			t.Fatalf("step: exit %d, %s", code, out.String())
		}
		if _, err := fmt.Sscanf(res.Note, "%d xz segments made, %d from the segment cache", &made, &hits); err != nil {
			t.Fatalf("step said %q", res.Note)
		}
		data, err = os.ReadFile(to)
		if err != nil {
			t.Fatal(err)
		}
		return data, made, hits
	}
	one, made, _ := archive(1, "")
	if made < 3 {
		t.Fatalf("%d segments for ~28 MB, want several", made)
	}
	three, _, _ := archive(3, "")
	if !bytes.Equal(one, three) {
		t.Errorf("1 and 3 xz at once gave different archives")
	}
	tmp := filepath.Join(t.TempDir(), "a.tar.xz")
	os.WriteFile(tmp, one, 0o644)
	plain, err := exec.Command("xz", "-dc", tmp).Output()
	if err != nil {
		t.Fatalf("xz -dc of the concatenated streams: %v", err)
	}
	if names := tarNames(t, bytes.NewReader(plain)); names[0] != "linux/" || len(names) < 800 {
		t.Errorf("%d entries, first %q", len(names), names[0])
	}

	cache := t.TempDir()
	first, made1, hits1 := archive(2, cache)
	again, made2, hits2 := archive(2, cache)
	if !bytes.Equal(first, one) || !bytes.Equal(again, one) {
		t.Errorf("the segment cache changed the archive")
	}
	if hits1 != 0 || made2 != 0 || hits2 != made1 {
		t.Errorf("first run %d made %d hits, second %d made %d hits", made1, hits1, made2, hits2)
	}
	// A damaged segment in the cache (cut short: its index is gone) is
	// made again, not copied into the archive.
	kept, _ := filepath.Glob(filepath.Join(cache, "*.xz"))
	if len(kept) != made1 {
		t.Fatalf("%d segments in the cache, want %d", len(kept), made1)
	}
	if err := os.Truncate(kept[0], 100); err != nil {
		t.Fatal(err)
	}
	repaired, made4, _ := archive(2, cache)
	if !bytes.Equal(repaired, one) || made4 != 1 {
		t.Errorf("with a damaged cached segment: same archive %v, %d segments made, want 1", bytes.Equal(repaired, one), made4)
	}
	// A whole xz file of other bytes under a segment's name (a cache
	// written by something else) is made again too: its size is wrong.
	other, err := exec.Command("sh", "-c", "echo other | xz -0 -c").Output()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(kept[1], other, 0o644); err != nil {
		t.Fatal(err)
	}
	if replaced, made5, _ := archive(2, cache); !bytes.Equal(replaced, one) || made5 != 1 {
		t.Errorf("with another xz file as a cached segment: same archive %v, %d segments made, want 1", bytes.Equal(replaced, one), made5)
	}
	// One file changes size: the segments after it resynchronise.
	writeFiles(t, src, map[string]string{filepath.Join("d", "xxx", "f100.c"): files[filepath.Join("d", "xxx", "f100.c")] + "int edited;\n"})
	changed, made3, hits3 := archive(2, cache)
	clean, _, _ := archive(2, "")
	if !bytes.Equal(changed, clean) {
		t.Errorf("an archive from the segment cache differs from one made whole")
	}
	t.Logf("%d segments; after one change %d made, %d from the cache", made1, made3, hits3)
	if made3 > 3 || hits3 < made1-3 {
		t.Errorf("after one change: %d segments made, %d from the cache (of %d)", made3, hits3, made1)
	}

	to := filepath.Join(t.TempDir(), "x.tar.xz")
	res := runStep(t, &kernel.TarArchive{Dir: src, To: to, XZ: true}, []string{"xz", "--no-such-flag"})
	if !strings.Contains(res.Error, "xz") {
		t.Errorf("a failing xz gave %q", res.Error)
	}
	if _, err := os.Stat(to); err == nil {
		t.Errorf("a failed archive was left at %s", to)
	}
}

// TestWriteFileAtomicKeepsLinks checks that a step never writes through a
// hard link (or an overlay's lower file): it replaces the file.
func TestWriteFileAtomicKeepsLinks(t *testing.T) {
	dir := t.TempDir()
	orig := filepath.Join(dir, "orig")
	link := filepath.Join(dir, "link")
	os.WriteFile(orig, []byte("cached"), 0o644)
	if err := os.Link(orig, link); err != nil {
		t.Fatal(err)
	}
	if err := writeFileAtomic(link, 0o644, func(w io.Writer) error { _, err := io.WriteString(w, "new"); return err }); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(orig); string(got) != "cached" {
		t.Errorf("the linked file became %q", got)
	}
	if got, _ := os.ReadFile(link); string(got) != "new" {
		t.Errorf("the file is %q", got)
	}
	err := writeFileAtomic(filepath.Join(dir, "failed"), 0o644, func(w io.Writer) error { return errors.New("boom") })
	if err == nil {
		t.Fatal("no error")
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 2 {
		t.Errorf("a failed write left files: %v", entries)
	}
}

func TestRejectedHunks(t *testing.T) {
	patch := filepath.Join(t.TempDir(), "0001-x.patch")
	os.WriteFile(patch, []byte("--- a/init/main.c\n+++ b/init/main.c\n@@ -1,2 +1,3 @@\n one\n+new\n two\n@@ -9,2 +10,3 @@\n nine\n+ten\n eleven\n"), 0o644)
	out := "patching file init/main.c\nHunk #2 FAILED at 9.\n1 out of 2 hunks FAILED -- saving rejects to file init/main.c.rej\n"
	got := rejectedHunks(out, patch)
	if len(got) != 1 || got[0] != "--- init/main.c\n@@ -9,2 +10,3 @@\n nine\n+ten\n eleven\n" {
		t.Errorf("rejected %q", got)
	}
	if got := rejectedHunks("patching file init/main.c\n", patch); len(got) != 0 {
		t.Errorf("no failure gave %q", got)
	}
}

func TestObjectLine(t *testing.T) {
	tests := []struct {
		line string
		want bool
	}{
		{"  CC      init/main.o", true},
		{"  CC [M]  lib/crc7.o", true},
		{"  AS      arch/x86/entry/entry_64.o", true},
		{"  LD      vmlinux.o", false},
		{"  CC      scripts/mod/empty.o", true},
		{"  HOSTCC  scripts/basic/fixdep", false},
		{"  CC      init/main.c", false},
		{"make[1]: Entering directory", false},
	}
	for _, tc := range tests {
		if got := objectLine.MatchString(tc.line); got != tc.want {
			t.Errorf("%q: %v, want %v", tc.line, got, tc.want)
		}
	}
	var lines []string
	w := &lineWriter{line: func(s string) { lines = append(lines, s) }}
	io.WriteString(w, "one\ntw")
	io.WriteString(w, "o\nthree")
	w.flush()
	if strings.Join(lines, ",") != "one,two,three" {
		t.Errorf("lines %q", lines)
	}
}

func TestCheckOutputs(t *testing.T) {
	out := t.TempDir()
	writeFiles(t, out, map[string]string{"kernel": "k", "src/linux.tar.xz": "x"})
	b := &build{plan: &kernel.Plan{Outputs: []kernel.Output{{Path: "kernel"}, {Path: "src/linux.tar.xz"}}}}
	if err := b.checkOutputs(out); err != nil {
		t.Fatal(err)
	}
	writeFiles(t, out, map[string]string{"stray": ""})
	if err := b.checkOutputs(out); err == nil || !strings.Contains(err.Error(), "unexpected [stray]") {
		t.Errorf("stray file: %v", err)
	}
	b.plan.Outputs = append(b.plan.Outputs, kernel.Output{Path: "System.map"})
	if err := b.checkOutputs(out); err == nil || !strings.Contains(err.Error(), "missing [System.map]") {
		t.Errorf("missing file: %v", err)
	}
}

func TestWithoutForeignELF(t *testing.T) {
	elfFor := func(machine uint16) []byte {
		b := make([]byte, 64)
		copy(b, "\x7fELF\x02\x01\x01")
		b[18], b[19] = byte(machine), byte(machine>>8)
		return b
	}
	tree := fstest.MapFS{
		"scripts/basic/fixdep": {Data: elfFor(62), Mode: 0o755},  // a host tool of an x86_64 cross build
		"scripts/mod/modpost":  {Data: elfFor(183), Mode: 0o755}, // the target's
		"scripts/Makefile":     {Data: []byte("all:\n")},
		"scripts/short":        {Data: []byte("\x7fEL")},
	}
	var log strings.Builder
	include := withoutForeignELF(tree, 183, func(string, fs.DirEntry) bool { return true }, &log)
	var kept []string
	fs.WalkDir(tree, ".", func(name string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && include(name, d) {
			kept = append(kept, name)
		}
		return nil
	})
	if want := []string{"scripts/Makefile", "scripts/mod/modpost", "scripts/short"}; !slices.Equal(kept, want) {
		t.Errorf("kept %q, want %q", kept, want)
	}
	if !strings.Contains(log.String(), "scripts/basic/fixdep") {
		t.Errorf("the log does not name what was left out: %q", log.String())
	}
}
