package kernel

import (
	"slices"
	"strings"
	"testing"
)

func TestReadMakefile(t *testing.T) {
	in := `# comment
ORG?=linuxkit
IMAGE_BUILDER=linuxkit/alpine:abc # trailing comment
TOOLS=bcc \
	perf
TOOLS+=zfs
TOOLS?=ignored
override ARCH := x86_64
HASH_COMMIT?=HEAD
KERNELS?=$(KERNELS_all) $(KERNELS_$(ARCH))
KERNELS_all=6.6.13 5.15.27
ESCAPED=a\#b
list:
	@echo "TOOLS=not an assignment" \
  TOOLS=continued recipe
define kernel
TOOLS=inside define
$(eval $(call kernel,9.9.9,9.9.x,,))
endef
ifeq ($(ARCH),x86_64)
$(eval $(call kernel,5.15.27,5.15.x,$(EXTRA),$(DEBUG)))
$(eval $(call kernel, 5.11.4, 5.11.x, -rt, ))
endif
`
	m, err := readMakefile("Makefile", strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{
		"ORG":           "linuxkit",
		"IMAGE_BUILDER": "linuxkit/alpine:abc",
		"TOOLS":         "bcc perf zfs",
		"ARCH":          "x86_64",
		"ESCAPED":       `a\#b`,
	} {
		if got := strings.TrimSpace(m.vars[name].Value); got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
	if got := m.vars["TOOLS"].Line; got != 6 {
		t.Errorf("TOOLS line = %d, want 6 (the += line)", got)
	}
	if got := m.words("KERNELS"); len(got) != 0 {
		t.Errorf("words(KERNELS) = %q: references are not literal words", got)
	}
	if got := m.words("KERNELS_all"); !slices.Equal(got, []string{"6.6.13", "5.15.27"}) {
		t.Errorf("words(KERNELS_all) = %q", got)
	}
	if len(m.calls) != 2 {
		t.Fatalf("calls = %+v", m.calls)
	}
	if c := m.calls[0]; !slices.Equal(c.Args, []string{"5.15.27", "5.15.x", "$(EXTRA)", "$(DEBUG)"}) || c.Line != 21 {
		t.Errorf("call 0 = %+v", c)
	}
	if c := m.calls[1]; !slices.Equal(c.Args, []string{"5.11.4", "5.11.x", "-rt", ""}) || c.Line != 22 {
		t.Errorf("call 1 = %+v", c)
	}
}
