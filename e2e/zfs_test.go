package e2e

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lkbuild/lkbuild/internal/boottest"
	"github.com/lkbuild/lkbuild/internal/pgptest"
	"github.com/lkbuild/lkbuild/internal/testenv"
)

// zfsVersion is the OpenZFS release of testdata's Dockerfile.zfs and of
// LKBUILD_E2E_ZFS_MIRROR (scripts/fixtures/zfs-source.sh).
const zfsVersion = "2.3.2"

// zfs builds the ZFS modules image (LinuxKit's make push_zfs_<series>) of
// the test kernel on the cache the first build filled, so that only
// OpenZFS compiles (the kernel's kept object tree, the same builder), and
// pushes it: its tags, a module tree with the kernel's modules and
// OpenZFS's, depmod's index listing them, zfs.ko's vermagic the kernel's
// release; a boot of the kernel that modprobes zfs from the image's tree;
// lkbuild verify rebuilding it bit for bit; and an OpenZFS release that
// does not support the kernel, refused before anything compiles.
func (e *env) zfs(t *testing.T, cache, kdir, org string, kernelImg *image) {
	mirror := testenv.Getenv(t, "LKBUILD_E2E_ZFS_MIRROR", "run scripts/fixtures/e2e.sh")
	keys := testenv.Getenv(t, "LKBUILD_E2E_ZFS_KEYS", "run scripts/fixtures/e2e.sh")
	tags := strings.Fields(run(t, "", e.bin, "tags", "--kernel-dir", kdir, "--series", series, "--arch", "x86_64", "--org", org, "--tool", "zfs-kmod"))
	if len(tags) != 4 || !strings.HasPrefix(tags[0], org+"/zfs-kmod:"+version+"-") || tags[3] != org+"/zfs-kmod:"+version {
		t.Fatalf("lkbuild tags --tool zfs-kmod printed %q: want the kernel's four tags under zfs-kmod, no -builder", tags)
	}
	archTag := tags[0]
	zfsFlags := []string{"--tool", "zfs-kmod", "--zfs-mirror", mirror, "--zfs-keys", keys}
	out := filepath.Join(e.work, "oci-zfs")
	r := e.lkbuild(t, nil, e.buildArgs(cache, out, kdir, org, append(zfsFlags, "--push")...)...)
	if r.code != 0 {
		t.Fatalf("zfs-kmod build failed (exit %d):\n%s\n%s", r.code, r.stderr, tailString(r.stdout, 40))
	}
	res := r.final()
	t.Logf("zfs-kmod build: %s in %s (incremental %v)", res.Ref, r.elapsed.Round(time.Second), res.Incremental)
	checkEvents(t, r, "fetch", "rootfs", "patch", "config", "compile", "modules", "zfs", "package", "push")
	if !res.Incremental {
		t.Errorf("the zfs-kmod build did not start from the kernel build's object tree")
	}
	if res.Ref != archTag || !slices.Equal(slices.Sorted(slices.Values(res.Pushed)), slices.Sorted(slices.Values(tags))) {
		t.Errorf("result = %+v, want %s pushed under %q", res, archTag, tags)
	}

	img := e.unpack(t, archTag)
	mods := filepath.Join(img.root, "lib", "modules", release)
	t.Run("image", func(t *testing.T) {
		for _, f := range []string{"extra/zfs.ko", "extra/spl.ko", "kernel/lib/crc7.ko", "kernel/lib/zlib_deflate/zlib_deflate.ko", "modules.dep", "modules.dep.bin", "modules.alias"} {
			if _, err := os.Stat(filepath.Join(mods, f)); err != nil {
				t.Errorf("lib/modules/%s/%s: %v", release, f, err)
			}
		}
		for _, e := range img.entries {
			if !strings.HasPrefix(e, "lib/") {
				t.Errorf("the layer holds %s: want lib/modules only", e)
			}
		}
		// As upstream's image, which copies /lib/modules after unpacking
		// kernel.tar: build points at where kernel-dev.tar's headers go.
		if l := img.links["lib/modules/"+release+"/build"]; l != "/usr/src/linux-headers-"+release || len(img.links) != 1 {
			t.Errorf("symlinks %v: want build -> /usr/src/linux-headers-%s only", img.links, release)
		}
		dep, _ := os.ReadFile(filepath.Join(mods, "modules.dep"))
		if !strings.Contains(string(dep), "\nextra/zfs.ko: ") || !strings.Contains(string(dep), "extra/spl.ko") || !strings.Contains(string(dep), "kernel/lib/zlib_deflate/zlib_deflate.ko") {
			t.Errorf("modules.dep does not list zfs.ko with its dependencies:\n%s", dep)
		}
		f, err := elf.Open(filepath.Join(mods, "extra/zfs.ko"))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		info, err := f.Section(".modinfo").Data()
		if err != nil {
			t.Fatal(err)
		}
		fields := map[string]string{}
		for _, kv := range bytes.Split(info, []byte{0}) {
			if k, v, ok := strings.Cut(string(kv), "="); ok {
				fields[k] = v
			}
		}
		if !strings.HasPrefix(fields["vermagic"], release+" ") || fields["version"] != zfsVersion+"-2~bpo12+2" || fields["depends"] != "spl" {
			t.Errorf("zfs.ko's modinfo %v: want vermagic %s, version %s", fields, release, zfsVersion)
		}
		tarball, err := os.ReadFile(filepath.Join(mirror, "zfs-"+zfsVersion, "zfs-"+zfsVersion+".tar.gz"))
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(tarball)
		a := img.manifest.Annotations
		if a["dev.lkbuild.tool"] != "zfs-kmod" || a["dev.lkbuild.zfs.sha256"] != hex.EncodeToString(sum[:]) ||
			a["dev.lkbuild.zfs.url"] != "https://github.com/openzfs/zfs/releases/download/zfs-"+zfsVersion+"/zfs-"+zfsVersion+".tar.gz" {
			t.Errorf("annotations %v: want the tool and the OpenZFS release recorded", a)
		}
	})

	// The SBOM attached to it names OpenZFS, with its own license.
	t.Run("sbom", func(t *testing.T) {
		r := e.lkbuild(t, nil, "sbom", "--insecure-registry", archTag)
		if r.code != 0 || !strings.Contains(r.stdout, `"name": "openzfs"`) || !strings.Contains(r.stdout, `"licenseDeclared": "CDDL-1.0"`) {
			t.Errorf("lkbuild sbom: exit %d, want OpenZFS listed:\n%s%s", r.code, tailString(r.stdout, 40), r.stderr)
		}
	})

	// The test kernel boots and loads zfs, with spl and zlib_deflate, from
	// the image's own tree: what LinuxKit's yml does with the image in
	// init.
	t.Run("boot", func(t *testing.T) {
		var files []boottest.File
		err := filepath.WalkDir(filepath.Join(img.root, "lib"), func(p string, d fs.DirEntry, err error) error {
			if err != nil || !d.Type().IsRegular() {
				return err
			}
			rel, _ := filepath.Rel(img.root, p)
			files = append(files, boottest.File{Path: "/" + filepath.ToSlash(rel), HostPath: p})
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		initrd := filepath.Join(t.TempDir(), "initrd.gz")
		f, err := os.Create(initrd)
		if err != nil {
			t.Fatal(err)
		}
		err = boottest.Initramfs(f, boottest.InitramfsSpec{Files: files, Commands: []string{
			"modprobe zfs",
			"grep '^zfs ' /proc/modules && grep '^spl ' /proc/modules && grep '^zlib_deflate ' /proc/modules",
			"cat /sys/module/zfs/version",
		}})
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		res, err := boottest.Boot(t.Context(), boottest.BootSpec{Kernel: filepath.Join(kernelImg.root, "kernel"), Initramfs: initrd, Timeout: 6 * time.Minute})
		if err != nil {
			t.Fatalf("boot: %v", err)
		}
		t.Logf("booted and loaded zfs in %s", res.Elapsed.Round(time.Second))
		if !slices.Equal(res.Commands, []int{0, 0, 0}) || !strings.Contains(res.Console, "ZFS: Loaded module v"+zfsVersion) {
			t.Errorf("modprobe zfs: statuses %v:\n%s", res.Commands, tailString(res.Console, 40))
		}
	})

	// The build again, from what the image records: the same digest.
	t.Run("verify", func(t *testing.T) {
		r := e.lkbuild(t, nil, "--cache-dir", cache, "verify", "--kernel-dir", kdir, "--source-mirror", e.mirror,
			"--zfs-mirror", mirror, "--zfs-keys", keys, "--insecure-registry", "--json", archTag)
		t.Logf("verify of the zfs-kmod image: %s", r.elapsed.Round(time.Second))
		var v verifyOutput
		if err := json.Unmarshal([]byte(r.stdout), &v); err != nil || r.code != 0 || !v.Identical || v.Rebuilt != res.Digest {
			t.Errorf("verify: exit %d, %+v (%v)\n%s\n%s", r.code, v, err, r.stderr, tailString(r.stdout, 20))
		}
	})

	// A release whose META does not cover the kernel stops the build
	// before anything compiles, naming both.
	t.Run("unsupported", func(t *testing.T) {
		old, oldKeys := oldZFSMirror(t, "2.2.9", "6.10")
		oldDir := e.checkout(t, func(k string) {
			file := filepath.Join(k, "common", "Dockerfile.zfs")
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(file, []byte(strings.Replace(string(data), "VERSION="+zfsVersion, "VERSION=2.2.9", 1)), 0o644); err != nil {
				t.Fatal(err)
			}
		})
		r := e.lkbuild(t, nil, e.buildArgs(cache, filepath.Join(t.TempDir(), "oci"), oldDir, org,
			"--tool", "zfs-kmod", "--zfs-mirror", old, "--zfs-keys", oldKeys)...)
		want := "OpenZFS 2.2.9 supports kernels 4.18 to 6.10, not " + version
		if r.code == 0 || !strings.Contains(r.stderr, want) {
			t.Errorf("exit %d, want an error saying %q:\n%s", r.code, want, tailString(r.stderr, 20))
		}
		for _, ev := range r.events {
			if ev.Kind == "phase-start" && (ev.Phase == "compile" || ev.Phase == "zfs") {
				t.Errorf("the build reached %s", ev.Phase)
			}
		}
	})
}

// oldZFSMirror writes a mirror of a made-up OpenZFS release v whose META
// supports kernels up to max, signed by a key of its own, and returns it
// and the key.
func oldZFSMirror(t *testing.T, v, max string) (string, string) {
	t.Helper()
	var b bytes.Buffer
	gz := gzip.NewWriter(&b)
	tw := tar.NewWriter(gz)
	meta := "Meta: 1\nName: zfs\nVersion: " + v + "\nRelease: 1\nLinux-Maximum: " + max + "\nLinux-Minimum: 4.18\n"
	for _, h := range []*tar.Header{
		{Typeflag: tar.TypeDir, Name: "zfs-" + v + "/", Mode: 0o755},
		{Typeflag: tar.TypeReg, Name: "zfs-" + v + "/META", Mode: 0o644, Size: int64(len(meta))},
	} {
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := tw.Write([]byte(meta)); err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := gz.Close(); err != nil {
		t.Fatal(err)
	}
	key, err := pgptest.NewKey("old OpenZFS", "old-zfs@lkbuild.invalid", nil)
	if err != nil {
		t.Fatal(err)
	}
	sig, err := key.DetachSign(bytes.NewReader(b.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	pub, err := key.Public()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	tarball := filepath.Join(dir, "mirror", "zfs-"+v, "zfs-"+v+".tar.gz")
	if err := os.MkdirAll(filepath.Dir(tarball), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{tarball: b.Bytes(), tarball + ".asc": sig, filepath.Join(dir, "keys.asc"): pub} {
		if err := os.WriteFile(name, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return filepath.Join(dir, "mirror"), filepath.Join(dir, "keys.asc")
}
