package kernel

import (
	"errors"
	"slices"
	"testing"
	"testing/fstest"
)

// seriesFS is a kernel directory in the current layout, shaped like
// LinuxKit's kernel/ at the end of 2025 (file contents made up).
func seriesFS() fstest.MapFS {
	return fstest.MapFS{
		"Makefile":                         {Data: []byte("ORG?=linuxkit\nTOOLS=bcc perf\n")},
		"common/Dockerfile":                {Data: []byte("FROM scratch\n")},
		"common/config-dbg":                {Data: []byte("CONFIG_DEBUG_INFO=y\n")},
		"6.6.x/build-args":                 {Data: []byte("KERNEL_VERSION=6.6.71\nKERNEL_SERIES=6.6.x\nBUILD_IMAGE=linuxkit/alpine:abc\nCUSTOM=kept\n")},
		"6.6.x/config-x86_64":              {Data: []byte("CONFIG_X86=y\n")},
		"6.6.x/config-aarch64":             {Data: []byte("CONFIG_ARM64=y\n")},
		"6.6.x/config-riscv64":             {Data: []byte("CONFIG_RISCV=y\n")},
		"6.6.x/config-s390x":               {Data: []byte("not ours\n")},
		"6.6.x/patches/0002-second.patch":  {Data: []byte("p2\n")},
		"6.6.x/patches/0001-first.patch":   {Data: []byte("p1\n")},
		"6.6.x/patches/README":             {Data: []byte("not a patch\n")},
		"6.12.x/build-args":                {Data: []byte("KERNEL_VERSION=6.12.59\nKERNEL_SERIES=6.12.x\nBUILD_IMAGE=linuxkit/alpine:abc\n")},
		"6.12.x/config-x86_64":             {Data: []byte("CONFIG_X86=y\n")},
		"5.15.x/build-args":                {Data: []byte("KERNEL_VERSION=5.15.27\nKERNEL_SERIES=5.15.x\n")},
		"5.15.x/config-x86_64":             {Data: []byte("x\n")},
		"5.15.x/deprecated":                {},
		"5.11.x/config-x86_64":             {Data: []byte("x\n")},
		"5.11.x/patches/0001-base.patch":   {Data: []byte("b\n")},
		"5.11.x/deprecated":                {},
		"5.11.x-rt/config-x86_64":          {Data: []byte("CONFIG_PREEMPT_RT=y\n")},
		"5.11.x-rt/patches/0001-rt.patch":  {Data: []byte("rt\n")},
		"5.11.x-rt/deprecated":             {},
		"6.6.x-foo/patches/0001-foo.patch": {Data: []byte("foo\n")},
		"6.6.x-foo/config-aarch64":         {Data: []byte("CONFIG_FOO=y\n")},
		"7.0.x/.keep":                      {}, // an empty series folder is no series
		"x86_64/bzImage":                   {}, // build output, not a series
	}
}

func TestLoadSeriesLayout(t *testing.T) {
	d, err := Load(seriesFS(), "kernel")
	if err != nil {
		t.Fatal(err)
	}
	if d.Layout != LayoutSeries {
		t.Errorf("layout = %v", d.Layout)
	}
	var names []string
	for _, s := range d.Series {
		names = append(names, s.Name)
	}
	// The order of `ls -d */` in the C locale: "5.11.x-rt/" < "5.11.x/".
	if want := []string{"5.11.x-rt", "5.11.x", "5.15.x", "6.12.x", "6.6.x-foo", "6.6.x"}; !slices.Equal(names, want) {
		t.Errorf("series = %q, want %q", names, want)
	}
	if !slices.Equal(d.Tools, []string{"bcc", "perf"}) {
		t.Errorf("tools = %q", d.Tools)
	}

	s := mustLookup(t, d, "6.6.x")
	if s.Version != (Version{6, 6, 71}) || s.Base != "6.6.x" || s.Extra != "" || s.Deprecated || s.BaseSeries() != nil {
		t.Errorf("6.6.x = %+v", s)
	}
	if s.BuildImage() != "linuxkit/alpine:abc" || s.Args().Get("CUSTOM") != "kept" {
		t.Errorf("6.6.x build-args = %+v", s.BuildArgs)
	}
	if want := []string{"6.6.x/patches/0001-first.patch", "6.6.x/patches/0002-second.patch"}; !slices.Equal(s.PatchFiles(), want) {
		t.Errorf("6.6.x patches = %q, want %q", s.PatchFiles(), want)
	}
	var arches []string
	for _, a := range s.Arches() {
		arches = append(arches, a.Uname)
	}
	if want := []string{"aarch64", "riscv64", "x86_64"}; !slices.Equal(arches, want) {
		t.Errorf("6.6.x arches = %q, want %q (config-s390x is not ours)", arches, want)
	}
	amd64, _ := ParseArch("amd64")
	if files, err := s.ConfigFiles(amd64); err != nil || !slices.Equal(files, []string{"6.6.x/config-x86_64"}) {
		t.Errorf("6.6.x ConfigFiles(amd64) = %q, %v", files, err)
	}

	rt := mustLookup(t, d, "5.11.x-rt")
	if rt.Base != "5.11.x" || rt.Extra != "-rt" || rt.BaseSeries() != mustLookup(t, d, "5.11.x") || !rt.Deprecated || !rt.Version.IsZero() {
		t.Errorf("5.11.x-rt = %+v", rt)
	}
	if want := []string{"5.11.x-rt/patches/0001-rt.patch", "5.11.x/patches/0001-base.patch"}; !slices.Equal(rt.PatchFiles(), want) {
		t.Errorf("5.11.x-rt patches = %q, want %q (variant's first)", rt.PatchFiles(), want)
	}
	if files, err := rt.ConfigFiles(amd64); err != nil || !slices.Equal(files, []string{"5.11.x/config-x86_64", "5.11.x-rt/config-x86_64"}) {
		t.Errorf("5.11.x-rt ConfigFiles = %q, %v", files, err)
	}

	foo := mustLookup(t, d, "6.6.x-foo")
	if foo.Version != (Version{6, 6, 71}) || foo.BuildImage() != "linuxkit/alpine:abc" {
		t.Errorf("6.6.x-foo takes its base's version and build-args: %+v", foo)
	}
	arm64, _ := ParseArch("arm64")
	if files, err := foo.ConfigFiles(arm64); err != nil || !slices.Equal(files, []string{"6.6.x/config-aarch64", "6.6.x-foo/config-aarch64"}) {
		t.Errorf("6.6.x-foo ConfigFiles(arm64) = %q, %v", files, err)
	}
	if files, err := foo.ConfigFiles(amd64); err != nil || !slices.Equal(files, []string{"6.6.x/config-x86_64"}) {
		t.Errorf("6.6.x-foo ConfigFiles(amd64) = %q, %v (the fragment is optional)", files, err)
	}

	riscv, _ := ParseArch("riscv64")
	_, err = mustLookup(t, d, "6.12.x").ConfigFiles(riscv)
	if !errors.Is(err, ErrNoConfig) || err.Error() != "series 6.12.x has no config for riscv64 (it has x86_64): no config for this arch" {
		t.Errorf("6.12.x ConfigFiles(riscv64) = %v", err)
	}
	if _, err := d.Lookup("6.7.x"); !errors.Is(err, ErrNoSeries) {
		t.Errorf("Lookup(6.7.x) = %v, want ErrNoSeries", err)
	}
}

func mustLookup(t *testing.T, d *Dir, name string) *Series {
	t.Helper()
	s, err := d.Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// flatListsFS is the flat layout as LinuxKit had it in February 2024:
// kernel lists in Makefile variables.
func flatListsFS() fstest.MapFS {
	return fstest.MapFS{
		"Makefile": {Data: []byte(`IMAGE_BUILDER=linuxkit/alpine:146f540f25cd92ec8ff0c5b0c98342a9a95e479e
KERNELS_all=6.6.13 5.15.27
KERNELS_x86_64=
KERNELS_aarch64=
DEPRECATED_all=5.10.104 5.11.4-rt
DEPRECATED_x86_64=5.4.172 
DEPRECATED_aarch64=
KERNELS?=$(KERNELS_all) $(KERNELS_$(ARCH))
TOOLS=bcc perf
`)},
		"config-dbg":                       {Data: []byte("CONFIG_DEBUG=y\n")},
		"config-6.6.x-x86_64":              {Data: []byte("x\n")},
		"config-6.6.x-aarch64":             {Data: []byte("a\n")},
		"config-5.15.x-x86_64":             {Data: []byte("x\n")},
		"config-5.15.x-aarch64":            {Data: []byte("a\n")},
		"config-5.10.x-x86_64":             {Data: []byte("x\n")},
		"config-5.11.x-x86_64":             {Data: []byte("x\n")},
		"config-5.11.x-x86_64-rt":          {Data: []byte("rt\n")},
		"config-5.4.x-x86_64":              {Data: []byte("x\n")},
		"patches-5.10.x/0001-a.patch":      {Data: []byte("a\n")},
		"patches-5.11.x/0001-b.patch":      {Data: []byte("b\n")},
		"patches-5.11.x-rt/0001-rt.patch":  {Data: []byte("rt\n")},
		"patches-5.11.x-rt/0002-rt2.patch": {Data: []byte("rt2\n")},
	}
}

func TestLoadFlatLayout(t *testing.T) {
	d, err := Load(flatListsFS(), "kernel")
	if err != nil {
		t.Fatal(err)
	}
	if d.Layout != LayoutFlat {
		t.Errorf("layout = %v", d.Layout)
	}
	var names []string
	for _, s := range d.Series {
		names = append(names, s.Name)
	}
	if want := []string{"5.10.x", "5.11.x-rt", "5.11.x", "5.15.x", "5.4.x", "6.6.x"}; !slices.Equal(names, want) {
		t.Errorf("series = %q, want %q", names, want)
	}
	s := mustLookup(t, d, "6.6.x")
	if s.Version != (Version{6, 6, 13}) || s.Deprecated || s.BuildImage() != "linuxkit/alpine:146f540f25cd92ec8ff0c5b0c98342a9a95e479e" || s.Args().Get(KeyKernelSeries) != "6.6.x" {
		t.Errorf("6.6.x = %+v, args %+v", s, s.BuildArgs)
	}
	rt := mustLookup(t, d, "5.11.x-rt")
	if rt.Version != (Version{5, 11, 4}) || !rt.Deprecated || rt.BaseSeries() == nil || rt.Extra != "-rt" {
		t.Errorf("5.11.x-rt = %+v", rt)
	}
	if want := []string{"patches-5.11.x-rt/0001-rt.patch", "patches-5.11.x-rt/0002-rt2.patch", "patches-5.11.x/0001-b.patch"}; !slices.Equal(rt.PatchFiles(), want) {
		t.Errorf("5.11.x-rt patches = %q", rt.PatchFiles())
	}
	amd64, _ := ParseArch("x86_64")
	if files, err := rt.ConfigFiles(amd64); err != nil || !slices.Equal(files, []string{"config-5.11.x-x86_64", "config-5.11.x-x86_64-rt"}) {
		t.Errorf("5.11.x-rt configs = %q, %v", files, err)
	}
	if v := mustLookup(t, d, "5.11.x").Version; !v.IsZero() {
		t.Errorf("5.11.x is only listed as a variant, yet has version %v", v)
	}
	arm64, _ := ParseArch("aarch64")
	if _, err := mustLookup(t, d, "5.4.x").ConfigFiles(arm64); !errors.Is(err, ErrNoConfig) {
		t.Errorf("5.4.x has no aarch64 config, got %v", err)
	}
}

// The flat layout before 2024 declared each kernel with $(eval $(call ...)).
func TestLoadFlatLayoutCalls(t *testing.T) {
	fsys := fstest.MapFS{
		"Makefile": {Data: []byte(`IMAGE_BUILDER=linuxkit/alpine:2be490394653b7967c250e86fd42cef88de428ba
ifeq ($(ARCH),x86_64)
$(eval $(call kernel,5.15.27,5.15.x,$(EXTRA),$(DEBUG)))
$(eval $(call kernel,5.15.27,5.15.x,,-dbg))
$(eval $(call kernel,5.4.172,5.4.x,$(EXTRA),$(DEBUG)))
$(eval $(call kernel,5.11.4,5.11.x,-rt,))
else ifeq ($(ARCH),$(filter $(ARCH),aarch64 arm64))
$(eval $(call kernel,5.15.27,5.15.x,$(EXTRA),$(DEBUG)))
endif
`)},
		"config-5.15.x-x86_64":    {},
		"config-5.15.x-aarch64":   {},
		"config-5.4.x-x86_64":     {},
		"config-5.11.x-x86_64":    {},
		"config-5.11.x-x86_64-rt": {},
	}
	d, err := Load(fsys, "kernel")
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]Version{"5.15.x": {5, 15, 27}, "5.4.x": {5, 4, 172}, "5.11.x-rt": {5, 11, 4}, "5.11.x": {}} {
		if got := mustLookup(t, d, name).Version; got != want {
			t.Errorf("%s version = %v, want %v", name, got, want)
		}
	}
	co := &Checkout{Dir: d}
	amd64, _ := ParseArch("amd64")
	l, err := co.List(amd64)
	if err != nil {
		t.Fatal(err)
	}
	if want := "Arch: x86_64\nKernels: 5.15.27 5.4.172 5.11.4-rt\nDeprecated: \nTools: \n"; l.String() != want {
		t.Errorf("list =\n%s\nwant\n%s", l, want)
	}
}

func TestDetect(t *testing.T) {
	for _, tc := range []struct {
		name string
		fsys fstest.MapFS
		want Layout
		err  error
	}{
		{"series", seriesFS(), LayoutSeries, nil},
		{"flat", flatListsFS(), LayoutFlat, nil},
		{"variant folder only", fstest.MapFS{"6.6.x-rt/patches/0001-a.patch": {}}, LayoutSeries, nil},
		{"linuxkit root", fstest.MapFS{"kernel/6.6.x/build-args": {}, "Makefile": {}, "pkg/init/build.yml": {}}, 0, ErrNotKernelDir},
		{"empty series folder", fstest.MapFS{"6.6.x/.keep": {}}, 0, ErrNotKernelDir},
		{"config-dbg only", fstest.MapFS{"config-dbg": {}}, 0, ErrNotKernelDir},
		{"unknown arch only", fstest.MapFS{"config-4.9.x-s390x": {}}, 0, ErrNotKernelDir},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Detect(tc.fsys)
			if got != tc.want || !errors.Is(err, tc.err) {
				t.Errorf("Detect = %v, %v; want %v, %v", got, err, tc.want, tc.err)
			}
		})
	}
}

// Every malformed input fails with an error naming the file, and the line
// when there is one.
func TestLoadErrors(t *testing.T) {
	base := func(files map[string]string) fstest.MapFS {
		fsys := fstest.MapFS{"6.6.x/config-x86_64": {Data: []byte("x\n")}}
		for name, data := range files {
			fsys[name] = &fstest.MapFile{Data: []byte(data)}
		}
		return fsys
	}
	for _, tc := range []struct {
		name string
		fsys fstest.MapFS
		file string
		line int
		msg  string
	}{
		{
			name: "build-args without KERNEL_VERSION",
			fsys: base(map[string]string{"6.6.x/build-args": "KERNEL_SERIES=6.6.x\nBUILD_IMAGE=linuxkit/alpine:abc\n"}),
			file: "kernel/6.6.x/build-args",
			msg:  "kernel/6.6.x/build-args: no KERNEL_VERSION line (want e.g. KERNEL_VERSION=6.6.71)",
		},
		{
			name: "version not semver",
			fsys: base(map[string]string{"6.6.x/build-args": "KERNEL_SERIES=6.6.x\nKERNEL_VERSION=6.6\n"}),
			file: "kernel/6.6.x/build-args", line: 2,
			msg: `kernel/6.6.x/build-args:2: KERNEL_VERSION: "6.6" is not a kernel version like 6.6.71`,
		},
		{
			name: "version not in the folder's series",
			fsys: base(map[string]string{"6.6.x/build-args": "KERNEL_VERSION=6.1.2\nKERNEL_SERIES=6.6.x\n"}),
			file: "kernel/6.6.x/build-args", line: 1,
			msg: "kernel/6.6.x/build-args:1: KERNEL_VERSION=6.1.2 belongs to series 6.1.x, not 6.6.x",
		},
		{
			name: "KERNEL_SERIES not the folder",
			fsys: base(map[string]string{"6.6.x/build-args": "KERNEL_VERSION=6.6.71\nKERNEL_SERIES=6.1.x\n"}),
			file: "kernel/6.6.x/build-args", line: 2,
			msg: "kernel/6.6.x/build-args:2: KERNEL_SERIES=6.1.x does not match folder 6.6.x (want KERNEL_SERIES=6.6.x)",
		},
		{
			name: "variant's build-args in the wrong series",
			fsys: base(map[string]string{"6.6.x/build-args": "KERNEL_VERSION=6.6.71\n", "6.6.x-rt/build-args": "# rt\nKERNEL_VERSION=6.7.1\n"}),
			file: "kernel/6.6.x-rt/build-args", line: 2,
			msg: "kernel/6.6.x-rt/build-args:2: KERNEL_VERSION=6.7.1 belongs to series 6.7.x, not 6.6.x",
		},
		{
			name: "line that is not KEY=VALUE",
			fsys: base(map[string]string{"6.6.x/build-args": "KERNEL_VERSION=6.6.71\nBUILD_IMAGE linuxkit/alpine:abc\n"}),
			file: "kernel/6.6.x/build-args", line: 2,
			msg: `kernel/6.6.x/build-args:2: "BUILD_IMAGE linuxkit/alpine:abc" is not KEY=VALUE`,
		},
		{
			name: "series without build-args",
			fsys: base(nil),
			file: "kernel/6.6.x/build-args",
			msg:  "kernel/6.6.x/build-args: missing: every series that is not deprecated needs one, with KERNEL_VERSION=<version>",
		},
		{
			name: "variant without base",
			fsys: fstest.MapFS{"6.6.x-rt/patches/0001-a.patch": {}},
			file: "kernel/6.6.x-rt",
			msg:  "kernel/6.6.x-rt: variant of 6.6.x, but there is no 6.6.x folder",
		},
		{
			name: "variant of a base without version",
			fsys: fstest.MapFS{"6.6.x/deprecated": {}, "6.6.x-rt/patches/0001-a.patch": {}},
			file: "kernel/6.6.x-rt",
			msg:  "kernel/6.6.x-rt: no build-args, and 6.6.x has no KERNEL_VERSION either",
		},
		{
			name: "flat: version that is not semver",
			fsys: fstest.MapFS{"config-6.6.x-x86_64": {}, "Makefile": {Data: []byte("# kernels\nKERNELS_all=6.6.13 6.6\n")}},
			file: "kernel/Makefile", line: 2,
			msg: `kernel/Makefile:2: KERNELS_all: "6.6" is not a kernel version like 6.6.71`,
		},
		{
			name: "flat: kernel without configs",
			fsys: fstest.MapFS{"config-6.6.x-x86_64": {}, "Makefile": {Data: []byte("KERNELS_all=6.6.13\n\nDEPRECATED_all=5.4.1\n")}},
			file: "kernel/Makefile", line: 3,
			msg: "kernel/Makefile:3: kernel 5.4.1: no config-5.4.x-<arch> files",
		},
		{
			name: "flat: one series, two versions",
			fsys: fstest.MapFS{"config-6.6.x-x86_64": {}, "Makefile": {Data: []byte("KERNELS_all=6.6.13\nKERNELS_x86_64=6.6.14\n")}},
			file: "kernel/Makefile", line: 2,
			msg: "kernel/Makefile:2: 6.6.x is listed as 6.6.14 here and as 6.6.13 on line 1",
		},
		{
			name: "flat: call in the wrong series",
			fsys: fstest.MapFS{"config-6.6.x-x86_64": {}, "Makefile": {Data: []byte("\n$(eval $(call kernel,6.6.13,6.1.x,,))\n")}},
			file: "kernel/Makefile", line: 2,
			msg: "kernel/Makefile:2: kernel 6.6.13 is declared in series 6.1.x, but belongs to 6.6.x",
		},
		{
			name: "flat: variant without base configs",
			fsys: fstest.MapFS{"config-6.6.x-x86_64-rt": {}},
			file: "kernel/config-6.6.x-*",
			msg:  "kernel/config-6.6.x-*: variant 6.6.x-rt needs the configs of 6.6.x, and there are none",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, err := Load(tc.fsys, "kernel")
			if err == nil {
				t.Fatalf("Load succeeded: %+v", d.Series)
			}
			var fe *FileError
			if !errors.As(err, &fe) {
				t.Fatalf("err = %v (%T), want a *FileError", err, err)
			}
			if fe.File != tc.file || fe.Line != tc.line || err.Error() != tc.msg {
				t.Errorf("err = %q (file %q, line %d)\nwant %q (file %q, line %d)", err, fe.File, fe.Line, tc.msg, tc.file, tc.line)
			}
		})
	}
}

func TestLoadNotKernelDir(t *testing.T) {
	_, err := Load(fstest.MapFS{"README.md": {}}, "/src/linuxkit")
	if !errors.Is(err, ErrNotKernelDir) || err.Error() != "/src/linuxkit: not a LinuxKit kernel directory (want folders like 6.6.x/ with build-args, or files like config-6.6.x-x86_64)" {
		t.Errorf("err = %v", err)
	}
}
