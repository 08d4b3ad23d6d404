# shellcheck shell=sh
# xtrunk test lab: real Prosody leaves around the relay, on loopback only.
#
# Source this file from a POSIX sh script (dash is fine), after setting
# LAB_LIBDIR to the directory holding it:
#
#   LAB_LIBDIR=$(cd "$(dirname "$0")/../lab" && pwd)
#   . "$LAB_LIBDIR/lab.sh"
#   trap lab_stop EXIT; trap 'exit 130' INT TERM HUP
#   lab_setup "$(mktemp -d)" relay        # or: direct, secure
#   lab_start_relay ./build/xtrunkd       # relay mode only
#   lab_start_prosody
#   lab_xclient roundtrip --from alice@a.example --to bob@b.example
#   lab_stop
#
# Topology (fixed, agreed with the relay):
#   relay xtrunkd      127.0.0.10:5269
#   Prosody A          a.example  c2s 127.0.0.2:5222  s2s 127.0.0.2:5269
#   Prosody B          b.example  c2s 127.0.0.3:5222  s2s 127.0.0.3:5269
#   c.example          relay routes it to 127.0.0.4:5269 (nothing listens)
#   DNS for A          dnsmasq 127.0.0.12:$LAB_DNS_PORT  (A's view only)
#   DNS for B          dnsmasq 127.0.0.13:$LAB_DNS_PORT  (B's view only)
#
# DNS: each Prosody gets its own libunbound config from its Prosody config
# (unbound = { resolvconf = false; hoststxt = false; forward = "ADDR@PORT" }),
# pointing at its own dnsmasq, which is authoritative (--local) for
# "example" and "lab": everything not configured is NXDOMAIN at once, so
# the _xmpps-server SRV lookup that Prosody makes first fails in ~1 ms.
#   relay mode:  A: _xmpp-server._tcp.b.example SRV relay.lab:5269,
#                   b.example and c.example A 127.0.0.10, relay.lab A 127.0.0.10
#                B: the same for a.example and c.example.
#   direct mode: A: _xmpp-server._tcp.b.example SRV leaf-b.lab:5269,
#                   b.example A 127.0.0.3, c.example A 127.0.0.4
#                B: a.example A 127.0.0.2, c.example A 127.0.0.4.
#   secure mode: DNS as in relay mode.
# The machine's /etc/resolv.conf and /etc/hosts are never read or changed.
#
# Secure mode (lab_setup DIR secure): certificates only, from an enclave CA.
#   $LAB_DIR/enclave/ca.pem, ca.key  made by `xtrunkctl ca-create`
#                                    ($LAB_XTRUNKCTL); ca.pem is copied to
#                                    $LAB_DIR/ca.pem (the leaves' cafile,
#                                    the relay's tls.trust, the client's --ca)
#   $LAB_DIR/{a,b}/DOMAIN.pem/.key   the leaves' certificates (xtrunkctl issue)
#   $LAB_DIR/{a,b}/s2s-expired.*     same name, from the same CA, expired
#   $LAB_DIR/{a,b}/s2s-wrong-name.*  from the same CA, for wrong.example
#   Prosody: ssl = the leaf's own certificate + cafile = the enclave CA (c2s
#   always uses it); s2s_ssl = the certificate chosen by LAB_S2S_CERT_A/_B
#   (good|expired|wrong-name); s2s_secure_auth = LAB_SECURE_AUTH_A/_B
#   (default true: no dialback accepted, the peer's certificate must verify).
#   Relay: tls.ca_certificate/ca_key = the enclave CA (certificates issued
#   on the fly per SNI / stream 'from'), tls.trust = the enclave CA, no
#   tls.certificate; peers leaf-a/leaf-b with auth = LAB_AUTH_A/_B (default
#   "certificate").
#   Change those variables, then lab_secure_configure rewrites the Prosody
#   and relay configs; lab_restart_prosody LEAF / lab_restart_relay BINARY
#   apply them (accounts, DNS and the other processes stay).
#
# Every process started here is recorded by PID (LAB_PIDS and $LAB_DIR/pids)
# and lab_stop ends exactly those: TERM, bounded wait, then KILL.

: "${LAB_LIBDIR:=}"
if [ -z "$LAB_LIBDIR" ] && [ -n "${BASH_SOURCE:-}" ]; then
	# shellcheck disable=SC3028,SC3054
	LAB_LIBDIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
fi
: "${LAB_DNS_PORT:=5300}"
: "${LAB_LOGLEVEL:=debug}"      # Prosody log level: debug|info|warn
: "${LAB_PYTHON:=/usr/bin/python3}"
: "${LAB_PW:=lab-pw-1}"
# 1: the leaves trust the lab CA (cafile), so leaf-to-leaf s2s in direct mode
# authenticates with certificates (SASL EXTERNAL); 0: they do not, and
# direct mode uses dialback like the relay does. The relay's certificate
# (relay.lab) never matches a leaf domain, so relay mode is dialback either way.
: "${LAB_TRUST_CA:=1}"
# Extra relay settings, "@LAB@" replaced by the lab directory: inside the
# tls group (e.g. LAB_RELAY_TLS_EXTRA='ca = "@LAB@/ca.pem";') and at the
# top level of relay.conf (LAB_RELAY_EXTRA). The lab CA is $LAB_DIR/ca.pem.
: "${LAB_RELAY_TLS_EXTRA:=}"
: "${LAB_RELAY_EXTRA:=}"
# Secure mode only (see above).
: "${LAB_XTRUNKCTL:=}"          # default: $LAB_LIBDIR/../../build/xtrunkctl
: "${LAB_AUTH_A:=certificate}"  # relay peers.[].auth of leaf-a: certificate|any
: "${LAB_AUTH_B:=certificate}"
: "${LAB_SECURE_AUTH_A:=true}"  # Prosody s2s_secure_auth of leaf a: true|false
: "${LAB_SECURE_AUTH_B:=true}"
: "${LAB_S2S_CERT_A:=good}"     # certificate leaf a presents on s2s: good|expired|wrong-name
: "${LAB_S2S_CERT_B:=good}"
LAB_RELAY_ADDR=127.0.0.10
LAB_A_ADDR=127.0.0.2
LAB_B_ADDR=127.0.0.3
LAB_C_ADDR=127.0.0.4
LAB_A_DNS=127.0.0.12
LAB_B_DNS=127.0.0.13
LAB_PIDS=""
LAB_DIR=""
LAB_MODE=""
LAB_DNS_STARTED=""

lab_log() { printf 'lab: %s\n' "$*" >&2; }
lab_die() { printf 'lab: error: %s\n' "$*" >&2; return 1; }

# Milliseconds since the epoch (GNU date).
lab_now_ms() { date +%s%3N; }

# Record a PID we started: lab_track NAME PID
lab_track() {
	LAB_PIDS="$LAB_PIDS $1:$2"
	[ -n "$LAB_DIR" ] && printf '%s %s\n' "$1" "$2" >>"$LAB_DIR/pids"
	return 0
}

lab_pid_of() { # NAME -> PID (last one tracked under that name)
	_lp=""
	for _e in $LAB_PIDS; do
		[ "${_e%%:*}" = "$1" ] && _lp=${_e#*:}
	done
	[ -n "$_lp" ] && echo "$_lp"
}

lab_alive() { [ -n "$1" ] && kill -0 "$1" 2>/dev/null; }

# lab_port_free ADDR PORT [tcp|udp] — fails, saying so, if something already
# listens there (another lab on the same fixed addresses, or a leftover):
# lab_wait_port would otherwise take that process for ours.
lab_port_free() {
	if [ "${3:-tcp}" = udp ]; then _pf=$(ss -Hlunp "src $1:$2" 2>/dev/null)
	else _pf=$(ss -Hltnp "src $1:$2" 2>/dev/null); fi
	[ -z "$_pf" ] && return 0
	lab_die "$1:$2 is already in use (another lab running?): $(printf '%s' "$_pf" | sed -n 's/.*users:(\(.*\))/\1/p' | head -n 1)"
}

# lab_wait_port ADDR PORT TIMEOUT_SECONDS [PID]
# Waits until something LISTENs on ADDR:PORT (checked with ss, no probe
# connection is made). Fails at once if PID is given and that process died.
lab_wait_port() {
	_wa=$1 _wp=$2 _wt=$3 _wpid=${4:-}
	_wend=$(($(date +%s) + _wt))
	while :; do
		if ss -Hltn "src $_wa:$_wp" 2>/dev/null | grep -q .; then
			return 0
		fi
		if [ -n "$_wpid" ] && ! lab_alive "$_wpid"; then
			lab_log "process $_wpid died while waiting for $_wa:$_wp"
			return 1
		fi
		if [ "$(date +%s)" -ge "$_wend" ]; then
			lab_log "timeout (${_wt}s) waiting for $_wa:$_wp"
			return 1
		fi
		sleep 0.05
	done
}

# lab_wait_free [SECONDS] — the lab's addresses are fixed, so another lab
# run on this machine would answer in place of ours: wait (bounded, default
# 60 s, LAB_BUSY_WAIT) until none of them is in use. Fails naming the first
# busy address.
lab_wait_free() {
	_fend=$(($(date +%s) + ${1:-${LAB_BUSY_WAIT:-60}}))
	while :; do
		_busy=""
		for _s in "t $LAB_RELAY_ADDR:5269" "t $LAB_A_ADDR:5222" "t $LAB_A_ADDR:5269" \
			"t $LAB_B_ADDR:5222" "t $LAB_B_ADDR:5269" \
			"u $LAB_A_DNS:$LAB_DNS_PORT" "u $LAB_B_DNS:$LAB_DNS_PORT"; do
			if ss -Hl"${_s%% *}"n "src ${_s#* }" 2>/dev/null | grep -q .; then
				_busy=${_s#* }
				break
			fi
		done
		[ -z "$_busy" ] && return 0
		if [ "$(date +%s)" -ge "$_fend" ]; then
			lab_die "$_busy is still in use (another lab running?)"
			return 1
		fi
		sleep 1
	done
}

# ---------------------------------------------------------------- PKI

_lab_cert() { # NAME CN DNSNAME OUTDIR -> OUTDIR/NAME.key OUTDIR/NAME.pem
	cat >"$LAB_DIR/pki/$1.tmpl" <<EOF
cn = "$2"
organization = "xtrunk lab"
dns_name = "$3"
serial = $(od -An -tu4 -N4 /dev/urandom | tr -d ' ')
expiration_days = 3
tls_www_server
tls_www_client
signing_key
encryption_key
EOF
	certtool --generate-privkey --no-text --key-type=rsa --bits=2048 \
		--outfile "$4/$1.key" 2>/dev/null &&
	certtool --generate-certificate --no-text --load-privkey "$4/$1.key" \
		--load-ca-certificate "$LAB_DIR/ca.pem" \
		--load-ca-privkey "$LAB_DIR/pki/ca.key" \
		--template "$LAB_DIR/pki/$1.tmpl" --outfile "$4/$1.pem" 2>/dev/null
}

lab_make_pki() {
	command -v certtool >/dev/null || { lab_die "certtool missing (apt-get install gnutls-bin)"; return 1; }
	mkdir -p "$LAB_DIR/pki" && chmod 700 "$LAB_DIR/pki"
	cat >"$LAB_DIR/pki/ca.tmpl" <<EOF
cn = "xtrunk lab CA"
organization = "xtrunk lab"
serial = 1
expiration_days = 3
ca
cert_signing_key
crl_signing_key
EOF
	certtool --generate-privkey --no-text --key-type=rsa --bits=2048 \
		--outfile "$LAB_DIR/pki/ca.key" 2>/dev/null &&
	certtool --generate-self-signed --no-text --load-privkey "$LAB_DIR/pki/ca.key" \
		--template "$LAB_DIR/pki/ca.tmpl" --outfile "$LAB_DIR/ca.pem" 2>/dev/null ||
		{ lab_die "CA generation failed"; return 1; }
	_lab_cert a.example a.example a.example "$LAB_DIR/a" &&
	_lab_cert b.example b.example b.example "$LAB_DIR/b" &&
	_lab_cert relay relay.lab relay.lab "$LAB_DIR" ||
		{ lab_die "certificate generation failed"; return 1; }
	chmod 600 "$LAB_DIR/relay.key" "$LAB_DIR/a/a.example.key" "$LAB_DIR/b/b.example.key"
	chmod 644 "$LAB_DIR/ca.pem"
}

# Secure mode: the enclave CA and the leaves' certificates.
_lab_xtrunkctl() {
	_x=${LAB_XTRUNKCTL:-}
	if [ -z "$_x" ] && [ -n "$LAB_LIBDIR" ]; then _x=$LAB_LIBDIR/../../build/xtrunkctl; fi
	if [ -z "$_x" ] || [ ! -f "$_x" ] || [ ! -x "$_x" ]; then
		lab_die "xtrunkctl '${_x}' missing (make all, or set LAB_XTRUNKCTL)"
		return 1
	fi
	echo "$_x"
}

# _lab_enclave_bad_cert LEAF KIND(expired|wrong-name) DOMAIN: a certificate
# from the enclave CA that must not authenticate DOMAIN, made with certtool
# (ECDSA P-256, serverAuth + clientAuth like xtrunkctl's), written to
# $LAB_DIR/LEAF/s2s-KIND.pem and .key.
_lab_enclave_bad_cert() {
	_o="$LAB_DIR/$1/s2s-$2"
	case "$2" in
	expired)
		# within the CA's validity (it starts 5 min ago), over 2 min ago
		_n=$3
		_dates="activation_date = \"$(date -u -d '-4 min' '+%Y-%m-%d %H:%M:%S')\"
expiration_date = \"$(date -u -d '-2 min' '+%Y-%m-%d %H:%M:%S')\"" ;;
	wrong-name)
		_n=wrong.example
		_dates="expiration_days = 3" ;;
	*) lab_die "unknown certificate kind $2"; return 1 ;;
	esac
	cat >"$LAB_DIR/pki/$1-$2.tmpl" <<EOF
cn = "$_n"
organization = "xtrunk lab"
dns_name = "$_n"
serial = $(od -An -tu4 -N4 /dev/urandom | tr -d ' ')
$_dates
tls_www_server
tls_www_client
signing_key
EOF
	certtool --generate-privkey --no-text --key-type=ecdsa --curve=secp256r1 \
		--outfile "$_o.key" 2>/dev/null &&
	TZ=UTC certtool --generate-certificate --no-text --load-privkey "$_o.key" \
		--load-ca-certificate "$LAB_DIR/enclave/ca.pem" \
		--load-ca-privkey "$LAB_DIR/enclave/ca.key" \
		--template "$LAB_DIR/pki/$1-$2.tmpl" --outfile "$_o.pem" 2>/dev/null &&
	chmod 600 "$_o.key"
}

lab_make_enclave_pki() {
	command -v certtool >/dev/null || { lab_die "certtool missing (apt-get install gnutls-bin)"; return 1; }
	_x=$(_lab_xtrunkctl) || return 1
	mkdir -p "$LAB_DIR/pki" && chmod 700 "$LAB_DIR/pki"
	rm -rf "$LAB_DIR/enclave"   # xtrunkctl never overwrites
	if ! "$_x" ca-create -o "$LAB_DIR/enclave" -n "xtrunk lab enclave CA" -d 3 \
		>"$LAB_DIR/pki/xtrunkctl.log" 2>&1; then
		lab_die "xtrunkctl ca-create failed:"; cat "$LAB_DIR/pki/xtrunkctl.log" >&2; return 1
	fi
	chmod 700 "$LAB_DIR/enclave"
	cp "$LAB_DIR/enclave/ca.pem" "$LAB_DIR/ca.pem" && chmod 644 "$LAB_DIR/ca.pem"
	for _l in a b; do
		rm -f "$LAB_DIR/$_l/$_l.example.pem" "$LAB_DIR/$_l/$_l.example.key"
		if ! "$_x" issue -c "$LAB_DIR/enclave/ca.pem" -k "$LAB_DIR/enclave/ca.key" \
			-o "$LAB_DIR/$_l" -d 3 "$_l.example" >>"$LAB_DIR/pki/xtrunkctl.log" 2>&1; then
			lab_die "xtrunkctl issue $_l.example failed:"; tail -n 3 "$LAB_DIR/pki/xtrunkctl.log" >&2; return 1
		fi
		if ! _lab_enclave_bad_cert "$_l" expired "$_l.example" ||
			! _lab_enclave_bad_cert "$_l" wrong-name "$_l.example"; then
			lab_die "certtool: the bad certificates for $_l failed"; return 1
		fi
	done
}

# ---------------------------------------------------------------- DNS

# _lab_dns_conf LEAF(a|b) OWN_DOMAIN OTHER_DOMAIN LISTEN_ADDR OWN_ADDR OTHER_ADDR
_lab_dns_conf() {
	_f="$LAB_DIR/dns-$1.conf"
	{
		echo "# dnsmasq for Prosody $1 ($2), mode $LAB_MODE; generated by lab.sh"
		echo "keep-in-foreground"
		echo "no-resolv"
		echo "no-hosts"
		echo "no-poll"
		echo "bind-interfaces"
		echo "listen-address=$4"
		echo "port=$LAB_DNS_PORT"
		echo "pid-file="
		echo "log-queries"
		echo "log-facility=$LAB_DIR/dns-$1.log"
		echo "local=/example/"
		echo "local=/lab/"
		echo "host-record=relay.lab,$LAB_RELAY_ADDR"
		echo "host-record=leaf-a.lab,$LAB_A_ADDR"
		echo "host-record=leaf-b.lab,$LAB_B_ADDR"
		echo "host-record=$2,$5"
		if [ "$LAB_MODE" != direct ]; then
			echo "host-record=$3,$LAB_RELAY_ADDR"
			echo "srv-host=_xmpp-server._tcp.$3,relay.lab,5269,0,1"
			echo "host-record=c.example,$LAB_RELAY_ADDR"
			echo "srv-host=_xmpp-server._tcp.c.example,relay.lab,5269,0,1"
		else
			echo "host-record=$3,$6"
			echo "srv-host=_xmpp-server._tcp.$3,leaf-${3%%.*}.lab,5269,0,1"
			echo "host-record=c.example,$LAB_C_ADDR"
		fi
	} >"$_f"
}

lab_start_dns() {
	[ -n "$LAB_DNS_STARTED" ] && return 0
	command -v dnsmasq >/dev/null || { lab_die "dnsmasq missing (apt-get install dnsmasq-base)"; return 1; }
	for _l in a b; do
		[ "$_l" = a ] && _addr=$LAB_A_DNS || _addr=$LAB_B_DNS
		lab_port_free "$_addr" "$LAB_DNS_PORT" udp || return 1
		dnsmasq --conf-file="$LAB_DIR/dns-$_l.conf" >"$LAB_DIR/dns-$_l.out" 2>&1 &
		lab_track "dns-$_l" $!
		lab_wait_port_udp "$_addr" "$LAB_DNS_PORT" 5 "$(lab_pid_of "dns-$_l")" ||
			{ lab_die "dnsmasq for $_l did not start:"; cat "$LAB_DIR/dns-$_l.out" >&2; return 1; }
	done
	LAB_DNS_STARTED=1
}

lab_wait_port_udp() { # ADDR PORT TIMEOUT [PID]
	_wend=$(($(date +%s) + $3))
	while :; do
		ss -Hlun "src $1:$2" 2>/dev/null | grep -q . && return 0
		if [ -n "${4:-}" ] && ! lab_alive "$4"; then return 1; fi
		[ "$(date +%s)" -ge "$_wend" ] && return 1
		sleep 0.05
	done
}

# ---------------------------------------------------------------- Prosody

# _lab_prosody_conf LEAF DOMAIN ADDR DNSADDR
_lab_prosody_conf() {
	_d="$LAB_DIR/$1"
	_secure=false
	_cafile=$([ "$LAB_TRUST_CA" = 1 ] && echo "cafile = \"$LAB_DIR/ca.pem\";" || echo "-- lab CA not trusted (LAB_TRUST_CA=0)")
	_s2s_ssl=""
	if [ "$LAB_MODE" = secure ]; then
		if [ "$1" = a ]; then _secure=$LAB_SECURE_AUTH_A _kind=$LAB_S2S_CERT_A
		else _secure=$LAB_SECURE_AUTH_B _kind=$LAB_S2S_CERT_B; fi
		_cafile="cafile = \"$LAB_DIR/ca.pem\";"
		if [ "$_kind" = good ]; then _cert=$_d/$2; else _cert=$_d/s2s-$_kind; fi
		_s2s_ssl="
	-- Server-to-server: the certificate chosen by LAB_S2S_CERT_${1} ($_kind).
	s2s_ssl = {
		certificate = \"$_cert.pem\";
		key = \"$_cert.key\";
		$_cafile
	}"
	fi
	cat >"$_d/prosody.cfg.lua" <<EOF
-- Prosody $1 ($2) for the xtrunk lab, mode $LAB_MODE; generated by lab.sh
pidfile = "$_d/prosody.pid"
data_path = "$_d/data"
log = { $LAB_LOGLEVEL = "$_d/prosody.log" }
certificates = "$_d"  -- (explicit ssl below; this only silences a missing-directory error)

-- Only this leaf's loopback address; no IPv6 (the lab is 127.0.0.0/8 only).
interfaces = { "$3" }
c2s_ports = { 5222 }
s2s_ports = { 5269 }
c2s_direct_tls_ports = { }
s2s_direct_tls_ports = { }
use_ipv6 = false

-- Prosody 0.12.3's net.server_epoll knob for TCP_NODELAY is "nagle = false"
-- (there is no tcp_nodelay key); it removes ~40 ms per delivered stanza.
network_settings = { nagle = false; shutdown_deadline = 2 }

-- Own resolver (lua-unbound): our dnsmasq only, never /etc/resolv.conf or
-- /etc/hosts.
unbound = { resolvconf = false; hoststxt = false; forward = "$4@$LAB_DNS_PORT" }

modules_enabled = { "roster"; "saslauth"; "tls"; "dialback"; "disco"; "ping"; "posix" }
-- No mod_limits: no s2s/c2s rate limits.
modules_disabled = { "limits" }

authentication = "internal_hashed"
storage = "internal"

c2s_require_encryption = true
allow_registration = false
$(if [ "$LAB_MODE" = secure ]; then
	echo "-- Secure mode: every s2s peer (the relay) must present a certificate from"
	echo "-- the enclave CA for its domain; with s2s_secure_auth = true dialback is"
	echo "-- never accepted (LAB_SECURE_AUTH_${1})."
else
	echo "-- The relay authenticates with dialback and presents a certificate for"
	echo "-- relay.lab, not for the domains it carries."
fi)
s2s_require_encryption = true
s2s_secure_auth = $_secure
s2s_timeout = 30

VirtualHost "$2"
	ssl = {
		certificate = "$_d/$2.pem";
		key = "$_d/$2.key";
		$_cafile
	}$_s2s_ssl
EOF
}

lab_register() { # LEAF USER DOMAIN PASSWORD
	timeout -k 2 20 runuser -u prosody -- prosodyctl --config "$LAB_DIR/$1/prosody.cfg.lua" \
		register "$2" "$3" "$4" >>"$LAB_DIR/$1/prosodyctl.log" 2>&1 ||
		{ lab_die "prosodyctl register $2@$3 failed:"; tail -5 "$LAB_DIR/$1/prosodyctl.log" >&2; return 1; }
}

# ---------------------------------------------------------------- relay

_lab_relay_conf() {
	_secret=$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')
	_auth_a="" _auth_b=""
	if [ "$LAB_MODE" = secure ]; then
		# enclave CA: certificates issued on the fly; no tls.certificate
		_tls="ca_certificate = \"$LAB_DIR/enclave/ca.pem\"; ca_key = \"$LAB_DIR/enclave/ca.key\"; trust = \"$LAB_DIR/ca.pem\";"
		_auth_a=" auth = \"$LAB_AUTH_A\";" _auth_b=" auth = \"$LAB_AUTH_B\";"
	else
		_tls="certificate = \"$LAB_DIR/relay.pem\"; key = \"$LAB_DIR/relay.key\";"
	fi
	cat >"$LAB_DIR/relay.conf" <<EOF
# xtrunkd for the xtrunk lab ($LAB_MODE mode); generated by test/lab/lab.sh
listen = ( { address = "$LAB_RELAY_ADDR"; port = 5269; } );
dialback_secret = "$_secret";
tls = { $_tls inbound = "required";${LAB_RELAY_TLS_EXTRA:+ $(echo "$LAB_RELAY_TLS_EXTRA" | sed "s|@LAB@|$LAB_DIR|g")} };
limits = { connect_timeout = 3; handshake_timeout = 10; };
peers = (
  { name = "leaf-a"; host = "$LAB_A_ADDR"; port = 5269; tls = "required";$_auth_a },
  { name = "leaf-b"; host = "$LAB_B_ADDR"; port = 5269; tls = "required";$_auth_b },
  { name = "down";   host = "$LAB_C_ADDR"; port = 5269; tls = "required"; }
);
routes = (
  { domain = "a.example"; peer = "leaf-a"; },
  { domain = "b.example"; peer = "leaf-b"; },
  { domain = "c.example"; peer = "down"; }
);
EOF
	if [ -n "${LAB_RELAY_EXTRA:-}" ]; then
		echo "$LAB_RELAY_EXTRA" | sed "s|@LAB@|$LAB_DIR|g" >>"$LAB_DIR/relay.conf"
	fi
	chmod 600 "$LAB_DIR/relay.conf"
}

# ---------------------------------------------------------------- API

# lab_setup DIR [relay|direct|secure]
# Creates the PKI, the DNS and Prosody configs and the accounts
# alice@a.example and bob@b.example (password $LAB_PW). Starts nothing.
lab_setup() {
	LAB_DIR=$1
	LAB_MODE=${2:-relay}
	case "$LAB_MODE" in relay|direct|secure) ;; *) lab_die "mode must be relay, direct or secure"; return 1 ;; esac
	[ "$(id -u)" -eq 0 ] || { lab_die "the lab must run as root (Prosody runs as user prosody)"; return 1; }
	id prosody >/dev/null 2>&1 || { lab_die "no prosody user (apt-get install prosody)"; return 1; }
	for _c in prosody prosodyctl ss timeout runuser setpriv; do
		command -v $_c >/dev/null || { lab_die "$_c missing"; return 1; }
	done
	[ -x "$LAB_PYTHON" ] || { lab_die "$LAB_PYTHON missing"; return 1; }
	mkdir -p "$LAB_DIR" || return 1
	LAB_DIR=$(cd "$LAB_DIR" && pwd)
	chmod 755 "$LAB_DIR"   # the prosody user must reach its own directory
	: >"$LAB_DIR/pids"
	echo "$LAB_MODE" >"$LAB_DIR/mode"
	mkdir -p "$LAB_DIR/a/data" "$LAB_DIR/b/data"
	_t0=$(lab_now_ms)
	if [ "$LAB_MODE" = secure ]; then
		lab_make_enclave_pki || return 1
	else
		lab_make_pki || return 1
	fi
	_lab_dns_conf a a.example b.example "$LAB_A_DNS" "$LAB_A_ADDR" "$LAB_B_ADDR"
	_lab_dns_conf b b.example a.example "$LAB_B_DNS" "$LAB_B_ADDR" "$LAB_A_ADDR"
	_lab_prosody_conf a a.example "$LAB_A_ADDR" "$LAB_A_DNS"
	_lab_prosody_conf b b.example "$LAB_B_ADDR" "$LAB_B_DNS"
	_lab_relay_conf
	chown -R prosody:prosody "$LAB_DIR/a" "$LAB_DIR/b"
	runuser -u prosody -- test -r "$LAB_DIR/a/prosody.cfg.lua" ||
		{ lab_die "user prosody cannot read $LAB_DIR (a parent directory is not searchable?)"; return 1; }
	lab_register a alice a.example "$LAB_PW" &&
	lab_register b bob b.example "$LAB_PW" || return 1
	lab_log "setup ($LAB_MODE) in $LAB_DIR: $(($(lab_now_ms) - _t0)) ms"
}

# lab_secure_configure — secure mode: rewrites both Prosody configs and
# relay.conf from LAB_AUTH_*, LAB_SECURE_AUTH_*, LAB_S2S_CERT_* (and
# LAB_RELAY_*EXTRA). Restart the processes concerned to apply them.
lab_secure_configure() {
	[ "$LAB_MODE" = secure ] || { lab_die "lab_secure_configure: secure mode only"; return 1; }
	for _k in "$LAB_S2S_CERT_A" "$LAB_S2S_CERT_B"; do
		case "$_k" in good|expired|wrong-name) ;; *) lab_die "LAB_S2S_CERT_*: good, expired or wrong-name, not '$_k'"; return 1 ;; esac
	done
	_lab_prosody_conf a a.example "$LAB_A_ADDR" "$LAB_A_DNS"
	_lab_prosody_conf b b.example "$LAB_B_ADDR" "$LAB_B_DNS"
	chown prosody:prosody "$LAB_DIR/a/prosody.cfg.lua" "$LAB_DIR/b/prosody.cfg.lua"
	_lab_relay_conf
	lab_log "secure config: leaf-a auth=$LAB_AUTH_A s2s_secure_auth=$LAB_SECURE_AUTH_A cert=$LAB_S2S_CERT_A; leaf-b auth=$LAB_AUTH_B s2s_secure_auth=$LAB_SECURE_AUTH_B cert=$LAB_S2S_CERT_B"
}

# lab_start_prosody [a] [b] — starts the DNS servers (once) and the given
# leaves (default both), waits until c2s and s2s listen.
lab_start_prosody() {
	[ -n "$LAB_DIR" ] || { lab_die "lab_setup first"; return 1; }
	lab_start_dns || return 1
	_which=${*:-a b}
	_t0=$(lab_now_ms)
	for _l in $_which; do
		[ "$_l" = a ] && _addr=$LAB_A_ADDR || _addr=$LAB_B_ADDR
		lab_port_free "$_addr" 5222 && lab_port_free "$_addr" 5269 || return 1
	done
	for _l in $_which; do
		setpriv --reuid=prosody --regid=prosody --init-groups --reset-env \
			prosody -F --config "$LAB_DIR/$_l/prosody.cfg.lua" \
			>"$LAB_DIR/$_l/console.log" 2>&1 &
		lab_track "prosody-$_l" $!
	done
	for _l in $_which; do
		[ "$_l" = a ] && _addr=$LAB_A_ADDR || _addr=$LAB_B_ADDR
		_pid=$(lab_pid_of "prosody-$_l")
		if ! lab_wait_port "$_addr" 5222 20 "$_pid" || ! lab_wait_port "$_addr" 5269 5 "$_pid"; then
			lab_die "Prosody $_l did not start; see $LAB_DIR/$_l/prosody.log"
			tail -n 15 "$LAB_DIR/$_l/console.log" "$LAB_DIR/$_l/prosody.log" >&2 2>/dev/null
			return 1
		fi
	done
	lab_log "Prosody $_which listening: $(($(lab_now_ms) - _t0)) ms"
}

# lab_start_relay BINARY — relay and secure modes. Logs to $LAB_DIR/relay.log.
lab_start_relay() {
	[ -n "$LAB_DIR" ] || { lab_die "lab_setup first"; return 1; }
	[ "$LAB_MODE" != direct ] || { lab_die "no relay in $LAB_MODE mode"; return 1; }
	[ -n "${1:-}" ] && [ -f "$1" ] && [ -x "$1" ] || { lab_die "relay binary '${1:-}' missing or not executable"; return 1; }
	_t0=$(lab_now_ms)
	lab_port_free "$LAB_RELAY_ADDR" 5269 || return 1
	# XTRUNKD_WRAPPER (e.g. "valgrind --error-exitcode=99 ...") runs the
	# relay under a checker; the PID tracked is still the relay's process.
	# shellcheck disable=SC2086
	# shellcheck disable=SC2086
	${XTRUNKD_WRAPPER:-} "$1" ${LAB_RELAY_FLAGS:--d -v} -f "$LAB_DIR/relay.conf" >"$LAB_DIR/relay.log" 2>&1 &
	lab_track relay $!
	if ! lab_wait_port "$LAB_RELAY_ADDR" 5269 10 "$(lab_pid_of relay)"; then
		lab_die "relay did not listen on $LAB_RELAY_ADDR:5269"
		tail -n 20 "$LAB_DIR/relay.log" >&2
		return 1
	fi
	lab_log "relay listening: $(($(lab_now_ms) - _t0)) ms"
}

# lab_stop_proc NAME — ends the process tracked as NAME (e.g. relay,
# prosody-a), by PID: TERM, bounded wait, then KILL; forgets it.
lab_stop_proc() {
	_p=$(lab_pid_of "$1")
	[ -n "$_p" ] || return 0
	lab_alive "$_p" && kill -TERM "$_p" 2>/dev/null
	_end=$(($(date +%s) + 6))
	while lab_alive "$_p" && [ "$(date +%s)" -lt "$_end" ]; do sleep 0.05; done
	if lab_alive "$_p"; then
		lab_log "$1 ($_p) ignored SIGTERM; killing"
		kill -KILL "$_p" 2>/dev/null
	fi
	wait "$_p" 2>/dev/null
	_keep=""
	for _e in $LAB_PIDS; do
		[ "$_e" = "$1:$_p" ] || _keep="$_keep $_e"
	done
	LAB_PIDS=$_keep
	return 0
}

# lab_restart_prosody LEAF... / lab_restart_relay BINARY — stop (by PID)
# and start again, e.g. after lab_secure_configure. The relay's previous
# log is kept as relay.log.N.
lab_restart_prosody() {
	for _l in "$@"; do lab_stop_proc "prosody-$_l"; done
	lab_start_prosody "$@"
}
lab_restart_relay() {
	lab_stop_proc relay
	if [ -s "$LAB_DIR/relay.log" ]; then
		_n=1
		while [ -e "$LAB_DIR/relay.log.$_n" ]; do _n=$((_n + 1)); done
		mv "$LAB_DIR/relay.log" "$LAB_DIR/relay.log.$_n"
	fi
	lab_start_relay "$1"
}

# lab_stop — ends every process this lab started, by PID, newest first.
lab_stop() {
	if [ -n "${LAB_CLIENT_PID:-}" ]; then
		kill -TERM "$LAB_CLIENT_PID" 2>/dev/null
		wait "$LAB_CLIENT_PID" 2>/dev/null
		LAB_CLIENT_PID=""
	fi
	_rev=""
	for _e in $LAB_PIDS; do _rev="$_e $_rev"; done
	for _e in $_rev; do
		_p=${_e#*:}
		lab_alive "$_p" && kill -TERM "$_p" 2>/dev/null
	done
	_end=$(($(date +%s) + 6))
	for _e in $_rev; do
		_p=${_e#*:}
		while lab_alive "$_p" && [ "$(date +%s)" -lt "$_end" ]; do sleep 0.05; done
		if lab_alive "$_p"; then
			lab_log "${_e%%:*} ($_p) ignored SIGTERM; killing"
			kill -KILL "$_p" 2>/dev/null
		fi
		wait "$_p" 2>/dev/null
	done
	LAB_PIDS=""
	LAB_DNS_STARTED=""
	return 0
}

# lab_watchdog SECONDS — bounds the whole calling script: after SECONDS it
# prints a message and sends SIGTERM to the script ($$), whose traps then
# clean up. lab_watchdog_stop ends it (its sleep included). One process
# pair, both known by PID.
LAB_WATCHDOG=""
lab_watchdog() {
	_main=$$
	(
		sleep "$1" &
		_sp=$!
		trap 'kill $_sp 2>/dev/null; exit 0' TERM
		wait $_sp && { echo "lab: whole-run timeout (${1}s)" >&2; kill -TERM $_main; }
	) &
	LAB_WATCHDOG=$!
}
lab_watchdog_stop() {
	if [ -n "$LAB_WATCHDOG" ]; then
		kill -TERM "$LAB_WATCHDOG" 2>/dev/null
		wait "$LAB_WATCHDOG" 2>/dev/null
		LAB_WATCHDOG=""
	fi
	return 0
}

# lab_c2s_addr DOMAIN -> c2s address of the leaf serving it
lab_c2s_addr() {
	case "$1" in
	*a.example) echo "$LAB_A_ADDR" ;;
	*b.example) echo "$LAB_B_ADDR" ;;
	*) echo "$LAB_C_ADDR" ;;
	esac
}

# lab_xclient SUBCOMMAND --from JID --to JID [args...]
# Runs xclient.py with the lab's CA, password and c2s addresses, under an
# outer timeout ($LAB_CLIENT_TIMEOUT, default 20 s inner, +10 s outer).
lab_xclient() {
	_sub=$1; shift
	_from="" _to="" _prev=""
	for _a in "$@"; do
		case "$_prev" in --from) _from=$_a ;; --to) _to=$_a ;; esac
		_prev=$_a
	done
	_prev=""
	_tmo=${LAB_CLIENT_TIMEOUT:-20}
	${LAB_XCLIENT_EXEC:+exec} timeout -k 3 $((_tmo + 10)) "$LAB_PYTHON" "$LAB_LIBDIR/xclient.py" "$_sub" \
		--pw "$LAB_PW" --ca "$LAB_DIR/ca.pem" --timeout "$_tmo" \
		--from-host "$(lab_c2s_addr "${_from#*@}")" \
		--to-host "$(lab_c2s_addr "${_to#*@}")" "$@"
}

# Test-case bookkeeping for the scripts: one line per case, then a summary.
LAB_PASSED=0
LAB_FAILED=0
lab_ok() { echo "ok $1${2:+  ($2)}"; LAB_PASSED=$((LAB_PASSED + 1)); }
lab_fail() { echo "FAIL $1${2:+  ($2)}"; LAB_FAILED=$((LAB_FAILED + 1)); }
lab_summary() { echo "$LAB_PASSED passed, $LAB_FAILED failed"; }

# lab_relay_binary USAGE — $XTRUNKD exists and is executable (made
# absolute); otherwise a FAIL line, the summary, and 1.
lab_relay_binary() {
	if [ -z "${XTRUNKD:-}" ] || [ ! -f "$XTRUNKD" ] || [ ! -x "$XTRUNKD" ]; then
		lab_fail relay-binary "relay binary '${XTRUNKD:-}' missing or not executable; usage: $1"
		lab_summary
		return 1
	fi
	XTRUNKD=$(cd "$(dirname "$XTRUNKD")" && pwd)/$(basename "$XTRUNKD")
}

# lab_case NAME SUBCOMMAND xclient-args... — runs the client, records the
# result with the client's own one-line explanation.
# The client runs in the background and is waited for, so that a signal
# (Ctrl-C, the watchdog) is handled at once; lab_stop ends it too.
LAB_CLIENT_PID=""
lab_case() {
	_name=$1; shift
	# exec: the background job IS the timeout process (its PID is $!).
	LAB_XCLIENT_EXEC=1 lab_xclient "$@" >"$LAB_DIR/client.out" 2>&1 &
	LAB_CLIENT_PID=$!
	wait "$LAB_CLIENT_PID"
	_rc=$?
	LAB_CLIENT_PID=""
	_out=$(cat "$LAB_DIR/client.out")
	_line=$(printf '%s\n' "$_out" | grep -E '^(ok|FAIL) ' | tail -n 1)
	if [ $_rc -eq 0 ]; then
		lab_ok "$_name" "${_line#*: }"
	else
		[ -n "$_line" ] || _line="client exit $_rc: $(printf '%s' "$_out" | tail -n 3 | tr '\n' ' ')"
		lab_fail "$_name" "${_line#FAIL }"
	fi
}

# lab_logs_tail [N] — what to read when something failed: the relay log's
# tail, each Prosody's warnings/errors and log tail, console output.
lab_logs_tail() {
	_n=${1:-40}
	if [ -s "$LAB_DIR/relay.log" ]; then
		echo "----- relay: tail -n $_n $LAB_DIR/relay.log"
		tail -n "$_n" "$LAB_DIR/relay.log"
	fi
	for _l in a b; do
		_f="$LAB_DIR/$_l/prosody.log"
		[ -s "$_f" ] || continue
		echo "----- Prosody $_l: warnings and errors in $_f (last 20)"
		grep -E "	(warn|error)	" "$_f" | tail -n 20
		echo "----- Prosody $_l: tail -n $_n $_f"
		tail -n "$_n" "$_f"
		if [ -s "$LAB_DIR/$_l/console.log" ]; then
			echo "----- Prosody $_l: console"
			tail -n 20 "$LAB_DIR/$_l/console.log"
		fi
	done
}
