package imagediff

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

var epoch = time.Unix(1_700_000_000, 0).UTC()

// file is a tar member to write; the zero values of typ, mode and mtime
// give a regular file, 0644 and epoch.
type file struct {
	name  string
	typ   byte
	mode  int64
	mtime time.Time
	uid   int
	body  string
	link  string
}

func tarOf(t *testing.T, files ...file) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		h := &tar.Header{
			Name:     f.name,
			Typeflag: f.typ,
			Mode:     f.mode,
			ModTime:  f.mtime,
			Uid:      f.uid,
			Linkname: f.link,
			Format:   tar.FormatPAX,
		}
		if h.Typeflag == 0 {
			h.Typeflag = tar.TypeReg
		}
		if h.Mode == 0 {
			h.Mode = 0o644
		}
		if h.ModTime.IsZero() {
			h.ModTime = epoch
		}
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(f.body))
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(tw, f.body); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func gzipOf(t *testing.T, data []byte, level int) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, level)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := zw.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func xzOf(t *testing.T, data []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw, err := xz.NewWriter(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := zw.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func zstdOf(t *testing.T, data []byte) []byte {
	t.Helper()
	zw, err := zstd.NewWriter(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer zw.Close()
	return zw.EncodeAll(data, nil)
}

// layerOf makes a layer of blob, a tar or a gzip- or zstd-compressed tar
// (ggcr sniffs which).
func layerOf(t *testing.T, blob []byte, opts ...tarball.LayerOption) v1.Layer {
	t.Helper()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(blob)), nil
	}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// imageOf makes an image of layers, each given by its tar.
func imageOf(t *testing.T, tars ...[]byte) v1.Image {
	t.Helper()
	var ls []v1.Layer
	for _, data := range tars {
		ls = append(ls, layerOf(t, data))
	}
	return imageOfLayers(t, ls...)
}

func imageOfLayers(t *testing.T, ls ...v1.Layer) v1.Image {
	t.Helper()
	img, err := mutate.AppendLayers(empty.Image, ls...)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func sha(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// members lists r's members, layer by layer.
func members(r *Report) []Member {
	var out []Member
	for _, l := range r.Layers {
		out = append(out, l.Members...)
	}
	return out
}

// paths lists the paths of r's members, layer by layer.
func paths(r *Report) []string {
	var out []string
	for _, m := range members(r) {
		out = append(out, m.Path)
	}
	return out
}

func member(t *testing.T, r *Report, path string) Member {
	t.Helper()
	for _, m := range members(r) {
		if m.Path == path {
			return m
		}
	}
	t.Fatalf("no member %q in %q", path, paths(r))
	return Member{}
}

func wantPaths(t *testing.T, r *Report, want ...string) {
	t.Helper()
	got := paths(r)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("members %q, want %q", got, want)
	}
}

// nest wraps inner in tars named names[0], names[1], ..., the last
// innermost, each holding the next as its only member.
func nest(t *testing.T, names []string, inner []byte) []byte {
	t.Helper()
	data := inner
	for i := len(names) - 1; i >= 0; i-- {
		data = tarOf(t, file{name: names[i], body: string(data)})
	}
	return data
}

func TestCompare(t *testing.T) {
	kernelTar := func(ko, config string) []byte {
		return tarOf(t,
			file{name: "lib/", typ: tar.TypeDir, mode: 0o755},
			file{name: "lib/modules/x/foo.ko", body: ko},
			file{name: "lib/modules/x/config", body: config},
		)
	}
	srcXZ := func(makefile string) []byte {
		inner := tarOf(t, file{name: "linux/Makefile", body: makefile}, file{name: "linux/README", body: "same\n"})
		return xzOf(t, tarOf(t, file{name: "linux/inner.tar", body: string(inner)}, file{name: "linux/COPYING", body: "gpl\n"}))
	}
	config := func(lines ...string) string { return strings.Join(lines, "\n") + "\n" }

	for _, tc := range []struct {
		name  string
		a, b  v1.Image
		opts  Options
		check func(t *testing.T, r *Report)
	}{
		{
			name: "identical",
			a:    imageOf(t, tarOf(t, file{name: "kernel", body: "k"})),
			b:    imageOf(t, tarOf(t, file{name: "kernel", body: "k"})),
			check: func(t *testing.T, r *Report) {
				if !r.Identical || r.A != r.B || len(r.Manifest)+len(r.Config)+len(r.Layers) != 0 {
					t.Fatalf("report %+v, want identical and nothing else", r)
				}
			},
		},
		{
			name: "changed file",
			a:    imageOf(t, tarOf(t, file{name: "same", body: "s"}, file{name: "kernel", body: "one\x00"})),
			b:    imageOf(t, tarOf(t, file{name: "same", body: "s"}, file{name: "kernel", body: "three\x00"})),
			check: func(t *testing.T, r *Report) {
				wantPaths(t, r, "kernel")
				m := member(t, r, "kernel")
				if m.A.Size != 4 || m.B.Size != 6 || m.A.SHA256 != sha("one\x00") || m.B.SHA256 != sha("three\x00") {
					t.Errorf("entries %+v and %+v", m.A, m.B)
				}
				if m.Diff != "" {
					t.Errorf("binary member has a diff:\n%s", m.Diff)
				}
				if r.Identical || len(r.Layers) != 1 || r.Layers[0].Index != 0 || r.Layers[0].A.DiffID == r.Layers[0].B.DiffID {
					t.Errorf("layers %+v", r.Layers)
				}
				if len(r.Manifest) != 0 || len(r.Config) != 0 {
					t.Errorf("manifest fields %+v, config fields %+v; want none (digests are left out)", r.Manifest, r.Config)
				}
			},
		},
		{
			name: "member on one side",
			a:    imageOf(t, tarOf(t, file{name: "x", body: "x"}, file{name: "only-a", body: "a"})),
			b:    imageOf(t, tarOf(t, file{name: "only-b", body: "b"}, file{name: "x", body: "x"})),
			check: func(t *testing.T, r *Report) {
				wantPaths(t, r, "only-a", "only-b")
				if m := member(t, r, "only-a"); m.A == nil || m.B != nil {
					t.Errorf("only-a: %+v", m)
				}
				if m := member(t, r, "only-b"); m.A != nil || m.B == nil || m.B.SHA256 != sha("b") {
					t.Errorf("only-b: %+v", m)
				}
			},
		},
		{
			name: "mode only",
			a:    imageOf(t, tarOf(t, file{name: "bin/tool", body: "#!/bin/sh\n", mode: 0o644})),
			b:    imageOf(t, tarOf(t, file{name: "bin/tool", body: "#!/bin/sh\n", mode: 0o4755})),
			check: func(t *testing.T, r *Report) {
				m := member(t, r, "bin/tool")
				if m.A.Mode != 0o644 || m.B.Mode != 0o4755 || m.A.SHA256 != m.B.SHA256 || m.Diff != "" {
					t.Errorf("member %+v, a %+v, b %+v", m, m.A, m.B)
				}
			},
		},
		{
			name: "mtime only",
			a:    imageOf(t, tarOf(t, file{name: "f", body: "x"})),
			b:    imageOf(t, tarOf(t, file{name: "f", body: "x", mtime: epoch.Add(time.Hour)})),
			check: func(t *testing.T, r *Report) {
				m := member(t, r, "f")
				if !m.A.ModTime.Equal(epoch) || !m.B.ModTime.Equal(epoch.Add(time.Hour)) {
					t.Errorf("times %v and %v", m.A.ModTime, m.B.ModTime)
				}
			},
		},
		{
			name: "text diff",
			a:    imageOf(t, tarOf(t, file{name: ".config", body: config("CONFIG_A=y", "CONFIG_FOO=y", "CONFIG_Z=m")})),
			b:    imageOf(t, tarOf(t, file{name: ".config", body: config("CONFIG_A=y", "# CONFIG_FOO is not set", "CONFIG_Z=m")})),
			check: func(t *testing.T, r *Report) {
				d := member(t, r, ".config").Diff
				for _, want := range []string{"--- a/.config\n+++ b/.config\n", "\n-CONFIG_FOO=y\n", "\n+# CONFIG_FOO is not set\n", "\n CONFIG_Z=m\n"} {
					if !strings.Contains(d, want) {
						t.Errorf("diff lacks %q:\n%s", want, d)
					}
				}
			},
		},
		{
			name: "text larger than MaxTextDiff",
			a:    imageOf(t, tarOf(t, file{name: "t", body: "0123456789a\n"})),
			b:    imageOf(t, tarOf(t, file{name: "t", body: "0123456789b\n"})),
			opts: Options{MaxTextDiff: 10},
			check: func(t *testing.T, r *Report) {
				if d := member(t, r, "t").Diff; d != "" {
					t.Errorf("diff of a member over MaxTextDiff:\n%s", d)
				}
			},
		},
		{
			name: "text diffs off",
			a:    imageOf(t, tarOf(t, file{name: "t", body: "a\n"})),
			b:    imageOf(t, tarOf(t, file{name: "t", body: "b\n"})),
			opts: Options{MaxTextDiff: -1},
			check: func(t *testing.T, r *Report) {
				if d := member(t, r, "t").Diff; d != "" {
					t.Errorf("diff with MaxTextDiff < 0:\n%s", d)
				}
			},
		},
		{
			name: "invalid UTF-8 is not text",
			a:    imageOf(t, tarOf(t, file{name: "t", body: "a\xff\n"})),
			b:    imageOf(t, tarOf(t, file{name: "t", body: "b\n"})),
			check: func(t *testing.T, r *Report) {
				if d := member(t, r, "t").Diff; d != "" {
					t.Errorf("diff of a non-UTF-8 member:\n%s", d)
				}
			},
		},
		{
			name: "inside kernel.tar",
			a:    imageOf(t, tarOf(t, file{name: "kernel", body: "k"}, file{name: "kernel.tar", body: string(kernelTar("ko1\x00", config("CONFIG_X=y")))})),
			b:    imageOf(t, tarOf(t, file{name: "kernel", body: "k"}, file{name: "kernel.tar", body: string(kernelTar("ko2\x00", config("CONFIG_X=m")))})),
			check: func(t *testing.T, r *Report) {
				wantPaths(t, r, "kernel.tar", "kernel.tar/lib/modules/x/foo.ko", "kernel.tar/lib/modules/x/config")
				if m := member(t, r, "kernel.tar/lib/modules/x/foo.ko"); m.A.SHA256 != sha("ko1\x00") || m.B.SHA256 != sha("ko2\x00") {
					t.Errorf("foo.ko: %+v %+v", m.A, m.B)
				}
				d := member(t, r, "kernel.tar/lib/modules/x/config").Diff
				if !strings.HasPrefix(d, "--- a/kernel.tar/lib/modules/x/config\n") || !strings.Contains(d, "\n+CONFIG_X=m\n") {
					t.Errorf("diff:\n%s", d)
				}
			},
		},
		{
			name: "tar inside tar.xz",
			a:    imageOf(t, tarOf(t, file{name: "src/linux.tar.xz", body: string(srcXZ("VERSION = 6\n"))})),
			b:    imageOf(t, tarOf(t, file{name: "src/linux.tar.xz", body: string(srcXZ("VERSION = 7\n"))})),
			check: func(t *testing.T, r *Report) {
				wantPaths(t, r, "src/linux.tar.xz", "src/linux.tar.xz/linux/inner.tar", "src/linux.tar.xz/linux/inner.tar/linux/Makefile")
				d := member(t, r, "src/linux.tar.xz/linux/inner.tar/linux/Makefile").Diff
				if !strings.Contains(d, "-VERSION = 6\n+VERSION = 7\n") {
					t.Errorf("diff:\n%s", d)
				}
			},
		},
		{
			name: "nested tar compressed differently",
			a:    imageOf(t, tarOf(t, file{name: "k.tar.gz", body: string(gzipOf(t, kernelTar("ko", "c"), 1))})),
			b:    imageOf(t, tarOf(t, file{name: "k.tar.gz", body: string(gzipOf(t, kernelTar("ko", "c"), 9))})),
			check: func(t *testing.T, r *Report) {
				wantPaths(t, r, "k.tar.gz")
				if n := member(t, r, "k.tar.gz").Note; n != noteHeadersCompressed {
					t.Errorf("note %q", n)
				}
			},
		},
		{
			name: "too deep",
			a:    imageOf(t, nest(t, []string{"1.tar", "2.tar", "3.tar", "4.tar", "5.tar"}, tarOf(t, file{name: "f", body: "a"}))),
			b:    imageOf(t, nest(t, []string{"1.tar", "2.tar", "3.tar", "4.tar", "5.tar"}, tarOf(t, file{name: "f", body: "b"}))),
			check: func(t *testing.T, r *Report) {
				wantPaths(t, r, "1.tar", "1.tar/2.tar", "1.tar/2.tar/3.tar", "1.tar/2.tar/3.tar/4.tar", "1.tar/2.tar/3.tar/4.tar/5.tar")
				if n := member(t, r, "1.tar/2.tar/3.tar/4.tar/5.tar").Note; !strings.Contains(n, "not compared inside") {
					t.Errorf("note %q", n)
				}
			},
		},
		{
			name: "label and annotation",
			a: func() v1.Image {
				img, err := mutate.Config(imageOf(t, tarOf(t, file{name: "f"})), v1.Config{Labels: map[string]string{"org.example.k": "1", "org.example.same": "s"}})
				if err != nil {
					t.Fatal(err)
				}
				return mutate.Annotations(img, map[string]string{"org.example.a": "<x>"}).(v1.Image)
			}(),
			b: func() v1.Image {
				img, err := mutate.Config(imageOf(t, tarOf(t, file{name: "f"})), v1.Config{Labels: map[string]string{"org.example.k": "2", "org.example.same": "s", "org.example.new": "n"}})
				if err != nil {
					t.Fatal(err)
				}
				return mutate.Annotations(img, map[string]string{"org.example.b": "y"}).(v1.Image)
			}(),
			check: func(t *testing.T, r *Report) {
				wantConfig := []Field{
					{Path: "config.Labels.org.example.k", A: `"1"`, B: `"2"`},
					{Path: "config.Labels.org.example.new", B: `"n"`},
				}
				if !equalFields(r.Config, wantConfig) {
					t.Errorf("config fields %+v, want %+v", r.Config, wantConfig)
				}
				wantManifest := []Field{
					{Path: "annotations.org.example.a", A: `"<x>"`},
					{Path: "annotations.org.example.b", B: `"y"`},
				}
				if !equalFields(r.Manifest, wantManifest) {
					t.Errorf("manifest fields %+v, want %+v", r.Manifest, wantManifest)
				}
				if len(r.Layers) != 0 {
					t.Errorf("layers %+v", r.Layers)
				}
			},
		},
		{
			name: "layer count",
			a:    imageOf(t, tarOf(t, file{name: "f", body: "x"})),
			b:    imageOf(t, tarOf(t, file{name: "f", body: "x"}), tarOf(t, file{name: "extra/", typ: tar.TypeDir}, file{name: "extra/g", body: "g"})),
			check: func(t *testing.T, r *Report) {
				if len(r.Layers) != 1 || r.Layers[0].Index != 1 || r.Layers[0].A != nil || r.Layers[0].B == nil {
					t.Fatalf("layers %+v", r.Layers)
				}
				wantPaths(t, r, "extra/", "extra/g")
				if m := member(t, r, "extra/"); m.A != nil || m.B.Type != TypeDir {
					t.Errorf("extra/: %+v", m)
				}
			},
		},
		{
			name: "empty layer on one side",
			a:    imageOf(t, tarOf(t, file{name: "f", body: "x"}), tarOf(t)),
			b:    imageOf(t, tarOf(t, file{name: "f", body: "x"})),
			check: func(t *testing.T, r *Report) {
				if len(r.Layers) != 1 || r.Layers[0].B != nil || len(r.Layers[0].Members) != 1 || r.Layers[0].Members[0].Note == "" {
					t.Fatalf("layers %+v", r.Layers)
				}
			},
		},
		{
			name: "order only",
			a:    imageOf(t, tarOf(t, file{name: "x", body: "x"}, file{name: "y", body: "y"})),
			b:    imageOf(t, tarOf(t, file{name: "y", body: "y"}, file{name: "x", body: "x"})),
			check: func(t *testing.T, r *Report) {
				if len(r.Layers) != 1 || len(r.Layers[0].Members) != 1 {
					t.Fatalf("layers %+v", r.Layers)
				}
				if m := r.Layers[0].Members[0]; m.Path != "" || m.A != nil || m.B != nil || m.Note != noteOrder {
					t.Errorf("member %+v, want a note on the order", m)
				}
			},
		},
		{
			name: "names spelt differently",
			a:    imageOf(t, tarOf(t, file{name: "./d/", typ: tar.TypeDir, mode: 0o755}, file{name: "./d/x", body: "x"})),
			b:    imageOf(t, tarOf(t, file{name: "d", typ: tar.TypeDir, mode: 0o755}, file{name: "d/x", body: "x"})),
			check: func(t *testing.T, r *Report) {
				if m := r.Layers[0].Members; len(m) != 1 || m[0].Note != noteHeaders {
					t.Errorf("members %+v, want the note on headers", m)
				}
			},
		},
		{
			name: "duplicate names: the last wins",
			a:    imageOf(t, tarOf(t, file{name: "x", body: "old"}, file{name: "y"}, file{name: "x", body: "new"})),
			b:    imageOf(t, tarOf(t, file{name: "x", body: "new"}, file{name: "y"})),
			check: func(t *testing.T, r *Report) {
				if m := r.Layers[0].Members; len(m) != 1 || m[0].Note != noteHeaders {
					t.Errorf("members %+v, want the note on headers", m)
				}
			},
		},
		{
			name: "duplicate names: a later one differs",
			a:    imageOf(t, tarOf(t, file{name: "x", body: "new"}, file{name: "x", body: "old"})),
			b:    imageOf(t, tarOf(t, file{name: "x", body: "new"})),
			check: func(t *testing.T, r *Report) {
				if m := member(t, r, "x"); m.A.SHA256 != sha("old") {
					t.Errorf("a: %+v, want the last entry", m.A)
				}
			},
		},
		{
			name: "same tar compressed differently",
			a:    imageOfLayers(t, layerOf(t, tarOf(t, file{name: "f", body: strings.Repeat("abc", 1000)}), tarball.WithCompressionLevel(1))),
			b:    imageOfLayers(t, layerOf(t, tarOf(t, file{name: "f", body: strings.Repeat("abc", 1000)}), tarball.WithCompressionLevel(9))),
			check: func(t *testing.T, r *Report) {
				if len(r.Layers) != 1 || len(r.Layers[0].Members) != 1 || !strings.Contains(r.Layers[0].Members[0].Note, "compressed differently") {
					t.Fatalf("layers %+v", r.Layers)
				}
			},
		},
		{
			name: "zstd layer against gzip layer",
			a:    imageOfLayers(t, layerOf(t, gzipOf(t, tarOf(t, file{name: "f", body: "1"}), 6))),
			b:    imageOfLayers(t, layerOf(t, zstdOf(t, tarOf(t, file{name: "f", body: "2"})), tarball.WithMediaType(types.OCILayerZStd))),
			check: func(t *testing.T, r *Report) {
				wantPaths(t, r, "f")
				if m := member(t, r, "f"); m.B.SHA256 != sha("2") || m.Diff != "--- a/f\n+++ b/f\n@@ -1 +1 @@\n-1\n\\ No newline at end of file\n+2\n\\ No newline at end of file\n" {
					t.Errorf("member %+v, b %+v", m, m.B)
				}
			},
		},
		{
			name: "corrupt nested tar",
			a:    imageOf(t, tarOf(t, file{name: "x.tar.gz", body: string(gzipOf(t, tarOf(t, file{name: "f", body: "1"}), 6))})),
			b:    imageOf(t, tarOf(t, file{name: "x.tar.gz", body: "\x1f\x8bnot gzip at all"})),
			check: func(t *testing.T, r *Report) {
				wantPaths(t, r, "x.tar.gz")
				if n := member(t, r, "x.tar.gz").Note; !strings.HasPrefix(n, "cannot be read as a tar") || !strings.Contains(n, "gzip") {
					t.Errorf("note %q", n)
				}
			},
		},
		{
			name: "truncated nested tar",
			a:    imageOf(t, tarOf(t, file{name: "x.tar", body: string(tarOf(t, file{name: "f", body: strings.Repeat("1", 400)}))})),
			b:    imageOf(t, tarOf(t, file{name: "x.tar", body: string(tarOf(t, file{name: "f", body: strings.Repeat("2", 400)})[:700])})),
			check: func(t *testing.T, r *Report) {
				wantPaths(t, r, "x.tar")
				if n := member(t, r, "x.tar").Note; !strings.HasPrefix(n, "cannot be read as a tar") {
					t.Errorf("note %q", n)
				}
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := Compare(context.Background(), tc.a, tc.b, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := json.Marshal(r); err != nil {
				t.Fatal(err)
			}
			tc.check(t, r)
		})
	}
}

func equalFields(got, want []Field) bool {
	if len(got) != len(want) {
		return false
	}
	for i := range got {
		if got[i] != want[i] {
			return false
		}
	}
	return true
}

// TestHostileNames checks that member names that would escape an
// extraction root are reported as they are, and that nothing is written.
func TestHostileNames(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	evil := func(body string) []byte {
		return tarOf(t,
			file{name: "../../etc/passwd", body: body},
			file{name: "/etc/shadow", body: body},
			file{name: "link", typ: tar.TypeSymlink, link: "/" + body},
		)
	}
	a := imageOf(t, tarOf(t, file{name: "evil.tar", body: string(evil("a"))}))
	b := imageOf(t, tarOf(t, file{name: "evil.tar", body: string(evil("b"))}))
	r, err := Compare(context.Background(), a, b, Options{})
	if err != nil {
		t.Fatal(err)
	}
	wantPaths(t, r, "evil.tar", "evil.tar/../../etc/passwd", "evil.tar//etc/shadow", "evil.tar/link")
	if m := member(t, r, "evil.tar/link"); m.A.Linkname != "/a" || m.B.Linkname != "/b" {
		t.Errorf("link: %+v %+v", m.A, m.B)
	}
	if d := member(t, r, "evil.tar/../../etc/passwd").Diff; !strings.HasPrefix(d, "--- a/evil.tar/../../etc/passwd\n") {
		t.Errorf("diff:\n%s", d)
	}
	if ents, err := os.ReadDir(dir); err != nil || len(ents) != 0 {
		t.Errorf("working directory holds %v (%v), want nothing", ents, err)
	}
}

func TestJSON(t *testing.T) {
	a := imageOf(t, tarOf(t, file{name: "f", body: "a\n"}))
	b := imageOf(t, tarOf(t, file{name: "f", body: "b\n"}))
	r, err := Compare(context.Background(), a, b, Options{})
	if err != nil {
		t.Fatal(err)
	}
	out, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"a":"sha256:`, `"identical":false`, `"layers":[{"index":0,"a":{"digest":"sha256:`, `"diffID":"sha256:`, `"members":[{"path":"f","a":{"type":"file","mode":420,"uid":0,"gid":0,"modTime":"2023-11-14T22:13:20Z","size":2,"sha256":"`, `"diff":"--- a/f\n`} {
		if !bytes.Contains(out, []byte(want)) {
			t.Errorf("JSON lacks %s:\n%s", want, out)
		}
	}
}

// failingLayer is a layer whose content cannot be read.
type failingLayer struct {
	v1.Layer
	err error
}

func (l failingLayer) Uncompressed() (io.ReadCloser, error) { return nil, l.err }

// cancellingLayer cancels a context when its content is read.
type cancellingLayer struct {
	v1.Layer
	cancel func()
}

func (l cancellingLayer) Uncompressed() (io.ReadCloser, error) {
	l.cancel()
	return l.Layer.Uncompressed()
}

func TestCompareErrors(t *testing.T) {
	errBroken := errors.New("broken blob")
	a := imageOf(t, tarOf(t, file{name: "f", body: "a"}))
	lb := layerOf(t, tarOf(t, file{name: "f", body: "b"}))

	t.Run("layer unreadable", func(t *testing.T) {
		b := imageOfLayers(t, failingLayer{Layer: lb, err: errBroken})
		_, err := Compare(context.Background(), a, b, Options{})
		if !errors.Is(err, errBroken) || !strings.HasPrefix(err.Error(), "layer 0: ") {
			t.Fatalf("err = %v, want %v naming layer 0", err, errBroken)
		}
	})
	t.Run("cancelled before", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, err := Compare(ctx, a, imageOfLayers(t, lb), Options{}); err != context.Canceled {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
	})
	t.Run("cancelled while reading", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		b := imageOfLayers(t, cancellingLayer{Layer: lb, cancel: cancel})
		if _, err := Compare(ctx, a, b, Options{}); err != context.Canceled {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
	})
}

// TestTextBatches makes the text diffs of one tar take several passes.
func TestTextBatches(t *testing.T) {
	var fa, fb []file
	for _, name := range []string{"1", "2", "3", "4", "5"} {
		fa = append(fa, file{name: name, body: name + " a\n"})
		fb = append(fb, file{name: name, body: name + " b\n"})
	}
	a, b := imageOf(t, tarOf(t, fa...)), imageOf(t, tarOf(t, fb...))
	c := newComparer(Options{})
	c.textBatch = 8 // two members a pass
	r, err := c.compare(context.Background(), a, b)
	if err != nil {
		t.Fatal(err)
	}
	wantPaths(t, r, "1", "2", "3", "4", "5")
	for _, m := range members(r) {
		if !strings.Contains(m.Diff, "+"+m.Path+" b\n") {
			t.Errorf("%s: diff\n%s", m.Path, m.Diff)
		}
	}
}

func TestDiffJSON(t *testing.T) {
	noSkip := func(string, bool) bool { return false }
	for _, tc := range []struct {
		name string
		a, b string
		want []Field
	}{
		{name: "equal", a: `{"a":1}`, b: `{"a":1}`},
		{
			name: "encoding only",
			a:    `{"a":1,"b":[true]}`, b: `{"b": [true], "a": 1}`,
			want: []Field{{Note: "the things hold the same JSON, encoded differently (key order, spacing or escapes)"}},
		},
		{
			name: "nested keys in order",
			a:    `{"z":{"k.1":"x","k2":null},"a":1.0}`,
			b:    `{"z":{"k.1":"y","k3":"<b>"},"a":1}`,
			want: []Field{
				{Path: "a", A: "1.0", B: "1"},
				{Path: "z.k.1", A: `"x"`, B: `"y"`},
				{Path: "z.k2", A: "null"},
				{Path: "z.k3", B: `"<b>"`},
			},
		},
		{
			name: "arrays by index",
			a:    `{"env":["A=1","B=2"]}`,
			b:    `{"env":["A=1","B=3","C=4"]}`,
			want: []Field{{Path: "env.1", A: `"B=2"`, B: `"B=3"`}, {Path: "env.2", B: `"C=4"`}},
		},
		{
			name: "type change",
			a:    `{"x":{"y":1}}`,
			b:    `{"x":[1]}`,
			want: []Field{{Path: "x", A: `{"y":1}`, B: `[1]`}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := diffJSON("thing", []byte(tc.a), []byte(tc.b), noSkip)
			if err != nil {
				t.Fatal(err)
			}
			if !equalFields(got, tc.want) {
				t.Errorf("fields %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestSkipManifestField(t *testing.T) {
	for _, tc := range []struct {
		path string
		both bool
		want bool
	}{
		{"config.digest", true, true},
		{"config.mediaType", true, false},
		{"layers", false, true},
		{"layers", true, false},
		{"layers.3", false, true},
		{"layers.3", true, false},
		{"layers.3.digest", true, true},
		{"layers.3.size", true, true},
		{"layers.3.mediaType", true, false},
		{"layers.3.annotations.x", true, false},
		{"annotations.layers.3", false, false},
	} {
		if got := skipManifestField(tc.path, tc.both); got != tc.want {
			t.Errorf("skipManifestField(%q, %v) = %v, want %v", tc.path, tc.both, got, tc.want)
		}
	}
}

// TestTextDiffBudget: two trees that differ everywhere give at most
// maxTextDiffs diffs; the members past it say why they have none.
func TestTextDiffBudget(t *testing.T) {
	var fa, fb []file
	for i := range maxTextDiffs + 5 {
		n := fmt.Sprintf("f%03d.c", i)
		fa = append(fa, file{name: n, body: "old\n"})
		fb = append(fb, file{name: n, body: "new\n"})
	}
	r, err := Compare(context.Background(), imageOf(t, tarOf(t, fa...)), imageOf(t, tarOf(t, fb...)), Options{})
	if err != nil {
		t.Fatal(err)
	}
	diffs, noted := 0, 0
	for _, m := range members(r) {
		switch {
		case m.Diff != "":
			diffs++
		case strings.Contains(m.Note, "no text diff"):
			noted++
		}
	}
	if diffs != maxTextDiffs || noted != 5 {
		t.Errorf("%d diffs and %d noted, want %d and 5", diffs, noted, maxTextDiffs)
	}
}
