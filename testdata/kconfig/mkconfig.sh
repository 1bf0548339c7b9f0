#!/bin/sh
# mkconfig.sh makes a final config for the test kernel inside an arch's
# builder (the .config records the compiler, so it must be made there):
# tinyconfig, then common.config and $ARCH.config merged in, then
# olddefconfig; it checks that another olddefconfig changes nothing and
# writes /cfg/config-$ARCH. Run it with the source at /src (read-only is
# fine), an empty /build and this directory at /cfg, e.g.
#
#   lkbuild run --arch riscv64 --builder-image B --cross-image C \
#       --bind SRC:/src:ro --bind BUILD:/build --bind testdata/kconfig:/cfg \
#       --env ARCH=riscv --env LC_ALL=C -- sh /cfg/mkconfig.sh
set -e
cd /build
make -s -C /src O=/build tinyconfig
/src/scripts/kconfig/merge_config.sh -m -O /build .config /cfg/common.config "/cfg/$ARCH.config" >/dev/null
make -s -C /src O=/build olddefconfig
cp .config /tmp/config
make -s -C /src O=/build olddefconfig
cmp .config /tmp/config
cp .config "/cfg/config-$ARCH"
