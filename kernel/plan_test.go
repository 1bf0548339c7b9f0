package kernel

import (
	"bytes"
	"errors"
	"io/fs"
	"path"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
	"time"
)

const testBuildImage = "linuxkit/alpine:35b33c6b03c40e51046c3b053dd131a68a26c37a"

// planFS is a series-layout kernel directory with a plain series that has
// patches, and a variant.
func planFS() fstest.MapFS {
	return fstest.MapFS{
		"Makefile":                         {Data: []byte("TOOLS=bcc perf\n")},
		"common/config-dbg":                {Data: []byte("\n\n## LinuxKit DEBUG OPTIONS ##\n\nCONFIG_LOCKDEP=y\n")},
		"6.6.x/build-args":                 {Data: []byte("KERNEL_VERSION=6.6.71\nKERNEL_SERIES=6.6.x\nBUILD_IMAGE=" + testBuildImage + "\n")},
		"6.6.x/config-x86_64":              {Data: []byte(storedConfig)},
		"6.6.x/config-aarch64":             {Data: []byte(strings.Replace(storedConfig, "Linux/x86", "Linux/arm64", 1))},
		"6.6.x/patches/0001-first.patch":   {Data: []byte("p1\n")},
		"6.6.x/patches/0002-second.patch":  {Data: []byte("p2\n")},
		"5.11.x/build-args":                {Data: []byte("KERNEL_VERSION=5.11.4\nKERNEL_SERIES=5.11.x\nBUILD_IMAGE=" + testBuildImage + "\n")},
		"5.11.x/config-x86_64":             {Data: []byte(storedConfig)},
		"5.11.x/patches/0001-base.patch":   {Data: []byte("b\n")},
		"5.11.x-rt/config-x86_64":          {Data: []byte("CONFIG_PREEMPT_RT=y\n")},
		"5.11.x-rt/patches/0001-rt.patch":  {Data: []byte("rt\n")},
		"5.11.x-rt/patches/0002-rt2.patch": {Data: []byte("rt2\n")},
	}
}

func mustPlan(t *testing.T, fsys fs.FS, q Query, arch string, opts PlanOptions) *Plan {
	t.Helper()
	d, err := Load(fsys, "kernel")
	if err != nil {
		t.Fatal(err)
	}
	a, err := ParseArch(arch)
	if err != nil {
		t.Fatal(err)
	}
	p, err := NewPlan(d, q, a, opts)
	if err != nil {
		t.Fatal(err)
	}
	checkPlanInvariants(t, p)
	return p
}

func stepNames(p *Plan) []string {
	var names []string
	for _, s := range p.Steps {
		names = append(names, s.Name)
	}
	return names
}

func step(t *testing.T, p *Plan, name string) Step {
	t.Helper()
	for _, s := range p.Steps {
		if s.Name == name {
			return s
		}
	}
	t.Fatalf("no step %q in %q", name, stepNames(p))
	return Step{}
}

func hasStep(p *Plan, name string) bool { return slices.Contains(stepNames(p), name) }

func TestNewPlanX86Plain(t *testing.T) {
	p := mustPlan(t, planFS(), Query{Series: "6.6.x"}, "amd64", PlanOptions{Jobs: 8, Epoch: time.Unix(1700000000, 0)})

	wantSteps := []string{
		"intel-ucode.cpio", "intel-ucode-license.txt",
		"patch 0001-first.patch", "patch 0002-second.patch",
		"src/linux.tar.xz",
		"install config", "defconfig", "oldconfig", "check config",
		"make", "kernelrelease", "kernel", "System.map",
		"modules_install", "remove modules build and source links", "link modules build to headers",
		"kernel.tar",
		"create headers dir", "headers_install", "kernel-headers.tar",
		"kernel-dev.tar", "kernel-builder", "kernel-source-info",
	}
	if got := stepNames(p); !slices.Equal(got, wantSteps) {
		t.Errorf("steps:\n%q\nwant:\n%q", got, wantSteps)
	}
	wantOutputs := []Output{
		{"System.map", OutputFile, "System.map"},
		{"intel-ucode-license.txt", OutputFile, "intel-ucode-license.txt"},
		{"intel-ucode.cpio", OutputCpio, "intel-ucode.cpio"},
		{"kernel", OutputFile, "kernel"},
		{"kernel-builder", OutputText, "kernel-builder"},
		{"kernel-dev.tar", OutputTar, "kernel-dev.tar"},
		{"kernel-headers.tar", OutputTar, "kernel-headers.tar"},
		{"kernel-source-info", OutputText, "kernel-source-info"},
		{"kernel.tar", OutputTar, "kernel.tar"},
		{"src/linux.tar.xz", OutputTarXZ, "src/linux.tar.xz"},
	}
	if !slices.Equal(p.Outputs, wantOutputs) {
		t.Errorf("outputs:\n%v\nwant:\n%v", p.Outputs, wantOutputs)
	}
	wantPhases := map[Phase][]string{
		PhasePatch:   {"intel-ucode.cpio", "intel-ucode-license.txt", "patch 0001-first.patch", "patch 0002-second.patch", "src/linux.tar.xz"},
		PhaseConfig:  {"install config", "defconfig", "oldconfig", "check config"},
		PhaseCompile: {"make", "kernelrelease", "kernel", "System.map"},
		PhaseModules: {"modules_install", "remove modules build and source links", "link modules build to headers", "kernel.tar", "create headers dir", "headers_install", "kernel-headers.tar"},
		PhasePackage: {"kernel-dev.tar", "kernel-builder", "kernel-source-info"},
	}
	for phase, names := range wantPhases {
		for _, n := range names {
			if got := step(t, p, n).Phase; got != phase {
				t.Errorf("step %s: phase %q, want %q", n, got, phase)
			}
		}
	}
	if s := step(t, p, "patch 0002-second.patch"); s.PatchFile != "6.6.x/patches/0002-second.patch" || s.Patch == "" {
		t.Errorf("patch step: Patch %q PatchFile %q", s.Patch, s.PatchFile)
	}
	for _, s := range p.Steps {
		if s.Background != (s.Name == "src/linux.tar.xz") || s.CountsObjects != (s.Name == "make") {
			t.Errorf("step %s: Background %v CountsObjects %v", s.Name, s.Background, s.CountsObjects)
		}
	}

	if string(p.Config) != storedConfig || p.LocalVersion != "-linuxkit" {
		t.Errorf("plain config changed: local version %q\n%s", p.LocalVersion, p.Config)
	}
	if want := []string{"kernel/6.6.x/config-x86_64"}; !slices.Equal(p.ConfigFiles, want) {
		t.Errorf("config files = %q, want %q", p.ConfigFiles, want)
	}
	install := step(t, p, "install config").Action.(*FileContent)
	if install.Path != "/linux/arch/x86/configs/x86_64_defconfig" || string(install.Data) != storedConfig {
		t.Errorf("install config writes %s:\n%s", install.Path, install.Data)
	}
	check := step(t, p, "check config").Action.(*ConfigCheck)
	if check.Path != "/linux/.config" || string(check.Want) != storedConfig || check.File != "kernel/6.6.x/config-x86_64" {
		t.Errorf("check config = %+v", check)
	}

	patch := step(t, p, "patch 0001-first.patch")
	if want := []string{"patch", "-t", "-F0", "-N", "-u", "-p1", "-i", "/src/6.6.x/patches/0001-first.patch"}; !slices.Equal(patch.Args, want) {
		t.Errorf("patch args = %q, want %q", patch.Args, want)
	}
	if patch.Dir != "/linux" || patch.Patch != "kernel/6.6.x/patches/0001-first.patch" {
		t.Errorf("patch step = %+v", patch)
	}

	for name, args := range map[string][]string{
		"defconfig":          {"make", "defconfig"},
		"oldconfig":          {"make", "oldconfig"},
		"make":               {"make", "-j8", "KCFLAGS=-fno-pie"},
		"kernelrelease":      {"make", "-s", "kernelrelease"},
		"modules_install":    {"make", "-j8", "INSTALL_MOD_PATH=/work/kernel-modules", "modules_install"},
		"create headers dir": {"mkdir", "-p", "/work/kernel-headers/usr"},
		"headers_install":    {"make", "-j8", "INSTALL_HDR_PATH=/work/kernel-headers/usr", "headers_install"},
		"intel-ucode.cpio":   {"iucode_tool", "--normal-earlyfw", "--write-earlyfw=/out/intel-ucode.cpio", "./intel-ucode"},
	} {
		if s := step(t, p, name); !slices.Equal(s.Args, args) {
			t.Errorf("%s args = %q, want %q", name, s.Args, args)
		}
	}
	if !step(t, p, "kernelrelease").PrintsRelease {
		t.Error("kernelrelease does not print the release")
	}
	boot := step(t, p, "kernel").Action.(*FileCopy)
	if !slices.Equal(boot.From, []string{"/linux/arch/x86/boot/bzImage"}) || boot.To != "/out/kernel" {
		t.Errorf("kernel copy = %+v", boot)
	}
	if u := p.Ucode; u == nil || u.Repo != UcodeRepo || u.Ref != "microcode-20210608" {
		t.Errorf("ucode = %+v", u)
	}
	if got := string(step(t, p, "kernel-builder").Action.(*FileContent).Data); got != testBuildImage {
		t.Errorf("kernel-builder = %q", got)
	}
	if got, want := string(step(t, p, "kernel-source-info").Action.(*FileContent).Data), "KERNEL_SOURCE=https://www.kernel.org/pub/linux/kernel/v6.x/linux-6.6.71.tar.xz\n"; got != want {
		t.Errorf("kernel-source-info = %q, want %q", got, want)
	}
	src := step(t, p, "src/linux.tar.xz").Action.(*TarArchive)
	if *src != (TarArchive{Dir: "/linux", To: "/out/src/linux.tar.xz", Prefix: "linux/", XZ: true, SourceTime: true}) {
		t.Errorf("source archive = %+v", src)
	}
	if p.Name.Release() != "6.6.71" || p.Version != (Version{6, 6, 71}) || p.BuilderImage != testBuildImage {
		t.Errorf("plan names %s, version %s, builder %s", p.Name.Release(), p.Version, p.BuilderImage)
	}
}

func TestNewPlanArm64Debug(t *testing.T) {
	p := mustPlan(t, planFS(), Query{Version: "6.6.71", Debug: true}, "aarch64", PlanOptions{})
	names := stepNames(p)
	for _, want := range []string{"vmlinux", "dtbs_install"} {
		if !slices.Contains(names, want) {
			t.Errorf("no %s step in %q", want, names)
		}
	}
	for _, unwanted := range []string{"check config", "intel-ucode.cpio"} {
		if slices.Contains(names, unwanted) {
			t.Errorf("a debug arm64 build has a %s step", unwanted)
		}
	}
	if i, j := slices.Index(names, "dtbs_install"), slices.Index(names, "kernel.tar"); i < 0 || i > j {
		t.Errorf("dtbs_install must come before kernel.tar: %q", names)
	}
	if want := []string{"make", "-j1", "INSTALL_DTBS_PATH=/work/kernel-modules/boot/dtb", "dtbs_install"}; !slices.Equal(step(t, p, "dtbs_install").Args, want) {
		t.Errorf("dtbs_install args = %q", step(t, p, "dtbs_install").Args)
	}
	boot := step(t, p, "kernel").Action.(*FileCopy)
	if want := []string{"/linux/arch/arm64/boot/Image.gz", "/linux/arch/arm64/boot/vmlinuz.efi"}; !slices.Equal(boot.From, want) {
		t.Errorf("boot image candidates = %q, want %q", boot.From, want)
	}
	if p.Ucode != nil {
		t.Errorf("arm64 build has ucode %+v", p.Ucode)
	}
	if !slices.ContainsFunc(p.Outputs, func(o Output) bool { return o.Path == "vmlinux" }) {
		t.Errorf("outputs lack vmlinux: %v", p.Outputs)
	}
	cfg := string(p.Config)
	for _, want := range []string{`CONFIG_LOCALVERSION="-linuxkit-dbg"`, "# CONFIG_PANIC_ON_OOPS is not set\n", "Linux/arm64"} {
		if !strings.Contains(cfg, want) {
			t.Errorf("config lacks %q", want)
		}
	}
	if !strings.HasSuffix(cfg, "## LinuxKit DEBUG OPTIONS ##\n\nCONFIG_LOCKDEP=y\n") {
		t.Errorf("config does not end with config-dbg:\n%s", cfg)
	}
	if want := []string{"kernel/6.6.x/config-aarch64", "kernel/common/config-dbg"}; !slices.Equal(p.ConfigFiles, want) {
		t.Errorf("config files = %q, want %q", p.ConfigFiles, want)
	}
	if got := step(t, p, "install config").Action.(*FileContent).Path; got != "/linux/arch/arm64/configs/defconfig" {
		t.Errorf("defconfig path = %s", got)
	}
	env := envMap(p.Env)
	if env["ARCH"] != "arm64" || env["DEBUG"] != "-dbg" || env["SOURCE_DATE_EPOCH"] != "0" || env["KBUILD_BUILD_TIMESTAMP"] != "Thu Jan  1 00:00:00 UTC 1970" {
		t.Errorf("env = %q", p.Env)
	}
	if _, ok := env["EXTRA"]; ok {
		t.Errorf("plain series has EXTRA in env: %q", p.Env)
	}
	if got := step(t, p, "make").Args; !slices.Equal(got, []string{"make", "-j1", "KCFLAGS=-fno-pie"}) {
		t.Errorf("default jobs: make args = %q", got)
	}
	if p.Name.Release() != "6.6.71-dbg" {
		t.Errorf("release name = %s", p.Name.Release())
	}
}

func TestNewPlanVariant(t *testing.T) {
	p := mustPlan(t, planFS(), Query{Series: "5.11.x-rt"}, "x86_64", PlanOptions{NoUcode: true})
	if want := []string{"5.11.x-rt/patches/0001-rt.patch", "5.11.x-rt/patches/0002-rt2.patch", "5.11.x/patches/0001-base.patch"}; !slices.Equal(p.Patches, want) {
		t.Errorf("patches = %q, want %q", p.Patches, want)
	}
	var patchSteps []string
	for _, s := range p.Steps {
		if s.Patch != "" {
			patchSteps = append(patchSteps, s.Patch)
		}
	}
	if want := []string{"kernel/5.11.x-rt/patches/0001-rt.patch", "kernel/5.11.x-rt/patches/0002-rt2.patch", "kernel/5.11.x/patches/0001-base.patch"}; !slices.Equal(patchSteps, want) {
		t.Errorf("patch steps = %q, want %q", patchSteps, want)
	}
	want := strings.Replace(storedConfig, `"-linuxkit"`, `"-linuxkit-rt"`, 1) + "CONFIG_PREEMPT_RT=y\n"
	if string(p.Config) != want {
		t.Errorf("config:\n%s\nwant:\n%s", p.Config, want)
	}
	if want := []string{"kernel/5.11.x/config-x86_64", "kernel/5.11.x-rt/config-x86_64"}; !slices.Equal(p.ConfigFiles, want) {
		t.Errorf("config files = %q, want %q", p.ConfigFiles, want)
	}
	if hasStep(p, "check config") || hasStep(p, "intel-ucode.cpio") || p.Ucode != nil {
		t.Errorf("variant without ucode: steps %q", stepNames(p))
	}
	env := envMap(p.Env)
	if env["EXTRA"] != "-rt" || env["KERNEL_SERIES"] != "5.11.x" || env["KERNEL_VERSION"] != "5.11.4" || env["ARCH"] != "x86" {
		t.Errorf("env = %q", p.Env)
	}
	if p.Extra != "-rt" || p.LocalVersion != "-linuxkit-rt" || p.Name.Release() != "5.11.4-rt" {
		t.Errorf("extra %q, local version %q, release %q", p.Extra, p.LocalVersion, p.Name.Release())
	}
}

func TestNewPlanFlatDebugVariant(t *testing.T) {
	p := mustPlan(t, flatListsFS(), Query{Version: "5.11.4", Extra: "-rt", Debug: true}, "x86_64", PlanOptions{BuilderImage: "example.com/builder:1"})
	if want := []string{"kernel/config-5.11.x-x86_64", "kernel/config-5.11.x-x86_64-rt", "kernel/config-dbg"}; !slices.Equal(p.ConfigFiles, want) {
		t.Errorf("config files = %q, want %q", p.ConfigFiles, want)
	}
	if string(p.Config) != "x\nrt\nCONFIG_DEBUG=y\n" {
		t.Errorf("config = %q", p.Config)
	}
	if got := step(t, p, "patch 0001-rt.patch").Args; got[len(got)-1] != "/src/patches-5.11.x-rt/0001-rt.patch" {
		t.Errorf("flat patch path = %q", got)
	}
	if want := []string{"patches-5.11.x-rt/0001-rt.patch", "patches-5.11.x-rt/0002-rt2.patch", "patches-5.11.x/0001-b.patch"}; !slices.Equal(p.Patches, want) {
		t.Errorf("patches = %q, want %q", p.Patches, want)
	}
	if p.BuilderImage != "example.com/builder:1" || envMap(p.Env)["BUILD_IMAGE"] != "example.com/builder:1" {
		t.Errorf("builder image option not used: %s, %q", p.BuilderImage, p.Env)
	}
}

func TestNewPlanErrors(t *testing.T) {
	x86, _ := ParseArch("x86_64")
	riscv, _ := ParseArch("riscv64")
	for _, tc := range []struct {
		name   string
		fsys   func() fstest.MapFS
		q      Query
		arch   Arch
		opts   PlanOptions
		is     error
		inText []string
	}{
		{
			name: "no config-dbg",
			fsys: func() fstest.MapFS { f := planFS(); delete(f, "common/config-dbg"); return f },
			q:    Query{Series: "6.6.x", Debug: true}, arch: x86,
			is: fs.ErrNotExist, inText: []string{"kernel/common/config-dbg"},
		},
		{
			name: "no config for the arch",
			fsys: planFS, q: Query{Series: "6.6.x"}, arch: riscv,
			is: ErrNoConfig, inText: []string{"kernel/6.6.x", "riscv64", "aarch64, x86_64"},
		},
		{
			name: "version is not the series' build-args version",
			fsys: planFS, q: Query{Version: "6.6.70"}, arch: x86,
			inText: []string{"kernel/6.6.x/build-args", "6.6.70", "KERNEL_VERSION=6.6.71"},
		},
		{
			name: "no BUILD_IMAGE",
			fsys: func() fstest.MapFS {
				f := planFS()
				f["6.6.x/build-args"] = &fstest.MapFile{Data: []byte("KERNEL_VERSION=6.6.71\n")}
				return f
			},
			q: Query{Series: "6.6.x"}, arch: x86,
			inText: []string{"kernel/6.6.x/build-args", "BUILD_IMAGE"},
		},
		{
			name: "unknown series",
			fsys: planFS, q: Query{Series: "6.1.x"}, arch: x86,
			is: ErrNoSeries,
		},
		{
			name: "negative jobs",
			fsys: planFS, q: Query{Series: "6.6.x"}, arch: x86, opts: PlanOptions{Jobs: -1},
			inText: []string{"jobs"},
		},
		{
			name: "epoch before 1970",
			fsys: planFS, q: Query{Series: "6.6.x"}, arch: x86, opts: PlanOptions{Epoch: time.Unix(-10, 0)},
			inText: []string{"before 1970"},
		},
		{
			name: "no arch",
			fsys: planFS, q: Query{Series: "6.6.x"},
			inText: []string{"no arch"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, err := Load(tc.fsys(), "kernel")
			if err != nil {
				t.Fatal(err)
			}
			_, err = NewPlan(d, tc.q, tc.arch, tc.opts)
			if err == nil {
				t.Fatal("no error")
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("err = %v, want one wrapping %v", err, tc.is)
			}
			for _, s := range tc.inText {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("err %q lacks %q", err, s)
				}
			}
		})
	}
}

func envMap(env []string) map[string]string {
	m := map[string]string{}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		m[k] = v
	}
	return m
}

func TestPlanEnv(t *testing.T) {
	p := mustPlan(t, planFS(), Query{Series: "6.6.x"}, "x86_64", PlanOptions{
		Epoch:        time.Unix(1700000000, 500).In(time.FixedZone("CET", 3600)),
		BuildUser:    "builder",
		BuildHost:    "ci",
		CrossCompile: "x86_64-linux-gnu-",
	})
	want := map[string]string{
		"PATH":                   DefaultPath,
		"HOME":                   "/root",
		"LC_ALL":                 "C",
		"TZ":                     "UTC",
		"SOURCE_DATE_EPOCH":      "1700000000",
		"KBUILD_BUILD_TIMESTAMP": "Tue Nov 14 22:13:20 UTC 2023",
		"KBUILD_BUILD_USER":      "builder",
		"KBUILD_BUILD_HOST":      "ci",
		"KBUILD_BUILD_VERSION":   "1",
		"ARCH":                   "x86",
		"CROSS_COMPILE":          "x86_64-linux-gnu-",
		"BUILD_IMAGE":            testBuildImage,
		"KERNEL_VERSION":         "6.6.71",
		"KERNEL_SERIES":          "6.6.x",
	}
	got := envMap(p.Env)
	if len(got) != len(p.Env) {
		t.Errorf("a variable is set twice: %q", p.Env)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s=%q, want %q", k, got[k], v)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("unexpected %s in env", k)
		}
	}
	if !p.Epoch.Equal(time.Unix(1700000000, 0)) || p.Epoch.Location() != time.UTC {
		t.Errorf("epoch = %v, want 1700000000 in UTC, whole seconds", p.Epoch)
	}
	for _, s := range p.Steps {
		if s.Action == nil && !slices.Equal(s.Env, p.Env) {
			t.Errorf("step %s env = %q, want the plan's", s.Name, s.Env)
		}
	}
	d := mustPlan(t, planFS(), Query{Series: "6.6.x"}, "x86_64", PlanOptions{})
	if m := envMap(d.Env); m["KBUILD_BUILD_USER"] != "root" || m["KBUILD_BUILD_HOST"] != "buildkitsandbox" {
		t.Errorf("default user and host: %q", d.Env)
	}
}

func TestKbuildTimestamp(t *testing.T) {
	for sec, want := range map[int64]string{
		0:          "Thu Jan  1 00:00:00 UTC 1970", // date pads the day with a space
		1700000000: "Tue Nov 14 22:13:20 UTC 2023",
		1735689599: "Tue Dec 31 23:59:59 UTC 2024",
	} {
		if got := KbuildTimestamp(time.Unix(sec, 0).In(time.FixedZone("X", -7200))); got != want {
			t.Errorf("KbuildTimestamp(%d) = %q, want %q", sec, got, want)
		}
	}
}

// checkPlanInvariants checks what a runner relies on in every plan.
func checkPlanInvariants(t *testing.T, p *Plan) {
	t.Helper()
	seen := map[string]bool{}
	releaseAt, firstNeed := -1, -1
	order := []Phase{PhasePatch, PhaseConfig, PhaseCompile, PhaseModules, PhasePackage}
	last := 0
	for i, s := range p.Steps {
		if at := slices.Index(order, s.Phase); at < last {
			t.Errorf("step %s: phase %q is unknown or comes after %q", s.Name, s.Phase, order[last])
		} else {
			last = at
		}
		if seen[s.Name] {
			t.Errorf("step name %q twice", s.Name)
		}
		seen[s.Name] = true
		if s.PrintsRelease {
			if releaseAt >= 0 {
				t.Errorf("two steps print the release")
			}
			releaseAt = i
		}
		if s.NeedsRelease() && firstNeed < 0 {
			firstNeed = i
		}
		switch {
		case s.Action == nil && (len(s.Args) == 0 || s.Dir == "" || len(s.Env) == 0):
			t.Errorf("command step %s lacks args, dir or env: %+v", s.Name, s)
		case s.Action != nil && (len(s.Args) > 0 || s.Env != nil || s.PrintsRelease):
			t.Errorf("action step %s also has a command: %+v", s.Name, s)
		}
		for _, pth := range actionPaths(s.Action) {
			if !underAny(pth, p.Paths.Source, p.Paths.Out, p.Paths.Work, ucodeDir(p)) {
				t.Errorf("step %s: action path %s is not in a bound directory", s.Name, pth)
			}
		}
	}
	switch {
	case p.Tool != "" && (releaseAt >= 0 || firstNeed >= 0):
		t.Errorf("a tool's plan prints the release at step %d, needs it at %d: it builds no kernel", releaseAt, firstNeed)
	case p.Tool == "" && (releaseAt < 0 || firstNeed <= releaseAt):
		t.Errorf("release printed by step %d, first needed by step %d", releaseAt, firstNeed)
	}
	// Every output is written by its step; every file an action writes
	// under Out is an output.
	outs := map[string]bool{}
	for _, o := range p.Outputs {
		outs[o.Path] = true
		s, ok := findStep(p, o.Step)
		if !ok {
			t.Errorf("output %s: no step %s", o.Path, o.Step)
			continue
		}
		full := path.Join(p.Paths.Out, o.Path)
		if w := writes(s); w != full && !slices.ContainsFunc(s.Args, func(a string) bool { return strings.HasSuffix(a, "="+full) }) {
			t.Errorf("output %s: step %s writes %q", o.Path, s.Name, w)
		}
	}
	for _, s := range p.Steps {
		if w := writes(s); strings.HasPrefix(w, p.Paths.Out+"/") && !outs[strings.TrimPrefix(w, p.Paths.Out+"/")] {
			t.Errorf("step %s writes %s, which is not an output", s.Name, w)
		}
	}
}

func ucodeDir(p *Plan) string {
	if p.Ucode == nil {
		return p.Paths.Source
	}
	return p.Ucode.Dir
}

func findStep(p *Plan, name string) (Step, bool) {
	for _, s := range p.Steps {
		if s.Name == name {
			return s, true
		}
	}
	return Step{}, false
}

func writes(s Step) string {
	switch a := s.Action.(type) {
	case *FileContent:
		return a.Path
	case *FileCopy:
		return a.To
	case *TarArchive:
		return a.To
	}
	return ""
}

func actionPaths(a Action) []string {
	switch a := a.(type) {
	case *FileContent:
		return []string{a.Path}
	case *FileCopy:
		return append(slices.Clone(a.From), a.To)
	case *TarArchive:
		return []string{a.Dir, a.To}
	case *ConfigCheck:
		return []string{a.Path}
	}
	return nil
}

func underAny(p string, dirs ...string) bool {
	for _, d := range dirs {
		if p == d || strings.HasPrefix(p, d+"/") {
			return true
		}
	}
	return false
}

func TestStepExpand(t *testing.T) {
	p := mustPlan(t, planFS(), Query{Series: "6.6.x"}, "x86_64", PlanOptions{})
	const rel = "6.6.71-linuxkit"
	link := step(t, p, "link modules build to headers")
	got, err := link.Expand(rel)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"ln", "-s", "/usr/src/linux-headers-6.6.71-linuxkit", "/work/kernel-modules/lib/modules/6.6.71-linuxkit/build"}; !slices.Equal(got.Args, want) {
		t.Errorf("expanded args = %q, want %q", got.Args, want)
	}
	if !strings.Contains(link.Args[2], ReleasePlaceholder) {
		t.Error("Expand changed the plan's step")
	}
	rm, err := step(t, p, "remove modules build and source links").Expand(rel)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"rm", "-f", "/work/kernel-modules/lib/modules/6.6.71-linuxkit/build", "/work/kernel-modules/lib/modules/6.6.71-linuxkit/source"}; !slices.Equal(rm.Args, want) {
		t.Errorf("expanded args = %q, want %q", rm.Args, want)
	}
	dev, err := step(t, p, "kernel-dev.tar").Expand(rel)
	if err != nil {
		t.Fatal(err)
	}
	if a := dev.Action.(*TarArchive); a.Prefix != "usr/src/linux-headers-6.6.71-linuxkit/" || !a.Dev || a.Dir != "/linux" {
		t.Errorf("expanded dev tar = %+v", a)
	}
	if _, err := dev.Expand(""); err != nil {
		t.Errorf("expanding an expanded step: %v", err)
	}
	if _, err := link.Expand(""); err == nil || !strings.Contains(err.Error(), "link modules build to headers") {
		t.Errorf("expand without a release: err = %v", err)
	}
	plain := step(t, p, "make")
	if got, err := plain.Expand(""); err != nil || !slices.Equal(got.Args, plain.Args) {
		t.Errorf("a step without the placeholder: %v, %v", got, err)
	}
}

func TestParseRelease(t *testing.T) {
	v := Version{6, 6, 71}
	for _, tc := range []struct {
		out, want string
		ok        bool
	}{
		{"6.6.71-linuxkit\n", "6.6.71-linuxkit", true},
		{"6.6.71-linuxkit", "6.6.71-linuxkit", true},
		{"6.6.71-rt13-linuxkit-rt-dbg\n", "6.6.71-rt13-linuxkit-rt-dbg", true},
		{"", "", false},
		{"\n", "", false},
		{"6.6.70-linuxkit\n", "", false},
		{"make[1]: Entering directory\n6.6.71-linuxkit\n", "", false},
		{"6.6.71-linuxkit\n\n", "", false},
		{"6.6.71/../x", "", false},
	} {
		got, err := ParseRelease([]byte(tc.out), v)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ParseRelease(%q) = %q, %v", tc.out, got, err)
		}
	}
}

func TestConfigCheckNamesFile(t *testing.T) {
	p := mustPlan(t, planFS(), Query{Series: "6.6.x"}, "x86_64", PlanOptions{})
	check := step(t, p, "check config").Action.(*ConfigCheck)
	if err := check.Check([]byte(storedConfig)); err != nil {
		t.Errorf("same config: %v", err)
	}
	err := check.Check([]byte(storedConfig + "CONFIG_NEW=y\n"))
	var m *ConfigMismatchError
	if !errors.As(err, &m) || m.File != "kernel/6.6.x/config-x86_64" || !strings.HasPrefix(err.Error(), "kernel/6.6.x/config-x86_64: ") {
		t.Errorf("err = %v", err)
	}
}

// TestPlanCross: a --cross plan checks the config without the toolchain
// lines and leaves host-arch programs out of kernel-dev.tar; a plain plan
// does neither.
func TestPlanCross(t *testing.T) {
	for _, cross := range []string{"", "aarch64-linux-gnu-"} {
		p := mustPlan(t, planFS(), Query{Series: "6.6.x"}, "aarch64", PlanOptions{CrossCompile: cross})
		var check *ConfigCheck
		var dev *TarArchive
		for _, s := range p.Steps {
			switch a := s.Action.(type) {
			case *ConfigCheck:
				check = a
			case *TarArchive:
				if a.Dev {
					dev = a
				}
			}
		}
		if check == nil || dev == nil {
			t.Fatalf("cross %q: no config check or kernel-dev.tar step", cross)
		}
		wantMachine := uint16(0)
		if cross != "" {
			wantMachine = 183 // EM_AARCH64
		}
		if check.IgnoreToolchain != (cross != "") || dev.Machine != wantMachine {
			t.Errorf("cross %q: IgnoreToolchain %v, kernel-dev.tar machine %d", cross, check.IgnoreToolchain, dev.Machine)
		}
	}
}

func TestConfigCheckIgnoreToolchain(t *testing.T) {
	stored := []byte("CONFIG_CC_VERSION_TEXT=\"gcc (Debian 14.2.0-19) 14.2.0\"\nCONFIG_CC_IS_GCC=y\nCONFIG_GCC_VERSION=140200\nCONFIG_CC_CAN_LINK=y\nCONFIG_MODULES=y\n")
	cross := []byte("CONFIG_CC_VERSION_TEXT=\"aarch64-linux-gnu-gcc (Debian 14.2.0-19) 14.2.0\"\nCONFIG_CC_IS_GCC=y\nCONFIG_GCC_VERSION=140200\n# CONFIG_CC_CAN_LINK is not set\nCONFIG_MODULES=y\n")
	changed := bytes.Replace(cross, []byte("CONFIG_MODULES=y"), []byte("# CONFIG_MODULES is not set"), 1)
	tests := []struct {
		name   string
		ignore bool
		got    []byte
		want   []string // symbols of the mismatch; nil for none
	}{
		{"cross, ignored", true, cross, nil},
		{"cross, checked", false, cross, []string{"CONFIG_CC_CAN_LINK", "CONFIG_CC_VERSION_TEXT"}},
		{"a real change is still found", true, changed, []string{"CONFIG_MODULES"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := (&ConfigCheck{Want: stored, File: "6.6.x/config-aarch64", IgnoreToolchain: tt.ignore}).Check(tt.got)
			var m *ConfigMismatchError
			if tt.want == nil {
				if err != nil {
					t.Fatalf("Check: %v", err)
				}
				return
			}
			if !errors.As(err, &m) {
				t.Fatalf("Check: %v, want a mismatch", err)
			}
			got := slices.Clone(m.Symbols)
			slices.Sort(got)
			if !slices.Equal(got, tt.want) {
				t.Errorf("symbols %q, want %q", got, tt.want)
			}
		})
	}
}
