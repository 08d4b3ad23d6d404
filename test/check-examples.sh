#!/bin/sh
# check-examples.sh BINARY [XTRUNKCTL]: every examples/*.conf must pass
# "BINARY -n -f", and a copy broken on purpose (an unknown key) must be
# rejected with a FILE:LINE message, so that this check can fail. With
# XTRUNKCTL, also "XTRUNKCTL check" on every example and "XTRUNKCTL route"
# on examples/xtrunkd.conf for an exact, a wildcard, a default route and
# (with the default removed) an unrouted domain.
#
# The examples name files under /etc/xtrunk/. They are materialised in a
# temporary directory (a throwaway certificate and key, a secret) and the
# paths rewritten with sed, so the real credentials-loading code runs.
set -eu

if [ $# -ne 1 ] && [ $# -ne 2 ]; then
	echo "usage: check-examples.sh BINARY [XTRUNKCTL]" >&2
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
# examples/*.conf and the topology examples examples/*/*.conf (star/,
# boundary/), copied as $tmp/NAME.conf and $tmp/DIR-NAME.conf.
examples() {
	for ex in "$root"/examples/*.conf "$root"/examples/*/*.conf; do
		[ -e "$ex" ] && echo "$ex"
	done
}
tmpname() { # examples/x.conf -> x.conf, examples/star/centre.conf -> star-centre.conf
	case ${1#"$root"/examples/} in */*) echo "$(basename "$(dirname "$1")")-$(basename "$1")" ;;
	*) basename "$1" ;; esac
}
examples | xargs cat | tr '"' '\n' | sed -n 's|^/etc/xtrunk/||p' | sort -u >"$tmp/files"
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
for ex in $(examples); do
	name=$(tmpname "$ex")
	sed "s|/etc/xtrunk/|$tmp/|g" "$ex" >"$tmp/$name"
	n=$((n + 1))
	if out=$("$bin" -n -f "$tmp/$name" 2>&1) && printf '%s\n' "$out" | grep -q "configuration OK"; then
		echo "ok: examples/${ex#"$root"/examples/}"
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

ctl=${2:-}
[ -z "$ctl" ] && exit $fail
case $ctl in /*) ;; *) ctl=$(pwd)/$ctl ;; esac
for ex in $(examples); do
	name=$(tmpname "$ex")
	if out=$("$ctl" check -f "$tmp/$name" 2>&1) && printf '%s\n' "$out" | grep -q "configuration OK"; then
		echo "ok: xtrunkctl check examples/${ex#"$root"/examples/}"
	else
		echo "FAIL: xtrunkctl check examples/${ex#"$root"/examples/}: $out" >&2
		fail=1
	fi
done
# route DOMAIN: each expected line must appear in the answer.
route_case() { # name domain want-status expected-line...
	rname=$1 dom=$2 want=$3 conf=$4
	shift 4
	rc=0
	out=$("$ctl" route -f "$conf" "$dom" 2>&1) || rc=$?
	bad=""
	[ "$rc" -eq "$want" ] || bad="status $rc, expected $want"
	for line in "$@"; do
		printf '%s\n' "$out" | grep -qF -- "$line" || bad="$bad; no line with \"$line\""
	done
	if [ -z "$bad" ]; then
		echo "ok: xtrunkctl route $rname ($dom)"
	else
		echo "FAIL: xtrunkctl route $rname ($dom): $bad; got:" >&2
		printf '%s\n' "$out" | sed 's/^/  /' >&2
		fail=1
	fi
}
conf=$tmp/xtrunkd.conf
route_case exact A.Example 0 "$conf" "route:       a.example (exact;" "peer:        leaf-a" \
	"next hop:    127.0.0.2:5269" "certificate: a.example (issued on the fly by the enclave CA"
route_case wildcard x.y.b.example. 0 "$conf" "domain:      x.y.b.example" \
	"route:       *.b.example (wildcard:" "peer:        leaf-b" "policy:"
route_case default example.org 0 "$conf" "route:       * (default:" "peer:        upstream" \
	"identity relay.upstream.example"
sed 's/domain = "\*"; peer/domain = "only.example"; peer/' "$conf" >"$tmp/nodefault.conf"
route_case unrouted example.org 1 "$tmp/nodefault.conf" "route:       none"
route_case not-a-domain "a..b" 1 "$conf" "is not a domain name"
# the boundary example carries policies: the route's, the outbound peer's
# and the inbound peers' are listed
route_case policies x.ops.a.example 0 "$tmp/$(tmpname "$root/examples/boundary.conf")" \
	"route:       *.ops.a.example (wildcard:" "policy:      route: ops-quiet" \
	"policy:      inbound from peer relay-b: from-dmz"

# leaf-config on the topology examples: each expected line must appear in
# the output (NAME CONFIG LEAF FORMAT RELAY-ADDRESSES expected-line...).
leaf_case() {
	lname=$1 conf=$2 leaf=$3 fmt=$4 addrs=$5
	shift 5
	largs=""
	for a in $addrs; do largs="$largs --relay-address $a"; done
	rc=0
	# shellcheck disable=SC2086
	out=$("$ctl" leaf-config -f "$conf" --leaf "$leaf" --format "$fmt" $largs 2>&1) || rc=$?
	bad=""
	[ "$rc" -eq 0 ] || bad="status $rc"
	for line in "$@"; do
		printf '%s\n' "$out" | grep -qxF -- "$line" || bad="$bad; no line \"$line\""
	done
	if [ -z "$bad" ]; then
		echo "ok: xtrunkctl leaf-config $lname"
	else
		echo "FAIL: xtrunkctl leaf-config $lname: $bad; got:" >&2
		printf '%s\n' "$out" | sed 's/^/  /' >&2
		fail=1
	fi
}
leaf_case star-point "$tmp/star-centre.conf" p1.star.example dnsmasq "" \
	"local=/p1.star.example/" "host-record=relay1.xtrunk.internal,10.1.0.1" \
	"srv-host=_xmpp-server._tcp.p2.star.example,relay1.xtrunk.internal,5269,0,1" \
	"address=/p3.star.example/10.1.0.1" "address=/#/10.1.0.1"
leaf_case boundary-b-two-instances "$tmp/boundary-relay-b.conf" hq.b.example bind \
	"relay-b1.lab=10.2.0.1 relay-b2.lab=10.2.0.2" \
	"_xmpp-server._tcp.hq.a.example.	300	IN	SRV	0 1 5269 relay-b1.lab." \
	"_xmpp-server._tcp.hq.a.example.	300	IN	SRV	0 1 5269 relay-b2.lab."
leaf_case boundary-a-ejabberd "$tmp/boundary-relay-a.conf" ops.a.example ejabberd 10.1.0.1 \
	"s2s_access: xtrunk_s2s" '      - "*.b.example"'
rc=0
out=$("$ctl" leaf-config -f "$tmp/boundary-relay-a.conf" --leaf hq.a.example 2>&1) || rc=$?
if [ "$rc" -eq 1 ] && printf '%s\n' "$out" | grep -q "listens on several addresses"; then
	echo "ok: xtrunkctl leaf-config refuses to guess between two listen addresses"
else
	echo "FAIL: xtrunkctl leaf-config without --relay-address on relay-a.conf: status $rc: $out" >&2
	fail=1
fi
exit $fail
