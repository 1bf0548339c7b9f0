package kernel

import (
	"slices"
	"testing"
)

func TestNameTags(t *testing.T) {
	amd64, _ := ParseArch("x86_64")
	arm64, _ := ParseArch("aarch64")
	v := Version{6, 6, 71}
	for _, tc := range []struct {
		name string
		n    Name
		hash string
		arch Arch
		want []string
	}{
		{"plain", Name{Version: v}, "H", amd64, []string{
			"linuxkit/kernel:6.6.71-H-amd64", "linuxkit/kernel:6.6.71-H", "linuxkit/kernel:6.6.71-amd64", "linuxkit/kernel:6.6.71", "linuxkit/kernel:6.6.71-builder"}},
		{"debug", Name{Version: v, Debug: true}, "H", arm64, []string{
			"linuxkit/kernel:6.6.71-dbg-H-arm64", "linuxkit/kernel:6.6.71-dbg-H", "linuxkit/kernel:6.6.71-dbg-arm64", "linuxkit/kernel:6.6.71-dbg", "linuxkit/kernel:6.6.71-builder"}},
		{"extra before dbg", Name{Org: "o", Image: "i", Version: v, Extra: "-foo", Debug: true}, "H-dirty", amd64, []string{
			"o/i:6.6.71-foo-dbg-H-dirty-amd64", "o/i:6.6.71-foo-dbg-H-dirty", "o/i:6.6.71-foo-dbg-amd64", "o/i:6.6.71-foo-dbg", "o/i:6.6.71-foo-builder"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tags, err := tc.n.Tags(tc.hash, tc.arch)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			var kinds []TagKind
			for _, tag := range tags {
				got = append(got, tag.String())
				kinds = append(kinds, tag.Kind)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("tags = %q\nwant %q", got, tc.want)
			}
			if want := []TagKind{TagArchImage, TagIndex, TagReleaseArchImage, TagReleaseIndex, TagBuilder}; !slices.Equal(kinds, want) {
				t.Errorf("kinds = %v", kinds)
			}
			if show := tc.n.ShowTag(tc.hash); show != tc.want[1] {
				t.Errorf("ShowTag = %q, want the index tag %q", show, tc.want[1])
			}
		})
	}
}

func TestNameTagsErrors(t *testing.T) {
	amd64, _ := ParseArch("amd64")
	for _, tc := range []struct {
		name string
		n    Name
		hash string
		arch Arch
	}{
		{"no version", Name{}, "H", amd64},
		{"no hash", Name{Version: Version{6, 6, 71}}, "", amd64},
		{"hash with colon", Name{Version: Version{6, 6, 71}}, "a:b", amd64},
		{"no arch", Name{Version: Version{6, 6, 71}}, "H", Arch{}},
	} {
		if tags, err := tc.n.Tags(tc.hash, tc.arch); err == nil {
			t.Errorf("%s: Tags = %v, want an error", tc.name, tags)
		}
	}
}
