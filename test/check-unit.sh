#!/bin/sh
# check-unit.sh [BINARY]: the systemd unit examples/xtrunkd.service passes
# "systemd-analyze verify" and scores at most MAX_EXPOSURE (default 2.0) in
# "systemd-analyze security --offline=true".
#
# verify checks that ExecStart= and friends are executable, so it runs on
# a copy whose /usr/sbin/xtrunkd is BINARY (default build/xtrunkd); the
# man pages named by Documentation= are checked against man/ instead of
# the installed manual (--man=no). Skips, with a message and status 0,
# only when systemd-analyze is missing (Debian package systemd).
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
bin=${1:-build/xtrunkd}
case $bin in /*) ;; *) bin=$(pwd)/$bin ;; esac
unit=$root/examples/xtrunkd.service
max=${MAX_EXPOSURE:-2.0}

if ! command -v systemd-analyze >/dev/null 2>&1; then
	echo "SKIP: systemd-analyze not found (apt-get install systemd); unit not verified"
	exit 0
fi
if [ ! -x "$bin" ]; then
	echo "check-unit: $bin is not an executable; build it first (make)" >&2
	exit 1
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/xt-unit.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
trap 'exit 1' HUP INT TERM
fail=0

sed "s|/usr/sbin/xtrunkd|$bin|g" "$unit" >"$tmp/xtrunkd.service"
if systemd-analyze verify --man=no "$tmp/xtrunkd.service" >"$tmp/verify" 2>&1 && [ ! -s "$tmp/verify" ]; then
	echo "ok: systemd-analyze verify examples/xtrunkd.service"
else
	echo "FAIL: systemd-analyze verify examples/xtrunkd.service:" >&2
	cat "$tmp/verify" >&2
	fail=1
fi

# the socket unit (optional socket activation) beside the service
cp "$(dirname "$unit")/xtrunkd.socket" "$tmp/xtrunkd.socket"
if systemd-analyze verify --man=no "$tmp/xtrunkd.socket" >"$tmp/verify" 2>&1 && [ ! -s "$tmp/verify" ]; then
	echo "ok: systemd-analyze verify examples/xtrunkd.socket"
else
	echo "FAIL: systemd-analyze verify examples/xtrunkd.socket:" >&2
	cat "$tmp/verify" >&2
	fail=1
fi

# Documentation=man:NAME(SECTION) must name pages that exist in man/.
for ref in $(sed -n 's/^Documentation=//p' "$unit"); do
	case $ref in
	man:*)
		page=${ref#man:}
		name=${page%(*}
		sect=${page#*(}
		sect=${sect%)}
		if [ -f "$root/man/$name.$sect" ]; then
			echo "ok: $ref is man/$name.$sect"
		else
			echo "FAIL: $ref: no man/$name.$sect" >&2
			fail=1
		fi
		;;
	esac
done

# The hardening the issue asks for is present, and the overall exposure.
for want in Type=notify ExecReload= User=xtrunk ProtectSystem=strict NoNewPrivileges=yes \
	PrivateTmp=yes RestrictAddressFamilies= SystemCallFilter=@system-service; do
	if grep -q "^$want" "$unit"; then :; else
		echo "FAIL: examples/xtrunkd.service has no $want line" >&2
		fail=1
	fi
done
if systemd-analyze security --offline=true --no-pager "$tmp/xtrunkd.service" >"$tmp/sec" 2>&1; then :; fi
score=$(sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p' "$tmp/sec" | head -n 1)
if [ -z "$score" ]; then
	echo "FAIL: systemd-analyze security printed no score:" >&2
	tail -n 5 "$tmp/sec" >&2
	fail=1
elif awk -v s="$score" -v m="$max" 'BEGIN { exit !(s <= m) }'; then
	echo "ok: systemd-analyze security exposure $score (at most $max)"
else
	echo "FAIL: systemd-analyze security exposure $score is above $max:" >&2
	grep '✗' "$tmp/sec" >&2 || true
	fail=1
fi
exit $fail
