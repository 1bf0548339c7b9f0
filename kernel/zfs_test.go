package kernel

import (
	"strings"
	"testing"
	"testing/fstest"
)

func TestZFSVersion(t *testing.T) {
	tests := []struct{ name, dockerfile, want, wantErr string }{
		{name: "upstream's form", dockerfile: "FROM ${IMAGE} AS ksrc\nENV VERSION=0.8.1\nENV ZFS_COMMIT=zfs-${VERSION}\n", want: "0.8.1"},
		{name: "space form", dockerfile: "FROM x\nENV VERSION 2.3.2\n", want: "2.3.2"},
		{name: "rc", dockerfile: "FROM x\nENV VERSION=\"2.4.0-rc1\"\n", want: "2.4.0-rc1"},
		{name: "none", dockerfile: "FROM x\nENV OTHER=1\n", wantErr: "sets no VERSION"},
		{name: "not a release", dockerfile: "FROM x\nENV VERSION=master\n", wantErr: `OpenZFS version "master"`},
		{name: "no file", wantErr: "common/Dockerfile.zfs is missing"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fsys := seriesFS()
			if tc.dockerfile != "" {
				fsys["common/Dockerfile.zfs"] = &fstest.MapFile{Data: []byte(tc.dockerfile)}
			}
			d, err := Load(fsys, "kernel")
			if err != nil {
				t.Fatal(err)
			}
			got, err := d.ZFSVersion()
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got %q, %v; want an error with %q", got, err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Errorf("got %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

func TestZFSMetaSupports(t *testing.T) {
	meta := []byte("Meta:          1\nName:          zfs\nVersion:       2.3.2\nRelease:       2~bpo12+2\nLinux-Maximum: 6.14\nLinux-Minimum: 4.18\n")
	m, err := ParseZFSMeta(meta)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		kernel string
		ok     bool
	}{{"6.12.117", true}, {"6.14.99", true}, {"4.18.0", true}, {"6.15.1", false}, {"4.14.300", false}, {"7.0.1", false}} {
		v, err := ParseVersion(tc.kernel)
		if err != nil {
			t.Fatal(err)
		}
		err = m.Supports(v)
		if (err == nil) != tc.ok {
			t.Errorf("%s: %v, want ok %v", tc.kernel, err, tc.ok)
		}
		if err != nil && !strings.Contains(err.Error(), "OpenZFS 2.3.2 supports kernels 4.18 to 6.14, not "+tc.kernel) {
			t.Errorf("%s: message %q", tc.kernel, err)
		}
	}
	if _, err := ParseZFSMeta([]byte("Name: zfs\n")); err == nil {
		t.Errorf("a META without the kernel range parsed")
	}
}

func TestPlanZFS(t *testing.T) {
	fsys := seriesFS()
	fsys["common/Dockerfile.zfs"] = &fstest.MapFile{Data: []byte("FROM x\nENV VERSION=2.3.2\n")}
	d, err := Load(fsys, "kernel")
	if err != nil {
		t.Fatal(err)
	}
	a, _ := ParseArch("x86_64")
	p, err := NewPlan(d, Query{Series: "6.6.x", Tool: ToolZFS}, a, PlanOptions{Jobs: 2})
	if err != nil {
		t.Fatal(err)
	}
	if p.ZFS == nil || p.ZFS.Version != "2.3.2" || p.Ucode != nil || p.Name.Image != ZFSImage {
		t.Errorf("zfs %+v, ucode %+v, image %q", p.ZFS, p.Ucode, p.Name.Image)
	}
	if len(p.Outputs) != 1 || p.Outputs[0].Path != ZFSModules || p.Outputs[0].Kind != OutputTree {
		t.Errorf("outputs %+v", p.Outputs)
	}
	var names []string
	for _, s := range p.Steps {
		names = append(names, s.Name)
	}
	got := strings.Join(names, ", ")
	// The kernel's steps, the same as a kernel build's up to its
	// modules_install, then OpenZFS's.
	want := "patch 0001-first.patch, patch 0002-second.patch, install config, defconfig, oldconfig, check config, make, kernelrelease, modules_install, " +
		"remove modules build and source links, link modules build to headers, zfs configure, zfs modules, zfs modules_install, depmod, lib/modules"
	if got != want {
		t.Errorf("steps\n%s\nwant\n%s", got, want)
	}
	k, err := NewPlan(d, Query{Series: "6.6.x"}, a, PlanOptions{Jobs: 2, NoUcode: true})
	if err != nil {
		t.Fatal(err)
	}
	kernelSteps := map[string]string{}
	for _, s := range k.Steps {
		kernelSteps[s.Name] = s.String()
	}
	for _, s := range p.Steps[:11] {
		if kernelSteps[s.Name] != s.String() {
			t.Errorf("step %s, the kernel's %s", s, kernelSteps[s.Name])
		}
	}
	if _, err := NewPlan(d, Query{Series: "6.6.x", Tool: ToolZFS}, a, PlanOptions{ZFSVersion: "main"}); err == nil {
		t.Errorf("a bad --zfs-version planned")
	}
	if _, err := NewPlan(d, Query{Series: "6.6.x", Tool: ToolZFS, Debug: true}, a, PlanOptions{}); err == nil {
		t.Errorf("a debug zfs planned")
	}
}
