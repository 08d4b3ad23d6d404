# shellcheck shell=sh
# testpki.sh: a throwaway PKI for the tests that play XMPP servers
# themselves (protocol.sh, soak.sh). Source it, then:
#   testpki_make DIR "CA NAME"
# writes DIR/ca.pem|key (CA), DIR/relay.pem|key (relay.test) and
# DIR/leaf.pem|key (a.example, b.example, *.b.example; server and client
# use), keys mode 0600. Needs certtool (gnutls-bin). Returns non-zero on
# failure, and refuses an empty or missing DIR.
testpki_make() {
	_d=$1
	[ -n "$_d" ] && [ -d "$_d" ] || return 1
	cat >"$_d/ca.tmpl" <<TMPL
cn = "$2"
serial = 1
expiration_days = 2
ca
cert_signing_key
TMPL
	certtool --generate-privkey --no-text --key-type=ecdsa --outfile "$_d/ca.key" 2>/dev/null &&
		certtool --generate-self-signed --no-text --load-privkey "$_d/ca.key" \
			--template "$_d/ca.tmpl" --outfile "$_d/ca.pem" 2>/dev/null || return 1
	testpki_cert "$_d" relay relay.test &&
		testpki_cert "$_d" leaf a.example b.example '*.b.example'
}

# testpki_cert DIR NAME DNS... — DIR/NAME.pem and DIR/NAME.key (ECDSA,
# server and client use) for the DNS names, signed by DIR's CA.
testpki_cert() {
	_d=$1 _n=$2
	shift 2
	{
		echo "cn = \"$_n\""
		for _dns in "$@"; do
			echo "dns_name = \"$_dns\""
		done
		cat <<TMPL
serial = $(od -An -tu4 -N4 /dev/urandom | tr -d ' ')
expiration_days = 2
tls_www_server
tls_www_client
signing_key
encryption_key
TMPL
	} >"$_d/$_n.tmpl"
	certtool --generate-privkey --no-text --key-type=ecdsa --outfile "$_d/$_n.key" 2>/dev/null &&
		certtool --generate-certificate --no-text --load-privkey "$_d/$_n.key" \
			--load-ca-certificate "$_d/ca.pem" --load-ca-privkey "$_d/ca.key" \
			--template "$_d/$_n.tmpl" --outfile "$_d/$_n.pem" 2>/dev/null &&
		chmod 600 "$_d/$_n.key"
}
