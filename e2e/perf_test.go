package e2e

import (
	"bytes"
	"debug/elf"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// perf builds the test kernel's perf image (LinuxKit's kernel-perf) on the
// cache the first build filled (the source is there; perf's packages are
// not: the build installs common/Dockerfile.perf's list from the /mirror
// builder's repository) and pushes it: its four tags and no -builder, one
// static stripped /usr/bin/perf that runs in the builder, an image that
// exists is skipped, and lkbuild verify rebuilds it bit for bit from what
// it records.
func (e *env) perf(t *testing.T, cache, kdir, org, builderRef string) {
	tags := strings.Fields(run(t, "", e.bin, "tags", "--kernel-dir", kdir, "--series", series, "--arch", "x86_64", "--org", org, "--tool", "perf"))
	if len(tags) != 4 || !strings.HasPrefix(tags[0], org+"/kernel-perf:"+version+"-") || tags[3] != org+"/kernel-perf:"+version {
		t.Fatalf("lkbuild tags --tool perf printed %q: want the kernel's four tags under kernel-perf, no -builder", tags)
	}
	archTag := tags[0]
	out := filepath.Join(e.work, "oci-perf")
	r := e.lkbuild(t, nil, e.buildArgs(cache, out, kdir, org, "--tool", "perf", "--push")...)
	if r.code != 0 {
		t.Fatalf("perf build failed (exit %d):\n%s\n%s", r.code, r.stderr, tailString(r.stdout, 40))
	}
	res := r.final()
	t.Logf("perf build: %s in %s", res.Ref, r.elapsed.Round(time.Second))
	checkEvents(t, r, "fetch", "rootfs", "patch", "compile", "package", "push")
	if !strings.Contains(r.stdout, "common/Dockerfile.perf installs, from the builder's own repository (/mirror), with no network") {
		t.Errorf("the perf build did not install Dockerfile.perf's packages from /mirror:\n%s", tailString(r.stdout, 60))
	}
	pushed := slices.Sorted(slices.Values(res.Pushed))
	if res.Ref != archTag || res.Release != "" || !slices.Equal(pushed, slices.Sorted(slices.Values(tags))) {
		t.Errorf("result = %+v, want %s pushed under %q", res, archTag, tags)
	}
	for _, tag := range tags {
		if d := e.digest(t, tag); d == "" {
			t.Errorf("%s was not pushed", tag)
		}
	}
	if e.exists(t, org+"/kernel-perf:"+version+"-builder") {
		t.Errorf("a perf build pushed a -builder tag")
	}
	names := layoutNames(t, out)
	for _, tag := range tags {
		if names[tag] == "" {
			t.Errorf("the layout has no %s: %v", tag, names)
		}
	}

	img := e.unpack(t, archTag)
	t.Run("image", func(t *testing.T) {
		if want := []string{"usr/", "usr/bin/", "usr/bin/perf"}; !slices.Equal(img.entries, want) {
			t.Errorf("layer entries %q, want %q", img.entries, want)
		}
		if m := img.modes["usr/bin/perf"]; m != 0o755 {
			t.Errorf("usr/bin/perf has mode %o, want 755", m)
		}
		c := img.config.Config
		if len(c.Entrypoint) != 0 || len(c.Cmd) != 0 || c.WorkingDir != "/" || img.config.Architecture != "amd64" {
			t.Errorf("config = %+v, %s: want upstream's FROM scratch with ENTRYPOINT [], CMD [], WORKDIR /", c, img.config.Architecture)
		}
		if a := img.manifest.Annotations; a["dev.lkbuild.tool"] != "perf" || a["dev.lkbuild.arch"] != "x86_64" {
			t.Errorf("annotations %v: want the tool recorded", a)
		}
		f, err := elf.NewFile(bytes.NewReader(img.read(t, "usr/bin/perf")))
		if err != nil {
			t.Fatalf("usr/bin/perf: %v", err)
		}
		if f.Machine != elf.EM_X86_64 || f.Type != elf.ET_EXEC {
			t.Errorf("usr/bin/perf is %v %v, want a static x86-64 executable", f.Machine, f.Type)
		}
		for _, p := range f.Progs {
			if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
				t.Errorf("usr/bin/perf has a %v segment: it is not linked statically", p.Type)
			}
		}
		if f.Section(".symtab") != nil || f.Section(".debug_info") != nil {
			t.Errorf("usr/bin/perf is not stripped")
		}
	})

	// perf itself, from the image's file, in the builder the kernel is
	// built in: the version of the source, and the features the static
	// libraries of Dockerfile.perf's packages give.
	t.Run("runs", func(t *testing.T) {
		bin := filepath.Join(img.root, "usr/bin/perf")
		if err := os.Chmod(bin, 0o755); err != nil { // unpack keeps no modes
			t.Fatal(err)
		}
		run := func(args ...string) string {
			r := e.lkbuild(t, nil, slices.Concat([]string{"--cache-dir", cache, "run", "--builder-image", builderRef, "--insecure-registry",
				"--bind", bin + ":/perf:ro", "--", "/perf"}, args)...)
			if r.code != 0 {
				t.Fatalf("perf %s: exit %d\n%s%s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
			}
			return r.stdout
		}
		if out := run("--version"); out != "perf version "+version+"\n" {
			t.Errorf("perf --version printed %q", out)
		}
		// "                  zlib: [ on  ]  # HAVE_ZLIB_SUPPORT"
		opts := run("version", "--build-options")
		for _, feature := range []string{"libelf", "libtraceevent", "zlib", "zstd", "lzma"} {
			if !regexp.MustCompile(`(?m)^ *` + feature + `: \[ on  \]`).MatchString(opts) {
				t.Errorf("perf was built without %s:\n%s", feature, opts)
			}
		}
	})

	t.Run("skip", func(t *testing.T) {
		r := e.lkbuild(t, nil, e.buildArgs(cache, out, kdir, org, "--tool", "perf", "--push")...)
		if r.code != 0 || !r.final().Skipped {
			t.Errorf("perf rebuild: exit %d, %+v\n%s", r.code, r.final(), r.stderr)
		}
	})

	// The build again, from what the image records, compared member by
	// member: the same digest.
	t.Run("verify", func(t *testing.T) {
		r := e.lkbuild(t, nil, "--cache-dir", cache, "verify", "--kernel-dir", kdir,
			"--source-mirror", e.mirror, "--insecure-registry", "--json", archTag)
		t.Logf("verify of the perf image: %s", r.elapsed.Round(time.Second))
		var v verifyOutput
		if err := json.Unmarshal([]byte(r.stdout), &v); err != nil || r.code != 0 || !v.Identical || v.Rebuilt != res.Digest {
			t.Errorf("verify: exit %d, %+v (%v)\n%s\n%s", r.code, v, err, r.stderr, tailString(r.stdout, 20))
		}
		if !strings.HasPrefix(v.Provenance, "checked") {
			t.Errorf("verify did not check the perf image's attached provenance: %q", v.Provenance)
		}
	})
}
