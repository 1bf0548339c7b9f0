package builder

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/lkbuild/lkbuild/kernel"
	"github.com/lkbuild/lkbuild/toolchain"
)

// provision's decisions that install nothing: what the Dockerfile lists is
// there, or cannot be there, or the builder is not of the Dockerfile's
// kind. (The install itself runs in the e2e suite's build, in a real
// builder with a /mirror repository.)
func TestProvisionDecides(t *testing.T) {
	const dockerfile = "FROM ${BUILD_IMAGE} AS build\nRUN apt-get update && apt-get install -y gcc make bc\n"
	dpkg := func(pkgs ...string) string {
		var b strings.Builder
		for _, p := range pkgs {
			b.WriteString("Package: " + p + "\nStatus: install ok installed\nVersion: 1\n\n")
		}
		return b.String()
	}
	tests := []struct {
		name       string
		dockerfile string // "" for none
		rootfs     map[string]string
		err        string
		// kconfig provisions for lkbuild kconfig; note is a note it must
		// give.
		kconfig bool
		note    string
		// tool builds a tool image, whose packages perfDockerfile lists.
		tool, perfDockerfile string
	}{
		{name: "no Dockerfile", rootfs: map[string]string{"usr/bin/apt-get": ""}},
		{name: "a first stage that installs nothing", dockerfile: "FROM x\nRUN make\n", rootfs: map[string]string{"usr/bin/apt-get": ""}},
		{name: "a builder without the Dockerfile's manager", dockerfile: "FROM x\nRUN apk add gcc\n", rootfs: map[string]string{"usr/bin/apt-get": ""}},
		{name: "every package installed", dockerfile: dockerfile, rootfs: map[string]string{
			"usr/bin/apt-get": "", "var/lib/dpkg/status": dpkg("gcc", "make", "bc", "bash")}},
		{name: "kconfig, ncurses nowhere", dockerfile: dockerfile, kconfig: true, rootfs: map[string]string{
			"usr/bin/apt-get": "", "var/lib/dpkg/status": dpkg("gcc", "make", "bc")},
			note: "has no libncurses-dev, and no repository of its own holds it: make menuconfig and nconfig cannot run"},
		{name: "kconfig, ncurses installed", dockerfile: dockerfile, kconfig: true, rootfs: map[string]string{
			"usr/bin/apt-get": "", "var/lib/dpkg/status": dpkg("gcc", "make", "bc", "libncurses-dev")}},
		{name: "no local repository", dockerfile: dockerfile, rootfs: map[string]string{
			"usr/bin/apt-get": "", "var/lib/dpkg/status": dpkg("gcc"),
			"etc/apt/sources.list": "deb http://deb.debian.org/debian bookworm main\n"},
			err: "the builder registry.example/builder:1 lacks make bc, which kernel/common/Dockerfile installs, and it has no local package repository (only http://deb.debian.org/debian, which builds cannot reach: they have no network); give a builder that holds them (lkbuild builder-image --from registry.example/builder:1 --run 'apt-get update && apt-get install -y make bc' --tag REF makes one, with the network) with --builder-image REF"},
		{name: "not in the local repository", dockerfile: dockerfile, rootfs: map[string]string{
			"usr/bin/apt-get": "", "var/lib/dpkg/status": dpkg("gcc"),
			"etc/apt/sources.list": "deb [trusted=yes] file:/mirror ./\n", "mirror/Packages": "Package: make\n"},
			err: "lacks bc, which kernel/common/Dockerfile installs, and its local package repository does not hold them"},
		{name: "perf: Dockerfile.perf's list", dockerfile: dockerfile, tool: kernel.ToolPerf,
			perfDockerfile: "FROM linuxkit/kernel AS ksrc\nFROM ${BUILD_IMAGE} AS build\nRUN apt-get install -y gcc libtraceevent-dev\n",
			rootfs:         map[string]string{"usr/bin/apt-get": "", "var/lib/dpkg/status": dpkg("gcc", "make", "bc")},
			err:            "lacks libtraceevent-dev, which kernel/common/Dockerfile.perf installs, and it has no local package repository"},
		{name: "perf without a Dockerfile.perf", dockerfile: dockerfile, tool: kernel.ToolPerf,
			rootfs: map[string]string{"usr/bin/apt-get": "", "var/lib/dpkg/status": dpkg("gcc")}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fsys := fstest.MapFS{"6.12.x/build-args": {Data: []byte("KERNEL_VERSION=6.12.117\n")}}
			if tc.dockerfile != "" {
				fsys["common/Dockerfile"] = &fstest.MapFile{Data: []byte(tc.dockerfile)}
			}
			if tc.perfDockerfile != "" {
				fsys["common/Dockerfile.perf"] = &fstest.MapFile{Data: []byte(tc.perfDockerfile)}
			}
			dir, err := kernel.Load(fsys, "kernel")
			if err != nil {
				t.Fatal(err)
			}
			root := t.TempDir()
			for name, data := range tc.rootfs {
				p := filepath.Join(root, name)
				os.MkdirAll(filepath.Dir(p), 0o755)
				if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			logF, err := os.Create(filepath.Join(t.TempDir(), "log"))
			if err != nil {
				t.Fatal(err)
			}
			defer logF.Close()
			b := &build{
				t:       &Target{Dir: dir, BuilderPull: "registry.example/builder:1", BuilderArch: kernel.Arch{Uname: "x86_64", OCI: "amd64"}},
				plan:    &kernel.Plan{Tool: tc.tool},
				rootfs:  toolchain.Rootfs{Dir: root},
				logF:    logF,
				kconfig: tc.kconfig,
			}
			var notes []string
			b.pol.Events = func(e Event) { notes = append(notes, e.Message) }
			err = b.provision(context.Background())
			if got := strings.Join(notes, "\n"); (tc.note == "") != (got == "") || !strings.Contains(got, tc.note) {
				t.Errorf("notes %q, want %q", got, tc.note)
			}
			if tc.err == "" {
				if err != nil || b.installed != nil || b.rootfs.Dir != root {
					t.Fatalf("provision: %v, installed %+v, rootfs %s", err, b.installed, b.rootfs.Dir)
				}
				return
			}
			var pe *PackagesError
			if !errors.As(err, &pe) || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("provision: %v, want a *PackagesError saying %q", err, tc.err)
			}
		})
	}
}
