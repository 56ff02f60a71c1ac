#!/bin/sh
# packaging/deb/build.sh -- build conduix-cp_<version>_<arch>.deb from this checkout with dpkg-deb only
# (no debhelper needed): a VPATH build installed into a staging root with the FHS paths a Debian
# package uses, plus the systemd unit, the init script, logrotate, /etc/default and maintainer scripts.
#
# usage: packaging/deb/build.sh [OUTDIR]        (default OUTDIR: ./_dist)
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
out=${1:-$top/_dist}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$out"

# a clean copy of the sources (the checkout may be configured in place, which forbids a VPATH build)
cd "$top"
mkdir -p "$work/src"
git ls-files -co --exclude-standard | tar -cf - -T - | tar -xf - -C "$work/src"
(cd "$work/src" && autoreconf -fi >/dev/null 2>&1 &&
    ./configure -q --prefix=/usr --sysconfdir=/etc --localstatedir=/var --runstatedir=/run &&
    make -s -j2 >/dev/null && make -s install DESTDIR="$work/root" >/dev/null)
mkdir -p "$work/build" && cp "$work/src/config.h" "$work/build/config.h"
version=$(sed -n 's/^#define PACKAGE_VERSION "\(.*\)"/\1/p' "$work/build/config.h")
arch=$(dpkg --print-architecture)
root=$work/root

install -D -m 0644 packaging/systemd/conduix-cp.service "$root/lib/systemd/system/conduix-cp.service"
install -D -m 0755 packaging/sysvinit/conduix-cp "$root/etc/init.d/conduix-cp"
install -D -m 0644 packaging/logrotate/conduix-cp "$root/etc/logrotate.d/conduix-cp"
install -D -m 0640 packaging/default.env "$root/etc/default/conduix-cp"
[ -f README.md ] && install -D -m 0644 README.md "$root/usr/share/doc/conduix-cp/README.md"
for d in docs/*.md; do install -D -m 0644 "$d" "$root/usr/share/doc/conduix-cp/$(basename "$d")"; done
strip --strip-unneeded "$root/usr/bin/conduix-cp" "$root/usr/bin/conduix-agent-sim" 2>/dev/null || true

mkdir -p "$root/DEBIAN"
cat >"$root/DEBIAN/control" <<CTRL
Package: conduix-cp
Version: $version
Architecture: $arch
Maintainer: Conduix developers <dev@conduix.invalid>
Section: net
Priority: optional
Depends: libc6, libh2o-evloop0.13, libmariadb3, libhiredis0.14, libjson-c5, libjwt0, libyaml-0-2, libcurl4, libssl3, libuuid1, adduser
Recommends: mariadb-server, redis-server
Description: Conduix control plane
 The server that operators, the web UI, automation and pipeline agents talk to: pipeline
 definitions and their lifecycle on remote agents through Redis, agent heartbeats, cron
 schedules, run history, OAuth2/OIDC single sign-on, health and Prometheus metrics.
CTRL
cat >"$root/DEBIAN/conffiles" <<'CONF'
/etc/conduix-cp/config.yaml
/etc/default/conduix-cp
/etc/init.d/conduix-cp
/etc/logrotate.d/conduix-cp
CONF
cat >"$root/DEBIAN/postinst" <<'POST'
#!/bin/sh
set -e
if [ "$1" = configure ]; then
    getent group conduix >/dev/null || addgroup --system conduix
    getent passwd conduix >/dev/null ||
        adduser --system --ingroup conduix --home /var/lib/conduix-cp --no-create-home --shell /usr/sbin/nologin conduix
    install -d -o conduix -g conduix -m 0750 /var/log/conduix-cp /var/lib/conduix-cp
    chgrp conduix /etc/default/conduix-cp /etc/conduix-cp/config.yaml 2>/dev/null || true
    chmod 0640 /etc/conduix-cp/config.yaml 2>/dev/null || true
    if [ -d /run/systemd/system ]; then
        systemctl daemon-reload >/dev/null 2>&1 || true
    elif command -v update-rc.d >/dev/null 2>&1; then
        update-rc.d conduix-cp defaults >/dev/null || true
    fi
fi
exit 0
POST
cat >"$root/DEBIAN/prerm" <<'PRERM'
#!/bin/sh
set -e
if [ "$1" = remove ]; then
    if [ -d /run/systemd/system ]; then
        systemctl stop conduix-cp >/dev/null 2>&1 || true
    elif [ -x /etc/init.d/conduix-cp ]; then
        /etc/init.d/conduix-cp stop || true
    fi
fi
exit 0
PRERM
cat >"$root/DEBIAN/postrm" <<'POSTRM'
#!/bin/sh
set -e
if [ "$1" = purge ]; then
    command -v update-rc.d >/dev/null 2>&1 && update-rc.d conduix-cp remove >/dev/null || true
    rm -rf /var/log/conduix-cp /var/lib/conduix-cp
fi
exit 0
POSTRM
chmod 0755 "$root/DEBIAN/postinst" "$root/DEBIAN/prerm" "$root/DEBIAN/postrm"
dpkg-deb --root-owner-group -Zxz --build "$root" "$out/conduix-cp_${version}_${arch}.deb" >/dev/null
echo "$out/conduix-cp_${version}_${arch}.deb"
