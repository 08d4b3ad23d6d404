#!/bin/sh
# package.sh: build the Debian package, install it on this machine, start
# the installed daemon, run the demo with the installed binary, remove the
# package. Needs root, debhelper and dpkg-dev (scripts/deps.sh package).
# Not part of make check: it installs and removes a package.
#
#   flock /tmp/xtrunk-lab.lock sh test/package.sh
#
# (the lock: the demo and the default configuration use loopback addresses
# and ports the integration tests use too)
# Steps, each reported "ok STEP" or "FAIL STEP: why":
#   build    dpkg-buildpackage -b -us -uc on a copy of the tree (git ls-files)
#   contents the .deb holds the binaries, man pages, unit, conffile
#   install  dpkg -i; the postinst made the xtrunk user, secret, certificate
#   check    xtrunkctl check of the installed /etc/xtrunk/xtrunkd.conf
#   start    the installed unit started by systemd if it is PID 1, else the
#            installed binary started by hand as user xtrunk with the
#            installed configuration; READY=1 seen, xtrunkctl status and the
#            metrics answer
#   demo     test/lab/demo.sh /usr/sbin/xtrunkd (two Prosody servers, one
#            message through the installed relay)
#   remove   dpkg --purge; nothing of the package left, and the xtrunk
#            user removed again if this script's install created it
set -u

root=$(cd "$(dirname "$0")/.." && pwd)
passed=0
failed=0
ok() { echo "ok $1"; passed=$((passed + 1)); }
fail() { echo "FAIL $1: $2"; failed=$((failed + 1)); }
pid=""
work=$(mktemp -d /tmp/xtrunk-pkg.XXXXXX) || exit 1
installed=0
user_existed=0
getent passwd xtrunk >/dev/null && user_existed=1

cleanup() {
	if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
		kill -TERM "$pid" 2>/dev/null
		sleep 1
		kill -KILL "$pid" 2>/dev/null
	fi
	if [ "$installed" = 1 ]; then
		dpkg --purge xtrunk >"$work/purge.log" 2>&1 || cat "$work/purge.log"
	fi
	if [ "$user_existed" = 0 ] && getent passwd xtrunk >/dev/null; then
		deluser --system --quiet xtrunk >/dev/null 2>&1 || userdel xtrunk
		getent group xtrunk >/dev/null && groupdel xtrunk 2>/dev/null
	fi
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

if [ "$(id -u)" -ne 0 ]; then
	echo "package.sh: needs root (dpkg -i)" >&2
	exit 1
fi
sh "$root/scripts/deps.sh" package || exit 1

# ---- build
mkdir -p "$work/src"
(cd "$root" && git ls-files -co --exclude-standard -z | xargs -0 tar cf - --no-recursion) |
	tar xf - -C "$work/src"
if (cd "$work/src" && dpkg-buildpackage -b -us -uc) >"$work/build.log" 2>&1; then
	deb=$(ls "$work"/xtrunk_*.deb 2>/dev/null | head -n 1)
	ok "build ($(basename "$deb"))"
else
	fail build "dpkg-buildpackage failed: $(tail -n 15 "$work/build.log")"
	echo "$passed passed, $failed failed"
	exit 1
fi

# ---- contents
dpkg-deb -c "$deb" | awk '{ print $6 }' >"$work/contents"
missing=""
for f in ./usr/sbin/xtrunkd ./usr/sbin/xtrunkctl ./usr/share/man/man8/xtrunkd.8.gz \
	./usr/share/man/man8/xtrunkctl.8.gz ./usr/share/man/man5/xtrunkd.conf.5.gz \
	./lib/systemd/system/xtrunkd.service ./etc/xtrunk/xtrunkd.conf \
	./usr/share/doc/xtrunk/examples/xtrunkd.conf ./usr/share/doc/xtrunk/copyright; do
	grep -qxF "$f" "$work/contents" || missing="$missing $f"
done
dpkg-deb -e "$deb" "$work/ctrl"
grep -qx /etc/xtrunk/xtrunkd.conf "$work/ctrl/conffiles" 2>/dev/null || missing="$missing conffile"
grep -q 'deb-systemd-helper.*enable' "$work/ctrl/postinst" || missing="$missing unit-enable"
if [ -z "$missing" ]; then ok contents; else fail contents "missing:$missing"; fi

# ---- install
if dpkg -i "$deb" >"$work/install.log" 2>&1; then
	installed=1
	why=""
	getent passwd xtrunk >/dev/null || why="$why no xtrunk user;"
	for f in dialback.secret relay.pem relay.key ca/ca.pem; do
		[ -e "/etc/xtrunk/$f" ] || why="$why no /etc/xtrunk/$f;"
	done
	[ "$(stat -c %U:%a /etc/xtrunk/relay.key 2>/dev/null)" = xtrunk:600 ] || why="$why relay.key not xtrunk 0600;"
	if [ -z "$why" ]; then ok install; else fail install "$why"; fi
else
	fail install "dpkg -i: $(tail -n 10 "$work/install.log")"
	echo "$passed passed, $failed failed"
	exit 1
fi

# ---- check
if out=$(runuser -u xtrunk -- /usr/sbin/xtrunkctl check 2>&1); then
	ok "check ($out)"
else
	fail check "$out"
fi

# ---- start
if [ "$(cat /proc/1/comm 2>/dev/null)" = systemd ]; then
	how="systemctl start xtrunkd"
	systemctl start xtrunkd && systemctl is-active --quiet xtrunkd && started=1 || started=0
else
	how="by hand: runuser -u xtrunk -- /usr/sbin/xtrunkd -f /etc/xtrunk/xtrunkd.conf (PID 1 is $(cat /proc/1/comm), not systemd)"
	install -d -o xtrunk -g xtrunk -m 0750 /run/xtrunk
	# the notify socket systemd would pass, writable by the xtrunk user
	mkdir "$work/n"
	chmod 711 "$work" "$work/n"
	python3 -c 'import os,socket,sys; s=socket.socket(socket.AF_UNIX,socket.SOCK_DGRAM); s.bind(sys.argv[1]); os.chmod(sys.argv[1],0o666); s.settimeout(10); print(s.recv(4096).decode())' \
		"$work/n/notify" >"$work/notify.out" 2>&1 &
	npid=$!
	sleep 0.5
	NOTIFY_SOCKET=$work/n/notify runuser -u xtrunk -- /usr/sbin/xtrunkd -d \
		-f /etc/xtrunk/xtrunkd.conf 2>"$work/daemon.log" &
	pid=$!
	wait "$npid"
	grep -q '^READY=1' "$work/notify.out" && started=1 || started=0
fi
if [ "$started" = 1 ] && st=$(/usr/sbin/xtrunkctl status 2>&1) &&
	curl -sf http://127.0.0.1:9269/metrics | grep -q '^xtrunk_forward_latency_seconds_count'; then
	ok "start ($how; READY=1 received; xtrunkctl status: $(echo "$st" | head -n 1); metrics answer)"
	sed 's/^/#   /' "$work/daemon.log" 2>/dev/null
else
	fail start "$how: started=$started status=${st:-?} notify=$(cat "$work/notify.out" 2>/dev/null); log: $(tail -n 5 "$work/daemon.log" 2>/dev/null)"
fi
if [ -n "$pid" ]; then
	kill -TERM "$pid"
	wait "$pid" 2>/dev/null
	pid=""
	rm -rf /run/xtrunk
elif [ "$(cat /proc/1/comm 2>/dev/null)" = systemd ]; then
	systemctl stop xtrunkd
fi

# ---- demo with the installed binary
if sh "$root/test/lab/demo.sh" /usr/sbin/xtrunkd >"$work/demo.log" 2>&1; then
	ok "demo ($(grep '^Result:' "$work/demo.log"))"
else
	fail demo "$(tail -n 15 "$work/demo.log")"
fi
cp "$work/demo.log" /tmp/xtrunk-package-demo.log

# ---- remove
if dpkg --purge xtrunk >"$work/purge.log" 2>&1; then
	installed=0
	left=""
	for f in /usr/sbin/xtrunkd /usr/sbin/xtrunkctl /lib/systemd/system/xtrunkd.service /etc/xtrunk; do
		[ -e "$f" ] && left="$left $f"
	done
	if [ -z "$left" ] && ! dpkg -s xtrunk >/dev/null 2>&1; then ok remove; else fail remove "left:$left"; fi
else
	fail remove "dpkg --purge: $(tail -n 5 "$work/purge.log")"
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
