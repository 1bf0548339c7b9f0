package kernel

import "testing"

func TestParseVersion(t *testing.T) {
	for _, tc := range []struct {
		in     string
		want   Version
		series string
	}{
		{"6.6.71", Version{6, 6, 71}, "6.6.x"},
		{"5.11.4", Version{5, 11, 4}, "5.11.x"},
		{"6.12.0", Version{6, 12, 0}, "6.12.x"},
		{"10.0.100", Version{10, 0, 100}, "10.0.x"},
	} {
		v, err := ParseVersion(tc.in)
		if err != nil {
			t.Errorf("ParseVersion(%q): %v", tc.in, err)
			continue
		}
		if v != tc.want || v.String() != tc.in || v.Series() != tc.series {
			t.Errorf("ParseVersion(%q) = %v (%s), want %v (%s)", tc.in, v, v.Series(), tc.want, tc.series)
		}
	}
	for _, bad := range []string{"", "6", "6.6", "6.6.x", "6.6.71.1", "v6.6.71", "6.6.071", "6.6.-1", "6.6.71-rt", "6.6.71 ", "6..71", "+6.6.1"} {
		if v, err := ParseVersion(bad); err == nil {
			t.Errorf("ParseVersion(%q) = %v, want an error", bad, v)
		}
	}
}

func TestVersionCompare(t *testing.T) {
	// sort -V order, as the Makefile's KERNEL_HIGHEST uses.
	order := []string{"5.4.172", "5.10.104", "5.15.27", "6.6.9", "6.6.71", "6.12.59"}
	for i := range order {
		for j := range order {
			a, _ := ParseVersion(order[i])
			b, _ := ParseVersion(order[j])
			want := 0
			if i < j {
				want = -1
			} else if i > j {
				want = 1
			}
			if got := a.Compare(b); got != want {
				t.Errorf("%s.Compare(%s) = %d, want %d", a, b, got, want)
			}
		}
	}
}
