package kernel

import (
	"strings"
	"testing"
)

func TestRefUpdaterUpdate(t *testing.T) {
	v := func(s string) Version { x, _ := ParseVersion(s); return x }
	h := strings.Repeat("a", 40)
	cur := strings.Repeat("b", 40)
	u := &RefUpdater{
		Repository: "linuxkit/kernel",
		highest:    map[string]Version{"": v("6.12.59"), "-rt": v("6.6.69")},
		current:    map[string]seriesRef{"6.6.x": {v("6.6.71"), cur}, "6.6.x-rt": {v("6.6.69"), cur}},
	}
	for _, tc := range []struct {
		name, in, want string
		yaml           bool
	}{
		{"line start", "linuxkit/kernel:6.6.1\n", "linuxkit/kernel:6.12.59\n", false},
		{"crlf", "image: linuxkit/kernel:6.6.1\r\n", "image: linuxkit/kernel:6.12.59\r\n", true},
		{"no newline at the end", "image: linuxkit/kernel:6.6.1-" + h, "image: linuxkit/kernel:6.6.71-" + cur, true},
		{"flow list", "[linuxkit/kernel:6.6.1, linuxkit/kernel:6.6.1-dbg]\n", "[linuxkit/kernel:6.12.59, linuxkit/kernel:6.12.59-dbg]\n", true},
		{"a # in quotes is no comment", `x: "a # b" linuxkit/kernel:6.6.1` + "\n", `x: "a # b" linuxkit/kernel:6.12.59` + "\n", true},
		{"a comment", "x: y # linuxkit/kernel:6.6.1\n", "x: y # linuxkit/kernel:6.6.1\n", true},
		{"a comment line", "  # linuxkit/kernel:6.6.1\n", "  # linuxkit/kernel:6.6.1\n", true},
		{"a longer name", "linuxkit/kernel:6.6.1x linuxkit/kernel:6.6\n", "linuxkit/kernel:6.6.1x linuxkit/kernel:6.6\n", false},
		{"a series built neither plain nor as the variant", "linuxkit/kernel:6.12.1-rt-" + h + "\n", "linuxkit/kernel:6.12.1-rt-" + h + "\n", false},
		{"a dirty hash is no hash", "linuxkit/kernel:6.6.1-" + h + "-dirty\n", "linuxkit/kernel:6.6.1-" + h + "-dirty\n", false},
		{"block scalar, then a comment after it ends",
			"a: |-\n  # linuxkit/kernel:6.6.1\nb: 1 # linuxkit/kernel:6.6.1\n",
			"a: |-\n  # linuxkit/kernel:6.12.59\nb: 1 # linuxkit/kernel:6.6.1\n", true},
		{"a list item's folded scalar, with a blank line inside",
			"- >\n  linuxkit/kernel:6.6.1\n\n  # linuxkit/kernel:6.6.1\n- # linuxkit/kernel:6.6.1\n",
			"- >\n  linuxkit/kernel:6.12.59\n\n  # linuxkit/kernel:6.12.59\n- # linuxkit/kernel:6.6.1\n", true},
		{"no block scalars outside YAML", "x: |\n  # linuxkit/kernel:6.6.1\n", "x: |\n  # linuxkit/kernel:6.6.1\n", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, _ := u.Update([]byte(tc.in), tc.yaml)
			if string(got) != tc.want {
				t.Errorf("Update(%q) =\n%q\nwant\n%q", tc.in, got, tc.want)
			}
		})
	}
}
