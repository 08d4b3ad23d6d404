#!/bin/sh
# check-examples.sh BINARY: every examples/*.conf must pass "BINARY -n -f",
# and a copy broken on purpose (an unknown key) must be rejected with a
# FILE:LINE message, so that this check can fail.
#
# The examples name files under /etc/xtrunk/. They are materialised in a
# temporary directory (a throwaway certificate and key, a secret) and the
# paths rewritten with sed, so the real credentials-loading code runs.
set -eu

if [ $# -ne 1 ]; then
	echo "usage: check-examples.sh BINARY" >&2
	exit 2
fi
bin=$1
root=$(cd "$(dirname "$0")/.." && pwd)
case $bin in /*) ;; *) bin=$(pwd)/$bin ;; esac
if [ ! -x "$bin" ]; then
	echo "check-examples: $bin is not an executable; build it first" >&2
	exit 1
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/xt-examples.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
trap 'exit 1' HUP INT TERM

# A self-signed certificate and its key, with certtool (gnutls-bin) or openssl.
# It is also a CA certificate, so it can stand in for an enclave CA.
if command -v certtool >/dev/null 2>&1; then
	cat >"$tmp/cert.tmpl" <<-TMPL
	cn = "relay.example"
	dns_name = "relay.example"
	expiration_days = 2
	tls_www_server
	signing_key
	ca
	cert_signing_key
	TMPL
	certtool --generate-privkey --key-type=ecdsa --outfile "$tmp/key.gen" >"$tmp/gen.log" 2>&1
	certtool --generate-self-signed --load-privkey "$tmp/key.gen" --template "$tmp/cert.tmpl" \
		--outfile "$tmp/cert.gen" >>"$tmp/gen.log" 2>&1
elif command -v openssl >/dev/null 2>&1; then
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
		-subj /CN=relay.example -addext subjectAltName=DNS:relay.example \
		-addext basicConstraints=critical,CA:TRUE \
		-keyout "$tmp/key.gen" -out "$tmp/cert.gen" >"$tmp/gen.log" 2>&1
else
	echo "check-examples: need certtool (gnutls-bin) or openssl to make a test certificate" >&2
	exit 1
fi

# Every /etc/xtrunk/ file an example names: *.key gets the key, *.secret a
# secret, anything else (certificates, CA files) the certificate.
cat "$root"/examples/*.conf | tr '"' '\n' | sed -n 's|^/etc/xtrunk/||p' | sort -u >"$tmp/files"
while IFS= read -r f; do
	case $f in
	*/*) echo "check-examples: subdirectories under /etc/xtrunk are not supported: $f" >&2; exit 1 ;;
	*.key) cp "$tmp/key.gen" "$tmp/$f" ;;
	*.secret) echo "check-examples-secret-0123456789" >"$tmp/$f" ;;
	*) cp "$tmp/cert.gen" "$tmp/$f" ;;
	esac
	chmod 600 "$tmp/$f"
done <"$tmp/files"

fail=0
n=0
for ex in "$root"/examples/*.conf; do
	name=$(basename "$ex")
	sed "s|/etc/xtrunk/|$tmp/|g" "$ex" >"$tmp/$name"
	n=$((n + 1))
	if out=$("$bin" -n -f "$tmp/$name" 2>&1) && printf '%s\n' "$out" | grep -q "configuration OK"; then
		echo "ok: examples/$name"
	else
		echo "FAIL: examples/$name:" >&2
		printf '%s\n' "$out" | sed "s|$tmp/|examples/|g" >&2
		fail=1
	fi
done
if [ "$n" -eq 0 ]; then
	echo "FAIL: no examples/*.conf found" >&2
	exit 1
fi

# The broken copy: an unknown key on line 1 of a good file.
{
	echo 'listn = ( { address = "127.0.0.1"; } );'
	sed "s|/etc/xtrunk/|$tmp/|g" "$root/examples/xtrunkd.conf"
} >"$tmp/broken.conf"
rc=0
out=$("$bin" -n -f "$tmp/broken.conf" 2>&1) || rc=$?
if [ "$rc" -eq 1 ] && printf '%s\n' "$out" | grep -q "broken.conf:1: .*unknown key \"listn\""; then
	echo "ok: broken copy rejected: $(printf '%s\n' "$out" | sed "s|$tmp/||g" | head -n 1)"
else
	echo "FAIL: broken copy (unknown key on line 1) was not rejected with FILE:1: and status 1" \
		"(status $rc):" >&2
	printf '%s\n' "$out" >&2
	fail=1
fi
exit $fail
