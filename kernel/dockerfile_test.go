package kernel

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseBuildPackages(t *testing.T) {
	tests := []struct {
		name, dockerfile string
		want             *BuildPackages
		err              string
	}{{
		name: "linuxkit",
		dockerfile: `ARG BUILD_IMAGE
FROM ${BUILD_IMAGE} AS kernel-build
ARG BUILD_IMAGE
RUN apk add \
    argp-standalone \
    bash \
# a comment inside the instruction
    build-base \
    xz

ARG KERNEL_VERSION
RUN mkdir -p /out/src
RUN curl -fsSLO ${KERNEL_SOURCE} && xz -d linux.tar.xz
FROM scratch
RUN apk add not-this-stage
`,
		want: &BuildPackages{Manager: ManagerApk, Packages: []string{"argp-standalone", "bash", "build-base", "xz"}},
	}, {
		name: "apt with options, several commands and redirections",
		dockerfile: `FROM debian AS build
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get -o Dpkg::Use-Pty=0 install -y --no-install-recommends gcc make >/dev/null 2>&1; apt-get clean
RUN ["apt-get", "install", "-y", "bc", "gcc"]
RUN --mount=type=cache,target=/var/cache/apt apt install 'flex' "bison=2:3.8*"
`,
		err: "needs a shell",
	}, {
		name: "apt",
		dockerfile: `FROM debian AS build
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get -o Dpkg::Use-Pty=0 install -y --no-install-recommends gcc make >/dev/null 2>&1; apt-get clean
RUN ["apt-get", "install", "-y", "bc", "gcc"]
RUN --mount=type=cache,target=/var/cache/apt apt install 'flex' "bison"
RUN if [ "$(uname -m)" = x86_64 ]; then apt-get install -y iucode-tool; fi
`,
		want: &BuildPackages{Manager: ManagerApt, Packages: []string{"gcc", "make", "bc", "flex", "bison", "iucode-tool"}},
	}, {
		name:       "apk with a repository option and a virtual package",
		dockerfile: "FROM alpine\nRUN apk add --no-cache -X /mirror -t .deps gcc musl-dev\n",
		want:       &BuildPackages{Manager: ManagerApk, Packages: []string{"gcc", "musl-dev"}},
	}, {
		name:       "nothing installed",
		dockerfile: "FROM alpine\nRUN apk update\nRUN make\n",
	}, {
		name:       "a variable",
		dockerfile: "FROM alpine\nRUN apk add gcc $EXTRA_PACKAGES\n",
		err:        `"$EXTRA_PACKAGES" needs a shell`,
	}, {
		name:       "two managers",
		dockerfile: "FROM alpine\nRUN apk add gcc\nRUN apt-get install make\n",
		err:        "both apk and apt",
	}, {
		name:       "unterminated quote",
		dockerfile: "FROM alpine\nRUN apk add 'gcc\n",
		err:        "unterminated quote",
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseBuildPackages("common/Dockerfile", strings.NewReader(tc.dockerfile))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want one containing %q", err, tc.err)
				}
				if !strings.HasPrefix(err.Error(), "common/Dockerfile:") {
					t.Errorf("err %q does not name the file", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tc.want != nil {
				tc.want.File = "common/Dockerfile"
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}
