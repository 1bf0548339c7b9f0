package kernel

import (
	"strings"
	"testing"
)

func TestSetVersion(t *testing.T) {
	tests := []struct {
		name, series, version string
		// want is "" for an error containing wantErr, else the changed
		// series, comma-separated.
		want, wantErr string
	}{
		{name: "series and its variant", series: "6.6.x", version: "6.6.80", want: "6.6.x,6.6.x-foo"},
		{name: "series without variants", series: "6.12.x", version: "6.12.60", want: "6.12.x"},
		{name: "deprecated with build-args", series: "5.15.x", version: "5.15.30", want: "5.15.x"},
		{name: "other series", series: "6.6.x", version: "6.12.60", wantErr: "not in series 6.6.x"},
		{name: "variant", series: "6.6.x-foo", version: "6.6.80", wantErr: "takes its version from 6.6.x"},
		{name: "no build-args", series: "5.11.x", version: "5.11.2", wantErr: "no build-args"},
		{name: "unknown series", series: "4.19.x", version: "4.19.1", wantErr: "series 4.19.x"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d, err := Load(seriesFS(), "kernel")
			if err != nil {
				t.Fatal(err)
			}
			v, err := ParseVersion(tc.version)
			if err != nil {
				t.Fatal(err)
			}
			changed, err := d.SetVersion(tc.series, v)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got %v, want an error with %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, s := range changed {
				names = append(names, s.Name)
				if s.Version != v {
					t.Errorf("%s is %s, want %s", s.Name, s.Version, v)
				}
			}
			if got := strings.Join(names, ","); got != tc.want {
				t.Errorf("changed %s, want %s", got, tc.want)
			}
			// What a build of the series would see.
			s, name, err := (&Checkout{Dir: d}).Resolve(Query{Series: tc.series})
			if err != nil || s.Version != v || name.Version != v {
				t.Errorf("resolve after: %v %v %v", s, name, err)
			}
		})
	}
}

func TestSetVersionFlat(t *testing.T) {
	d, err := Load(flatListsFS(), "kernel")
	if err != nil {
		t.Fatal(err)
	}
	_, err = d.SetVersion(d.Series[0].Name, d.Series[0].Version)
	if err == nil || !strings.Contains(err.Error(), "flat layout") {
		t.Fatalf("got %v, want the flat layout refused", err)
	}
}

func TestReplaceBuildArg(t *testing.T) {
	tests := []struct {
		name, in, key, value, want, wantErr string
	}{
		{name: "plain", in: "KERNEL_VERSION=6.6.71\nKERNEL_SERIES=6.6.x\n", key: "KERNEL_VERSION", value: "6.6.72",
			want: "KERNEL_VERSION=6.6.72\nKERNEL_SERIES=6.6.x\n"},
		{name: "a key with blanks before = is another key", in: "# pinned\n\n  KERNEL_VERSION = x\r\nKERNEL_VERSION_X=1\nBUILD_IMAGE=a=b", key: "KERNEL_VERSION", value: "6.6.72",
			wantErr: "no KERNEL_VERSION line"},
		{name: "indent and CRLF", in: "# pinned\n\n  KERNEL_VERSION=6.6.71\r\nKERNEL_VERSION_X=1\nBUILD_IMAGE=a=b", key: "KERNEL_VERSION", value: "6.6.72",
			want: "# pinned\n\n  KERNEL_VERSION=6.6.72\r\nKERNEL_VERSION_X=1\nBUILD_IMAGE=a=b"},
		{name: "last line without newline", in: "A=1\nKERNEL_VERSION=6.6.71", key: "KERNEL_VERSION", value: "6.6.72",
			want: "A=1\nKERNEL_VERSION=6.6.72"},
		{name: "comment is not the key", in: "#KERNEL_VERSION=1\nKERNEL_VERSION=2\n", key: "KERNEL_VERSION", value: "3",
			want: "#KERNEL_VERSION=1\nKERNEL_VERSION=3\n"},
		{name: "missing", in: "A=1\n", key: "KERNEL_VERSION", value: "3", wantErr: "no KERNEL_VERSION line"},
		{name: "twice", in: "KERNEL_VERSION=1\nKERNEL_VERSION=2\n", key: "KERNEL_VERSION", value: "3", wantErr: "set twice"},
		{name: "value with newline", in: "KERNEL_VERSION=1\n", key: "KERNEL_VERSION", value: "3\nEVIL=1", wantErr: "one line"},
		{name: "bad key", in: "KERNEL_VERSION=1\n", key: "KERNEL VERSION", value: "3", wantErr: "not a valid build-arg name"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ReplaceBuildArg([]byte(tc.in), tc.key, tc.value)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got %q, %v; want an error with %q", got, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
			if _, err := ParseBuildArgs("build-args", strings.NewReader(string(got))); err != nil {
				t.Errorf("the result does not parse: %v", err)
			}
		})
	}
}
