#!/bin/sh
# check-man.sh [BINARY]: the man pages lint clean (mandoc, warnings fail),
# every key printed by "BINARY -k" has an entry (".It Ic KEY") in
# man/xtrunkd.conf.5, and every such entry is a real key.
# BINARY defaults to build/xtrunkd; if it is missing the check fails.
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
bin=${1:-build/xtrunkd}
case $bin in /*) ;; *) bin=$(pwd)/$bin ;; esac
if [ ! -x "$bin" ]; then
	echo "check-man: $bin is not an executable; build it first (make)" >&2
	exit 1
fi
if ! command -v mandoc >/dev/null 2>&1; then
	echo "check-man: mandoc not found (apt-get install mandoc)" >&2
	exit 1
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/xt-man.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
trap 'exit 1' HUP INT TERM

fail=0
for page in "$root"/man/*.[58]; do
	[ -e "$page" ] || { echo "FAIL: no man pages in man/" >&2; exit 1; }
	rc=0
	mandoc -Tlint -W warning "$page" >"$tmp/lint" 2>&1 || rc=$?
	if [ "$rc" -ne 0 ] || [ -s "$tmp/lint" ]; then
		echo "FAIL: mandoc -Tlint $page:" >&2
		cat "$tmp/lint" >&2
		fail=1
	else
		echo "ok: lint man/$(basename "$page")"
	fi
done

conf5=$root/man/xtrunkd.conf.5
"$bin" -k >"$tmp/keys"
if [ ! -s "$tmp/keys" ]; then
	echo "FAIL: $bin -k printed no keys" >&2
	exit 1
fi
awk '$1 == ".It" && $2 == "Ic" { print $3 }' "$conf5" >"$tmp/documented"
missing=0
while IFS= read -r key; do
	if ! grep -qxF -- "$key" "$tmp/documented"; then
		echo "FAIL: key $key is not documented in man/xtrunkd.conf.5 (.It Ic $key)" >&2
		missing=1
	fi
done <"$tmp/keys"
while IFS= read -r key; do
	if ! grep -qxF -- "$key" "$tmp/keys"; then
		echo "FAIL: man/xtrunkd.conf.5 documents $key, which $bin -k does not list" >&2
		missing=1
	fi
done <"$tmp/documented"
if [ "$missing" -eq 0 ]; then
	echo "ok: all $(wc -l <"$tmp/keys" | tr -d ' ') keys documented in man/xtrunkd.conf.5"
else
	fail=1
fi
exit $fail
