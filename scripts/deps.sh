#!/bin/sh
# Install the Debian packages xtrunk needs, only those missing.
#   deps.sh build   libraries and tools to build xtrunkd
#   deps.sh test    plus what make check and make demo need (Prosody, slixmpp, ...)
#   deps.sh package plus what test/package.sh needs (debhelper, dpkg-dev)
#   deps.sh bench   plus the references of make bench (haproxy)
set -eu
build="gcc make pkg-config libxml2-dev libgnutls28-dev libtasn1-6-dev libuv1-dev libconfig-dev libsystemd-dev libjson-c-dev"
package="debhelper dpkg-dev fakeroot curl"
bench="haproxy valgrind gnutls-bin"
test="check prosody ejabberd lua-unbound python3-slixmpp gnutls-bin dnsmasq-base iproute2 util-linux mandoc valgrind procps python3-prometheus-client systemd"
case "${1:-build}" in
build) want="$build $test" ;;
test) want="$build $test" ;;
package) want="$build $test $package" ;;
bench) want="$build $bench" ;;
*) echo "usage: deps.sh build|test|package|bench" >&2; exit 2 ;;
esac
missing=""
for p in $want; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "deps: installing:$missing"
if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
# The Debian packages may start a system Prosody, ejabberd and epmd; the
# tests and the demo run their own instances on loopback addresses and must
# not meet those on the same ports.
for svc in prosody ejabberd epmd.socket epmd; do
	$SUDO systemctl stop "$svc" 2>/dev/null || $SUDO service "$svc" stop 2>/dev/null || true
done
