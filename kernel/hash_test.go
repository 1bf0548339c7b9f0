package kernel

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
)

func TestHashObject(t *testing.T) {
	// What `git hash-object --stdin` prints for these inputs.
	for in, want := range map[string]string{
		"":        "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391",
		"hello\n": "ce013625030ba8dba906f756967f9e9ca394464a",
	} {
		if got := HashObject([]byte(in)); got != want {
			t.Errorf("HashObject(%q) = %s, want %s", in, got, want)
		}
	}
}

// upstreamShared is `git ls-tree -r --full-tree HEAD -- kernel/Makefile
// kernel/common` in linuxkit/linuxkit at commit 3bf33c3a11fc (December
// 2025). There `make list` printed "Shared hash: 0c58ec1b..." and
// `make show-tag-6.6.71` printed
// "linuxkit/kernel:6.6.71-77b4563829536629b7d5768d4407453c26602d65".
const upstreamShared = "100644 blob c1c3fbea97ce1c4e3ca42b18140b6451ffb162cc\tkernel/Makefile\n" +
	"100644 blob 678e369cbe07efeef0b110ae7fe1195a9b9692a3\tkernel/common/Dockerfile\n" +
	"100644 blob 183a702e8c0231cdb12283b379f364d6f90487ad\tkernel/common/Dockerfile.bcc\n" +
	"100644 blob 1e87831041bda8879b72a3aa6cf56dcaa1f9a676\tkernel/common/Dockerfile.kconfig\n" +
	"100644 blob 2a5201b8d15b3e870b503502912106c084e40941\tkernel/common/Dockerfile.kconfigx\n" +
	"100644 blob 9c570c8bc3cd0b6be5870303469f15274290d85f\tkernel/common/Dockerfile.perf\n" +
	"100644 blob caae046c9eb814ee0ea4d8c995f16fdd9e385911\tkernel/common/Dockerfile.zfs\n" +
	"100644 blob d3cb6fdf73c9a00c230427d1ae2f7ddedd5f5b91\tkernel/common/build-args-debug\n" +
	"100644 blob 616386e6b8af4d9268f5d82f2a1f09010951660e\tkernel/common/build-bcc.yml\n" +
	"100644 blob 6e3cf560d2f58ccb5c88dccd5f2bfaa6d631317e\tkernel/common/build-kernel.yml\n" +
	"100644 blob 1acb64361b050f4090efef15ed1b95f1605104e3\tkernel/common/build-perf.yml\n" +
	"100644 blob 506156b9b0da16cb179c1baba72a08513011216a\tkernel/common/config-dbg\n" +
	"100644 blob 7f04aa60e5249f03377e8ee80fd8fbb8878671c6\tkernel/common/keys.asc\n"

func TestSeriesHashUpstream(t *testing.T) {
	shared := SharedHash([]byte(upstreamShared))
	if shared != "0c58ec1b97a24efddf0ed4e95e32291678cc0f74" {
		t.Fatalf("shared hash = %s", shared)
	}
	for series, tc := range map[string]struct{ lsTree, want string }{
		"6.6.x":  {"040000 tree 87ba9c6077edfb3395b99da00551bfdfd97bc490\tkernel/6.6.x\n", "77b4563829536629b7d5768d4407453c26602d65"},
		"6.12.x": {"040000 tree eb18803de5cbff4ba5c64ca46e2514e02aac498d\tkernel/6.12.x\n", "0ef72d722190ecfe0b3b37711f9a871a696e301a"},
		"5.11.x": {"040000 tree 5427b41482e603d81aa8f36c94f4287ff78b6b5e\tkernel/5.11.x\n", "e9883445b921781f6335c30e9b6569d72c77b5f6"},
	} {
		if got := SeriesHash(shared, []byte(tc.lsTree)); got != tc.want {
			t.Errorf("SeriesHash(%s) = %s, want %s", series, got, tc.want)
		}
	}
}

// fakeRev answers ls-tree from canned output and records what it was asked.
type fakeRev struct {
	trees map[string]string // "-r a b" or "a" -> output
	dirty bool
	asked []string
}

func (f *fakeRev) LsTree(recursive bool, paths ...string) ([]byte, error) {
	key := strings.Join(paths, " ")
	if recursive {
		key = "-r " + key
	}
	f.asked = append(f.asked, "ls-tree "+key)
	out, ok := f.trees[key]
	if !ok {
		return nil, fmt.Errorf("unexpected ls-tree %s", key)
	}
	return []byte(out), nil
}

func (f *fakeRev) Dirty(path string) (bool, error) {
	f.asked = append(f.asked, "dirty "+path)
	return f.dirty, nil
}

func upstreamCheckout(t *testing.T, dirty bool) (*Checkout, *fakeRev) {
	t.Helper()
	d, err := Load(seriesFS(), "kernel")
	if err != nil {
		t.Fatal(err)
	}
	rev := &fakeRev{dirty: dirty, trees: map[string]string{
		"-r kernel/Makefile kernel/common": upstreamShared,
		"kernel/6.6.x":                     "040000 tree 87ba9c6077edfb3395b99da00551bfdfd97bc490\tkernel/6.6.x\n",
		"kernel/5.11.x":                    "040000 tree 5427b41482e603d81aa8f36c94f4287ff78b6b5e\tkernel/5.11.x\n",
		"kernel/6.12.x":                    "",
	}}
	return &Checkout{Dir: d, Path: "kernel", Rev: rev}, rev
}

func TestCheckoutShowTag(t *testing.T) {
	const h66 = "77b4563829536629b7d5768d4407453c26602d65"
	const h511 = "e9883445b921781f6335c30e9b6569d72c77b5f6"
	for _, tc := range []struct {
		name  string
		q     Query
		dirty bool
		want  string
	}{
		{"series", Query{Series: "6.6.x"}, false, "linuxkit/kernel:6.6.71-" + h66},
		{"version", Query{Version: "6.6.71"}, false, "linuxkit/kernel:6.6.71-" + h66},
		{"both", Query{Series: "6.6.x", Version: "6.6.71"}, false, "linuxkit/kernel:6.6.71-" + h66},
		{"other version in the series, as make allows", Query{Version: "6.6.99"}, false, "linuxkit/kernel:6.6.99-" + h66},
		{"debug", Query{Series: "6.6.x", Debug: true}, false, "linuxkit/kernel:6.6.71-dbg-" + h66},
		{"dirty", Query{Series: "6.6.x"}, true, "linuxkit/kernel:6.6.71-" + h66 + "-dirty"},
		{"org and image", Query{Series: "6.6.x", Org: "me", Image: "k"}, false, "me/k:6.6.71-" + h66},
		// A variant is hashed as its base: make derives the folder from the
		// version alone.
		{"variant folder", Query{Series: "6.6.x-foo"}, false, "linuxkit/kernel:6.6.71-foo-" + h66},
		{"variant by extra", Query{Series: "6.6.x", Extra: "-foo", Debug: true}, false, "linuxkit/kernel:6.6.71-foo-dbg-" + h66},
		{"deprecated variant, version given", Query{Version: "5.11.4", Extra: "-rt"}, false, "linuxkit/kernel:5.11.4-rt-" + h511},
	} {
		t.Run(tc.name, func(t *testing.T) {
			co, _ := upstreamCheckout(t, tc.dirty)
			got, err := co.ShowTag(tc.q)
			if err != nil || got != tc.want {
				t.Errorf("ShowTag(%+v) = %q, %v; want %q", tc.q, got, err, tc.want)
			}
		})
	}
}

func TestCheckoutShowTagErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		q    Query
		is   error
		msg  string
	}{
		{"nothing", Query{}, nil, "no series or version given"},
		{"bad series", Query{Series: "6.6"}, nil, `"6.6" is not a series name like 6.6.x or 5.11.x-rt`},
		{"bad version", Query{Version: "6.6"}, nil, `"6.6" is not a kernel version like 6.6.71`},
		{"version outside series", Query{Series: "6.6.x", Version: "6.12.1"}, nil, "version 6.12.1 is not in series 6.6.x"},
		{"unknown series", Query{Series: "6.7.x"}, ErrNoSeries, "kernel: series 6.7.x: no such series (have 5.11.x-rt, 5.11.x, 5.15.x, 6.12.x, 6.6.x-foo, 6.6.x)"},
		{"unknown variant", Query{Series: "6.6.x", Extra: "-rt"}, ErrNoSeries, ""},
		{"bad extra", Query{Series: "6.6.x", Extra: "rt"}, nil, `variant suffix "rt" must start with '-' and hold only letters, digits, '.', '_' and '-'`},
		{"two extras", Query{Series: "5.11.x-rt", Extra: "-foo"}, nil, "series 5.11.x-rt already names variant -rt, not -foo"},
		{"deprecated, no build-args", Query{Series: "5.11.x"}, ErrNoVersion, "kernel/5.11.x: series has no kernel version (no build-args with KERNEL_VERSION)"},
		{"not committed", Query{Series: "6.12.x"}, nil, "kernel/6.12.x: not in the commit being hashed: commit the series folder first"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			co, _ := upstreamCheckout(t, false)
			got, err := co.ShowTag(tc.q)
			if err == nil {
				t.Fatalf("ShowTag = %q, want an error", got)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("err = %v, want errors.Is %v", err, tc.is)
			}
			if tc.msg != "" && err.Error() != tc.msg {
				t.Errorf("err = %q\nwant %q", err, tc.msg)
			}
		})
	}
}

func TestCheckoutNoGit(t *testing.T) {
	d, err := Load(seriesFS(), "kernel")
	if err != nil {
		t.Fatal(err)
	}
	co := &Checkout{Dir: d}
	if _, err := co.ShowTag(Query{Series: "6.6.x"}); !errors.Is(err, ErrNoGit) {
		t.Errorf("ShowTag outside git: %v, want ErrNoGit", err)
	}
	amd64, _ := ParseArch("amd64")
	l, err := co.List(amd64)
	if err != nil {
		t.Fatal(err)
	}
	want := "Arch: x86_64\nKernels: 6.12.59 6.6.71\nDeprecated: 5.11.x-rt 5.11.x 5.15.x\nTools: bcc perf\nShared hash: none (not in a git work tree)\n"
	if l.String() != want {
		t.Errorf("list =\n%s\nwant\n%s", l, want)
	}
}

func TestCheckoutList(t *testing.T) {
	co, rev := upstreamCheckout(t, true)
	arm64, _ := ParseArch("arm64")
	l, err := co.List(arm64)
	if err != nil {
		t.Fatal(err)
	}
	// No -dirty on the shared hash, as in make.
	want := "Arch: aarch64\nKernels: 6.12.59 6.6.71\nDeprecated: 5.11.x-rt 5.11.x 5.15.x\nTools: bcc perf\nShared hash: 0c58ec1b97a24efddf0ed4e95e32291678cc0f74\n"
	if l.String() != want {
		t.Errorf("list =\n%s\nwant\n%s", l, want)
	}
	if !slices.Equal(rev.asked, []string{"ls-tree -r kernel/Makefile kernel/common"}) {
		t.Errorf("asked git %q", rev.asked)
	}
}

func TestCheckoutAtRepoRoot(t *testing.T) {
	d, err := Load(seriesFS(), ".")
	if err != nil {
		t.Fatal(err)
	}
	rev := &fakeRev{trees: map[string]string{
		"-r Makefile common": "100644 blob c1c3fbea97ce1c4e3ca42b18140b6451ffb162cc\tMakefile\n",
		"6.6.x":              "040000 tree 87ba9c6077edfb3395b99da00551bfdfd97bc490\t6.6.x\n",
	}}
	co := &Checkout{Dir: d, Path: "", Rev: rev}
	shared := HashObject([]byte("100644 blob c1c3fbea97ce1c4e3ca42b18140b6451ffb162cc\tMakefile\n"))
	want := "linuxkit/kernel:6.6.71-" + SeriesHash(shared, []byte("040000 tree 87ba9c6077edfb3395b99da00551bfdfd97bc490\t6.6.x\n"))
	if got, err := co.ShowTag(Query{Series: "6.6.x"}); err != nil || got != want {
		t.Errorf("ShowTag = %q, %v; want %q", got, err, want)
	}
	if !slices.Contains(rev.asked, "dirty ") {
		t.Errorf("dirty check not over the whole repository: %q", rev.asked)
	}
}

func TestCheckoutFlatHash(t *testing.T) {
	d, err := Load(flatListsFS(), "kernel")
	if err != nil {
		t.Fatal(err)
	}
	rev := &fakeRev{dirty: true, trees: map[string]string{
		"a/kernel": "040000 tree 4bb877f85e5039af3dae943edc8c3975d4053821\ta/kernel\n",
	}}
	co := &Checkout{Dir: d, Path: "a/kernel", Rev: rev}
	want := "linuxkit/kernel:5.11.4-rt-dbg-4bb877f85e5039af3dae943edc8c3975d4053821-dirty"
	if got, err := co.ShowTag(Query{Series: "5.11.x-rt", Debug: true}); err != nil || got != want {
		t.Errorf("ShowTag = %q, %v; want %q", got, err, want)
	}
	co.Path = ""
	if _, err := co.ShowTag(Query{Series: "6.6.x"}); err == nil {
		t.Error("a flat layout at the repository root has no tree hash, yet ShowTag succeeded")
	}
	amd64, _ := ParseArch("amd64")
	l, err := co.List(amd64)
	if err != nil {
		t.Fatal(err)
	}
	want = "Arch: x86_64\nKernels: 6.6.13 5.15.27\nDeprecated: 5.10.104 5.11.4-rt 5.4.172\nTools: bcc perf\n"
	if l.String() != want {
		t.Errorf("list =\n%s\nwant\n%s", l, want)
	}
	arm64, _ := ParseArch("arm64")
	l, _ = co.List(arm64)
	if want := "Arch: aarch64\nKernels: 6.6.13 5.15.27\nDeprecated: 5.10.104 5.11.4-rt\nTools: bcc perf\n"; l.String() != want {
		t.Errorf("list arm64 =\n%s\nwant\n%s", l, want)
	}
}

func TestCheckoutTags(t *testing.T) {
	co, _ := upstreamCheckout(t, false)
	riscv, _ := ParseArch("riscv64")
	tags, err := co.Tags(Query{Series: "6.6.x", Debug: true}, riscv)
	if err != nil {
		t.Fatal(err)
	}
	const h = "77b4563829536629b7d5768d4407453c26602d65"
	want := []string{
		"linuxkit/kernel:6.6.71-dbg-" + h + "-riscv64",
		"linuxkit/kernel:6.6.71-dbg-" + h,
		"linuxkit/kernel:6.6.71-dbg-riscv64",
		"linuxkit/kernel:6.6.71-dbg",
		"linuxkit/kernel:6.6.71-builder",
	}
	var got []string
	for _, tag := range tags {
		got = append(got, tag.String())
	}
	if !slices.Equal(got, want) {
		t.Errorf("tags = %q\nwant %q", got, want)
	}
	// 6.12.x has only an x86_64 config.
	_, err = co.Tags(Query{Series: "6.12.x"}, riscv)
	if !errors.Is(err, ErrNoConfig) || err.Error() != "kernel/6.12.x: series 6.12.x has no config for riscv64 (it has x86_64): no config for this arch" {
		t.Errorf("Tags(6.12.x, riscv64) = %v", err)
	}
}
