#!/bin/sh
# xtrunk integration test (make check): the trunk topologies of
# examples/star/ and examples/boundary/ with real leaves.
#
#   sh test/integration/topology.sh XTRUNKD [star] [boundary]   (default both)
#
# The example files themselves are run: each is copied with its addresses
# and /etc/xtrunk/ paths replaced by the lab's (sed, nothing else changes;
# the loop routes, control sockets and, when the relay supports them, trunk
# and fail-over settings are added and listed in the log). Every leaf's DNS
# is the dnsmasq file written by `xtrunkctl leaf-config -o DIR` from the
# relay config it sits behind; the leaves are unmodified Debian Prosody and
# ejabberd.
#
# Star (root network namespace, 127.0.1.50-.74):
#   centre (centre.conf) 127.0.1.50    onward relay (onward.conf) 127.0.1.60
#   p1.star.example  Prosody  127.0.1.51, DNS 127.0.1.71:5300
#   p2.star.example  Prosody  127.0.1.52, DNS 127.0.1.72:5300
#   p3.star.example  ejabberd 127.0.1.53, DNS 127.0.1.74:53 (private mount
#                    namespace, epmd port 4377; test/lab/ejabberd.sh)
#   q1.far.example   Prosody  127.0.1.61, DNS 127.0.1.73:5300 (behind onward)
# Cases: star-configs (xtrunkd -n), star-mesh-SRC-DST for the 12 ordered
# pairs of leaves (one message each), star-centre-turns (p1 -> p2 turns at
# the centre, nothing reaches the onward relay), star-multihop-dialback
# (p1 -> centre -> onward -> q1 and back, p3 -> q1: each hop authenticated
# by its own dialback, from the relays' logs), star-relay-connections (TCP
# connections centre <-> onward; asserted to be 1 only when the relays
# support trunk links), star-relays-alive.
#
# Boundary (two network namespaces joined by one veth pair, the DMZ):
#   xtrunk-topo-a (enclave A): relay A (relay-a.conf) 127.0.1.10 and DMZ
#     192.0.2.1; hq.a.example Prosody 127.0.1.31 (DNS .35), ops.a.example
#     Prosody 127.0.1.32 (DNS .36)
#   xtrunk-topo-b (enclave B): relay B1 (relay-b.conf) 127.0.1.20 and DMZ
#     192.0.2.2; relay B2 (the same file, listen addresses 127.0.1.21 and
#     192.0.2.3, the same dialback secret file); hq.b.example Prosody
#     127.0.1.41 (DNS .45), lab.b.example Prosody 127.0.1.42 (DNS .46).
#     Their DNS has two SRV records of equal priority for each enclave A
#     domain (B1 and B2); B1's inside address is made unreachable for
#     enclave B (ip rule prohibit), so the leaves' streams land on B2 while
#     relay A, whose peer relay-b is B1, sends its db:verify to B1.
# Cases: boundary-configs, boundary-separation (enclave A cannot reach
# enclave B's leaves, only relay B across the DMZ, and the reverse),
# boundary-mesh-SRC-DST (12 pairs; one client process per enclave),
# boundary-multihop-dialback, scaleout-b2-key-answered-by-b1 and
# scaleout-b1-key-answered-by-b2 (a dialback key one instance minted is
# verified by the other), boundary-relay-connections, routing-loop (relay
# A routes loop.example to B, B routes it back: one message must come back
# as exactly one error, and the relays forward it a bounded number of
# times), failover (when xtrunkd -k lists peers.[].addresses: relay A's
# peer gets B1 and B2 as prioritised addresses, B1 is killed, traffic must
# go on through B2; else "skip failover: not implemented"),
# boundary-relays-alive.
#
# One line per case (ok NAME / FAIL NAME), then "N passed, M failed" as the
# last line; exit 0 only if all passed. Bounded by a watchdog (300 s);
# every process is stopped by PID, the namespaces, veth and files removed
# in the EXIT trap. Run it under flock /tmp/xtrunk-lab.lock like the other
# lab suites. Environment: LAB_KEEP=1 keeps the lab directory (kept anyway
# on failure), XTRUNKCTL (default: xtrunkctl beside XTRUNKD),
# TOPO_TIMEOUT (client run, default 40 s), TOPO_PLAIN=1 (plain peers: no
# trunk or fail-over settings even if the relay has them).
set -u

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
LAB_LIBDIR=$(cd "$here/../lab" && pwd)
# shellcheck disable=SC2034  # read by ejabberd.sh
EJ_LIBDIR=$LAB_LIBDIR
# shellcheck source=../lab/lab.sh
. "$LAB_LIBDIR/lab.sh"

XTRUNKD=${1:-}
[ $# -gt 0 ] && shift
phases=${*:-star boundary}
if [ -z "$XTRUNKD" ] || [ ! -f "$XTRUNKD" ] || [ ! -x "$XTRUNKD" ]; then
	lab_fail relay-binary "relay binary '$XTRUNKD' missing; usage: topology.sh XTRUNKD [star] [boundary]"
	lab_summary
	exit 1
fi
XTRUNKD=$(cd "$(dirname "$XTRUNKD")" && pwd)/$(basename "$XTRUNKD")
XTRUNKCTL=${XTRUNKCTL:-$(dirname "$XTRUNKD")/xtrunkctl}
[ -x "$XTRUNKCTL" ] || XTRUNKCTL=$root/build/xtrunkctl
TIMEOUT=${TOPO_TIMEOUT:-40}
PW=topo-pw-1
# 127.0.1.x only, none of the other suites' addresses
# shellcheck disable=SC2034  # read by ejabberd.sh
EJ_DOMAIN=p3.star.example EJ_ADDR=127.0.1.53 EJ_DNS_ADDR=127.0.1.74 EJ_EPMD_PORT=4377
# shellcheck disable=SC2034
EJ_PEERS="" EJ_ACCOUNTS=u EJ_PW=$PW EJ_TRUST_CA=0 EJ_DIALBACK=1
# shellcheck source=../lab/ejabberd.sh
. "$LAB_LIBDIR/ejabberd.sh"

NS_A=xtrunk-topo-a NS_B=xtrunk-topo-b VETH_A=xttopo-a VETH_B=xttopo-b

top=$(mktemp -d /tmp/xtrunk-topo.XXXXXX) || exit 1
chmod 755 "$top"
LAB_DIR=$top    # lab_track records PIDs in $top/pids
: >"$top/pids"
keep=1
reported=0
CLIENT_PIDS=""

net_down() {
	for _n in $NS_A $NS_B; do
		ip netns list 2>/dev/null | grep -qw "^$_n" && ip netns del "$_n" 2>/dev/null
	done
	ip link show "$VETH_A" >/dev/null 2>&1 && ip link del "$VETH_A" 2>/dev/null
	return 0
}

cleanup() {
	rc=$?
	trap - EXIT
	trap '' PIPE
	lab_watchdog_stop
	for _p in $CLIENT_PIDS; do
		kill -TERM "$_p" 2>/dev/null
		wait "$_p" 2>/dev/null
	done
	ejabberd_stop
	lab_stop
	net_down
	if [ "$keep" = 0 ]; then
		rm -rf "$top"
	elif [ "$reported" = 0 ]; then
		echo "topology: lab directory kept: $top" >&2
	fi
	exit $rc
}
trap cleanup EXIT
trap 'echo "topology: interrupted" >&2; exit 130' INT TERM HUP
trap 'exit 141' PIPE
lab_watchdog 300

log() { echo "# $*"; }
ms_since() { echo "$(($(lab_now_ms) - $1)) ms"; }

# What the relay under test supports (its key table).
"$XTRUNKD" -k >"$top/keys" 2>/dev/null
has_key() { grep -qxF "$1" "$top/keys"; }
TRUNK=0 TRUNK_LINK=0 FAILOVER=0
has_key 'peers.[].trunk' && TRUNK=1
has_key 'peers.[].trunk' && has_key 'relay_name' && TRUNK_LINK=1
has_key 'peers.[].addresses' && has_key 'peers.[].addresses.[].host' &&
	has_key 'peers.[].addresses.[].priority' && FAILOVER=1
if [ "${TOPO_PLAIN:-0}" = 1 ]; then
	log "TOPO_PLAIN=1: plain peers, no trunk or fail-over settings whatever the relay supports"
	TRUNK=0 TRUNK_LINK=0 FAILOVER=0
elif [ "${TOPO_NO_TRUNK:-0}" = 1 ]; then
	log "TOPO_NO_TRUNK=1: no trunk settings whatever the relay supports"
	TRUNK=0 TRUNK_LINK=0
fi
# How the relay-to-relay hop of a domain pair is authorised: by its own
# dialback, or on a trunk link from the receiving relay's configuration.
if [ "$TRUNK_LINK" = 1 ]; then RELAY_AUTH='(dialback|trunk)'; else RELAY_AUTH=dialback; fi
log "relay: $XTRUNKD; trunk key: $TRUNK, trunk links (relay_name): $TRUNK_LINK, peers.[].addresses: $FAILOVER"

# ---------------------------------------------------------------- helpers

# inns NS CMD... — CMD in network namespace NS ("" = this one), in the
# foreground. For background processes use start(): ip netns exec execs
# CMD, so $! is CMD's PID.
inns() {
	_ns=$1
	shift
	if [ -z "$_ns" ]; then "$@"; else ip netns exec "$_ns" "$@"; fi
}

# start NAME NS LOG CMD... — background process, tracked by PID.
start() {
	_sn=$1 _sns=$2 _slog=$3
	shift 3
	if [ -z "$_sns" ]; then
		"$@" >"$_slog" 2>&1 &
	else
		ip netns exec "$_sns" "$@" >"$_slog" 2>&1 &
	fi
	lab_track "$_sn" $!
}

# wait_listen NS tcp|udp ADDR PORT SECONDS PID
wait_listen() {
	_wend=$(($(date +%s) + $5))
	while :; do
		inns "$1" ss "-Hl$(echo "$2" | cut -c1)n" "src $3:$4" 2>/dev/null | grep -q . && return 0
		if ! lab_alive "$6"; then
			echo "topology: process $6 died before listening on $3:$4" >&2
			return 1
		fi
		[ "$(date +%s)" -ge "$_wend" ] && { echo "topology: timeout waiting for $3:$4" >&2; return 1; }
		sleep 0.05
	done
}

# Throwaway CA and certificates, made with xtrunkctl.
pki() {
	"$XTRUNKCTL" ca-create -o "$top/ca" -n "xtrunk topology lab CA" -d 2 >"$top/pki.log" 2>&1 &&
		"$XTRUNKCTL" issue -c "$top/ca/ca.pem" -k "$top/ca/ca.key" -o "$top/certs" -d 2 "$@" \
			>>"$top/pki.log" 2>&1 ||
		{ cat "$top/pki.log" >&2; return 1; }
}

# relay_files DIR NAME CERTDOMAIN — what an example names under
# /etc/xtrunk/: NAME.pem/.key (the relay's certificate), the relays' CA
# (relay-ca.pem, dmz-ca.pem) and a dialback secret (unless one is there).
relay_files() {
	mkdir -p "$1" &&
		cp "$top/certs/$3.pem" "$1/$2.pem" && cp "$top/certs/$3.key" "$1/$2.key" &&
		cp "$top/ca/ca.pem" "$1/relay-ca.pem" && cp "$top/ca/ca.pem" "$1/dmz-ca.pem" &&
		chmod 600 "$1/$2.key" || return 1
	[ -f "$1/dialback.secret" ] ||
		{ od -An -tx1 -N24 /dev/urandom | tr -d ' \n' >"$1/dialback.secret" && chmod 600 "$1/dialback.secret"; }
}

# render EXAMPLE OUT FILESDIR RELAYNAME SED-SCRIPT [EXTRA-ROUTE-LINE] — the
# example with its addresses (SED-SCRIPT) and /etc/xtrunk/ paths replaced,
# plus a control socket; EXTRA-ROUTE-LINE goes first in routes; with trunk
# support the relay peers (those with an identity) get trunk = true, and
# with trunk links the relay its relay_name (the name its certificate has).
render() {
	_ex=$1 _out=$2 _fd=$3 _rname=$4 _sed=$5 _extra=${6:-}
		sed -e "s|/etc/xtrunk/|$_fd/|g" -e "$_sed" "$root/examples/$_ex" >"$_out.tmp" || return 1
	# The examples use trunk links; TOPO_PLAIN / TOPO_NO_TRUNK take them out.
	if [ "$TRUNK_LINK" != 1 ]; then
		sed -i -e '/^relay_name = /d' -e 's|trunk = true; }|}|' "$_out.tmp"
	fi
	if [ -n "$_extra" ]; then
		awk -v extra="	$_extra" '{ print } /^routes[ \t]*=[ \t]*\([ \t]*$/ { print extra; n++ }
			END { exit n == 1 ? 0 : 1 }' "$_out.tmp" >"$_out.tmp2" && mv "$_out.tmp2" "$_out.tmp" || return 1
	fi
	{
		cat "$_out.tmp"
		echo "# added by topology.sh"
				echo "control = { socket = \"$_out.sock\"; };"
	} >"$_out" && rm -f "$_out.tmp" && chmod 600 "$_out"
}

# check_configs NAME FILE... — xtrunkd -n on each rendered config.
check_configs() {
	_cn=$1
	shift
	_bad=""
	for _f in "$@"; do
		"$XTRUNKD" -n -f "$_f" >"$_f.check" 2>&1 && grep -q "configuration OK" "$_f.check" ||
			_bad="$_bad $(basename "$_f"): $(tail -n 2 "$_f.check" | tr '\n' ' ')"
	done
	if [ -z "$_bad" ]; then
		_w=$(for _f in "$@"; do grep -i 'warn' "$_f.check"; done | head -n 2 | tr '\n' ' ')
		lab_ok "$_cn" "$# rendered example configs pass xtrunkd -n${_w:+; $_w}"
	else
		lab_fail "$_cn" "$_bad"
	fi
}

# start_relay NAME NS CONF ADDR — the relay, logging to CONF.log.
start_relay() {
	start "relay-$1" "$2" "$3.log" "$XTRUNKD" -d -v -f "$3" || return 1
	wait_listen "$2" tcp "$4" 5269 10 "$(lab_pid_of "relay-$1")" ||
		{ tail -n 20 "$3.log" >&2; return 1; }
}

# setup_prosody NAME DOMAIN ADDR DNSADDR RELAYCONF RELAY-ADDRESS... —
# certificate, generated leaf configuration, dnsmasq and Prosody configs;
# registers u@DOMAIN in the background (wait_registrations).
REG_PIDS=""
setup_prosody() {
	_n=$1 _dom=$2 _addr=$3 _dns=$4 _rconf=$5
	shift 5
	_d=$top/$_n
	mkdir -p "$_d/data" || return 1
	cp "$top/certs/$_dom.pem" "$top/certs/$_dom.key" "$_d/" || return 1
	_ra=""
	for _a in "$@"; do _ra="$_ra --relay-address $_a"; done
	# shellcheck disable=SC2086
	"$XTRUNKCTL" leaf-config -f "$_rconf" --leaf "$_dom" $_ra -o "$_d/leafconf" \
		>"$_d/leafconf.log" 2>&1 || { cat "$_d/leafconf.log" >&2; return 1; }
	cat >"$_d/dns.conf" <<EOF
# dnsmasq for the Prosody leaf $_dom; generated by topology.sh
keep-in-foreground
no-resolv
no-hosts
no-poll
bind-interfaces
listen-address=$_dns
port=5300
pid-file=
log-queries
log-facility=$_d/dns.log
host-record=$_dom,$_addr
# the records of \`xtrunkctl leaf-config -f $(basename "$_rconf") --leaf $_dom\`
conf-file=$_d/leafconf/dnsmasq.conf
EOF
	cat >"$_d/prosody.cfg.lua" <<EOF
-- Prosody $_dom for the xtrunk topology lab; generated by topology.sh
pidfile = "$_d/prosody.pid"
data_path = "$_d/data"
log = { ${LAB_LOGLEVEL:-debug} = "$_d/prosody.log" }
certificates = "$_d"
interfaces = { "$_addr" }
c2s_ports = { 5222 }
s2s_ports = { 5269 }
c2s_direct_tls_ports = { }
s2s_direct_tls_ports = { }
use_ipv6 = false
network_settings = { nagle = false; shutdown_deadline = 2 }
-- its own resolver: the dnsmasq above, with the generated records
unbound = { resolvconf = false; hoststxt = false; forward = "$_dns@5300" }
modules_enabled = { "roster"; "saslauth"; "tls"; "dialback"; "disco"; "ping"; "posix" }
modules_disabled = { "limits" }
authentication = "internal_hashed"
storage = "internal"
c2s_require_encryption = true
allow_registration = false
-- the relays authenticate by dialback (their certificates name the relay)
s2s_require_encryption = true
s2s_secure_auth = false
s2s_timeout = 30
VirtualHost "$_dom"
	ssl = {
		certificate = "$_d/$_dom.pem";
		key = "$_d/$_dom.key";
		cafile = "$top/ca/ca.pem";
	}
EOF
	chown -R prosody:prosody "$_d" && chmod 600 "$_d/$_dom.key" || return 1
	timeout -k 2 30 runuser -u prosody -- prosodyctl --config "$_d/prosody.cfg.lua" \
		register u "$_dom" "$PW" >"$_d/register.log" 2>&1 &
	REG_PIDS="$REG_PIDS $!"
}

wait_registrations() {
	_ok=0
	for _p in $REG_PIDS; do wait "$_p" || _ok=1; done
	REG_PIDS=""
	return $_ok
}

# start_prosody NAME NS ADDR DNSADDR
start_prosody() {
	_d=$top/$1
	start "dns-$1" "$2" "$_d/dns.out" dnsmasq --conf-file="$_d/dns.conf" &&
		wait_listen "$2" udp "$4" 5300 5 "$(lab_pid_of "dns-$1")" || { cat "$_d/dns.out" >&2; return 1; }
	start "prosody-$1" "$2" "$_d/console.log" setpriv --reuid=prosody --regid=prosody --init-groups \
		--reset-env prosody -F --config "$_d/prosody.cfg.lua" || return 1
	wait_listen "$2" tcp "$3" 5222 20 "$(lab_pid_of "prosody-$1")" &&
		wait_listen "$2" tcp "$3" 5269 5 "$(lab_pid_of "prosody-$1")" ||
		{ tail -n 15 "$_d/console.log" "$_d/prosody.log" >&2; return 1; }
}

# client NAME NS ARGS... — topology.py in the background (bounded); its PID
# goes to CLIENT_PIDS, its output to $top/client-NAME.out.
client() {
	_cn=$1 _cns=$2
	shift 2
	start "client-$_cn" "$_cns" "$top/client-$_cn.out" timeout -k 3 $((TIMEOUT + 20)) \
		"$LAB_PYTHON" "$here/topology.py" "$@" --pw "$PW" --ca "$top/ca/ca.pem" --timeout "$TIMEOUT"
	CLIENT_PIDS="$CLIENT_PIDS $(lab_pid_of "client-$_cn")"
}
clients_wait() {
	for _p in $CLIENT_PIDS; do wait "$_p" 2>/dev/null; done
	CLIENT_PIDS=""
}

# mesh_cases PREFIX OUTFILE... — one case per "ok|FAIL pair SRC -> DST".
mesh_cases() {
	_pre=$1
	shift
	_seen=0
	for _f in "$@"; do
		while IFS= read -r _l; do
			case "$_l" in
			"ok pair "*|"FAIL pair "*)
				_seen=$((_seen + 1))
				_pair=${_l#* pair }
				_src=${_pair%% -> *} _rest=${_pair#* -> }
				_dst=${_rest%%[ :]*}
				_nm="$_pre-${_src#u@}-${_dst#u@}"
				_det=${_rest#"$_dst" (}
				case "$_l" in ok*) lab_ok "$_nm" "${_det%)}" ;; *) lab_fail "$_nm" "${_rest#"$_dst": }" ;; esac ;;
			"FAIL error "*) lab_fail "$_pre-error" "${_l#FAIL error }" ;;
			FAIL*) lab_fail "$_pre-client" "$_l" ;;
			esac
		done <"$_f"
	done
	[ "$_seen" -gt 0 ] || lab_fail "$_pre" "no result from the clients: $(cat "$@" | tail -n 3 | tr '\n' ' ')"
}

# multihop LABEL R1LOG R2LOG FROM TO — the hops of FROM -> TO through
# relays R1 and R2: the leaf -> R1 stream accepted by dialback, R1 -> R2
# established by dialback (on a trunk link: the pair authorised, "trunk"),
# R2 accepting the pair the same way, R2 -> leaf established by dialback.
# Prints what is missing; returns 1 if anything is.
multihop() {
	_miss=""
	grep -qE "dir=in .*event=dialback-valid from=$4 to=$5 auth=dialback" "$2" || _miss="$_miss $1:in@1"
	grep -qE "dir=out .*event=established from=$4 to=$5 .*auth=dialback|event=dialback-valid from=$4 to=$5 auth=trunk|event=trunk-pair from=$4 to=$5 result=valid" "$2" ||
		_miss="$_miss $1:out@1"
	grep -qE "event=dialback-valid from=$4 to=$5 auth=$RELAY_AUTH" "$3" || _miss="$_miss $1:in@2"
	grep -qE "dir=out .*event=established from=$4 to=$5 .*auth=dialback" "$3" || _miss="$_miss $1:out@2"
	[ -z "$_miss" ] && return 0
	echo "$_miss"
	return 1
}

# conns NS NAME PEER — established TCP connections the process tracked as
# NAME opened to PEER (ADDR:PORT, a listener of the other relay). Outgoing
# connections do not come from the relay's listen address, so sockets are
# told apart by process, not by local address.
conns() {
	_cp=$(lab_pid_of "$2")
	inns "$1" ss -Htnp state established 2>/dev/null |
		awk -v pid="pid=$_cp," -v peer="$3" 'index($0, pid) && $4 == peer { c++ } END { print c + 0 }'
}

# pairs_out LOG PEER-REGEX — distinct domain pairs the relay log shows
# established outbound toward peers matching the regex.
pairs_out() {
	grep -E "dir=out peer=($2):[0-9]+ .*event=established" "$1" 2>/dev/null |
		sed -n 's/.*event=established from=\([^ ]*\) to=\([^ ]*\).*/\1->\2/p' | sort -u | wc -l
}

# trunk_pairs LOG... — distinct domain pairs accepted on trunk links (the
# asking relay logs "trunk-pair ... result=valid" once per pair and link).
trunk_pairs() {
	grep -hE "event=trunk-pair from=[^ ]+ to=[^ ]+ result=valid" "$@" 2>/dev/null |
		sed -n 's/.*event=trunk-pair from=\([^ ]*\) to=\([^ ]*\).*/\1->\2/p' | sort -u | wc -l
}

relays_alive() { # CASE NAME...
	_rc=$1
	shift
	_dead=""
	for _r in "$@"; do lab_alive "$(lab_pid_of "relay-$_r")" || _dead="$_dead $_r"; done
	if [ -z "$_dead" ]; then lab_ok "$_rc" "$*"; else lab_fail "$_rc" "exited:$_dead"; fi
}

# ---------------------------------------------------------------- star

star() {
	t0=$(lab_now_ms)
	S=$top/star
	mkdir -p "$S"
	relay_files "$S/centre" centre centre.relay.example &&
		relay_files "$S/onward" onward onward.relay.example || { lab_fail star-setup "relay files"; return; }
	render star/centre.conf "$S/centre.conf" "$S/centre" centre.relay.example \
		's|"10\.1\.0\.1"|"127.0.1.50"|g; s|"10\.1\.0\.11"|"127.0.1.51"|g; s|"10\.1\.0\.12"|"127.0.1.52"|g; s|"10\.1\.0\.13"|"127.0.1.53"|g; s|"10\.9\.0\.1"|"127.0.1.60"|g' &&
		render star/onward.conf "$S/onward.conf" "$S/onward" onward.relay.example \
			's|"10\.9\.0\.1"|"127.0.1.60"|g; s|"10\.9\.0\.11"|"127.0.1.61"|g; s|"10\.1\.0\.1"|"127.0.1.50"|g' ||
		{ lab_fail star-setup "cannot render the star examples"; return; }
	check_configs star-configs "$S/centre.conf" "$S/onward.conf"

	setup_prosody p1 p1.star.example 127.0.1.51 127.0.1.71 "$S/centre.conf" 127.0.1.50 &&
		setup_prosody p2 p2.star.example 127.0.1.52 127.0.1.72 "$S/centre.conf" 127.0.1.50 &&
		setup_prosody q1 q1.far.example 127.0.1.61 127.0.1.73 "$S/onward.conf" 127.0.1.60 ||
		{ wait_registrations; lab_fail star-setup "leaf setup failed"; return; }
	# ejabberd: test/lab/ejabberd.sh's files, its DNS replaced by the
	# generated records (its own "local=" lines would hide the default route)
	if ! ejabberd_setup "$top/p3" ||
		! "$XTRUNKCTL" leaf-config -f "$S/centre.conf" --leaf p3.star.example \
			--relay-address 127.0.1.50 -o "$top/p3/leafconf" >"$top/p3/leafconf.log" 2>&1; then
		wait_registrations
		lab_fail star-setup "ejabberd setup or its leaf-config failed"
		return
	fi
	sed -i '/^local=/d' "$top/p3/dns.conf" &&
		echo "conf-file=$top/p3/leafconf/dnsmasq.conf" >>"$top/p3/dns.conf"
	wait_registrations || { lab_fail star-setup "prosodyctl register failed"; return; }
	if ! start_relay centre "" "$S/centre.conf" 127.0.1.50 ||
		! start_relay onward "" "$S/onward.conf" 127.0.1.60 ||
		! start_prosody p1 "" 127.0.1.51 127.0.1.71 ||
		! start_prosody p2 "" 127.0.1.52 127.0.1.72 ||
		! start_prosody q1 "" 127.0.1.61 127.0.1.73 ||
		! ejabberd_start; then
		lab_fail star-start "the star did not start"
		return
	fi
	log "star up in $(ms_since "$t0")"

	t1=$(lab_now_ms)
	mkdir -p "$S/barrier"
	client star "" mesh --name star --barrier "$S/barrier" --parties 1 \
		--login u@p1.star.example=127.0.1.51 --login u@p2.star.example=127.0.1.52 \
		--login u@p3.star.example=127.0.1.53 --login u@q1.far.example=127.0.1.61 \
		--all u@p1.star.example --all u@p2.star.example --all u@p3.star.example --all u@q1.far.example
	clients_wait
	log "star mesh: $(ms_since "$t1")"
	mesh_cases star-mesh "$top/client-star.out"

	cl=$S/centre.conf.log ol=$S/onward.conf.log
	nturn=$(grep -c 'event=forward .*from=p1.star.example to=p2.star.example' "$cl")
	nonw=$(grep -c 'from=p1.star.example to=p2.star.example' "$ol")
	if [ "$nturn" -ge 1 ] && [ "$nonw" -eq 0 ]; then
		lab_ok star-centre-turns "centre forwarded p1 -> p2 $nturn time(s), the onward relay saw none"
	else
		lab_fail star-centre-turns "centre forwards p1 -> p2: $nturn, onward lines for the pair: $nonw"
	fi

	miss=""
	m=$(multihop p1-q1 "$cl" "$ol" p1.star.example q1.far.example) || miss="$miss$m"
	m=$(multihop q1-p1 "$ol" "$cl" q1.far.example p1.star.example) || miss="$miss$m"
	m=$(multihop p3-q1 "$cl" "$ol" p3.star.example q1.far.example) || miss="$miss$m"
	# without trunk links the relays answered each other's keys: dialback
	# across the relay hop
	if [ "$TRUNK_LINK" = 0 ]; then
		grep -qE "event=dialback-verify-answered from=q1.far.example to=p1.star.example valid=yes" "$cl" ||
			miss="$miss centre-answers-onward"
		grep -qE "event=dialback-verify-answered from=p1.star.example to=q1.far.example valid=yes" "$ol" ||
			miss="$miss onward-answers-centre"
	fi
	if [ -z "$miss" ]; then
		lab_ok star-multihop-dialback "p1->q1, q1->p1, p3(ejabberd)->q1: leaf->centre, centre->onward, onward->leaf each authenticated on its own ($([ "$TRUNK_LINK" = 1 ] && echo 'relay hop: trunk link' || echo "dialback; each relay answered the other's db:verify"))"
	else
		lab_fail star-multihop-dialback "missing:$miss"
		grep -E 'event=(dialback|established|stream-error|peer-stream-error|bounce)' "$cl" "$ol" | tail -n 20 | sed 's/^/#   /'
	fi

	nconn=$(($(conns "" relay-centre 127.0.1.60:5269) + $(conns "" relay-onward 127.0.1.50:5269)))
	if [ "$TRUNK_LINK" = 1 ]; then
		npairs=$(trunk_pairs "$cl" "$ol")
	else
		npairs=$(($(pairs_out "$cl" '127\.0\.1\.60') + $(pairs_out "$ol" '127\.0\.1\.50')))
	fi
	fig="$nconn TCP connection(s) centre <-> onward carrying $npairs domain pair(s)"
	if [ "$TRUNK_LINK" = 1 ]; then
		# p1, p2, p3 <-> q1: six pairs cross, all on the one link
		if [ "$nconn" -eq 1 ] && [ "$npairs" -ge 6 ]; then
			lab_ok star-relay-connections "$fig (trunk link)"
		else lab_fail star-relay-connections "$fig; a trunk link should be 1, carrying the 6 pairs"; fi
	elif [ "$nconn" -ge 1 ]; then
		lab_ok star-relay-connections "$fig (no trunk links in this relay: one per domain pair and direction, not asserted)"
	else
		lab_fail star-relay-connections "$fig: no connection between the relays at all"
	fi
	relays_alive star-relays-alive centre onward
	log "star total $(ms_since "$t0")"
	ejabberd_stop
	lab_stop
}

# ---------------------------------------------------------------- boundary

net_up() {
	net_down
	ip netns add "$NS_A" && ip netns add "$NS_B" &&
		ip -n "$NS_A" link set lo up && ip -n "$NS_B" link set lo up &&
		ip link add "$VETH_A" netns "$NS_A" type veth peer name "$VETH_B" netns "$NS_B" &&
		ip -n "$NS_A" addr add 192.0.2.1/24 dev "$VETH_A" &&
		ip -n "$NS_B" addr add 192.0.2.2/24 dev "$VETH_B" &&
		ip -n "$NS_B" addr add 192.0.2.3/24 dev "$VETH_B" &&
		ip -n "$NS_A" link set "$VETH_A" up && ip -n "$NS_B" link set "$VETH_B" up &&
		# enclave B cannot reach B1's inside address: the local table
		# rule moves after a prohibit rule for it
		ip -n "$NS_B" rule add pref 100 table local &&
		ip -n "$NS_B" rule del pref 0 &&
		ip -n "$NS_B" rule add pref 10 to 127.0.1.20 prohibit
}

# can_connect NS ADDR PORT — a TCP connection succeeds within 2 s.
can_connect() {
	inns "$1" timeout 5 "$LAB_PYTHON" -c 'import socket, sys
try:
    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=2).close()
except OSError as e:
    print(e); sys.exit(1)' "$2" "$3" >/dev/null 2>&1
}

boundary() {
	t0=$(lab_now_ms)
	B=$top/boundary
	mkdir -p "$B"
	if ! net_up; then
		lab_fail boundary-setup "network namespaces/veth could not be set up"
		return
	fi
	relay_files "$B/a" relay-a relay-a.dmz.example &&
		relay_files "$B/b" relay-b relay-b.dmz.example || { lab_fail boundary-setup "relay files"; return; }
	sed_a='s|"10\.1\.0\.1"|"127.0.1.10"|g; s|"10\.1\.0\.11"|"127.0.1.31"|g; s|"10\.1\.0\.12"|"127.0.1.32"|g'
	sed_b='s|"10\.2\.0\.11"|"127.0.1.41"|g; s|"10\.2\.0\.12"|"127.0.1.42"|g'
	if [ "$FAILOVER" = 1 ]; then
		sed_a="$sed_a; "'s|host = "192\.0\.2\.2"; port = 5269;|addresses = ( { host = "192.0.2.2"; priority = 0; }, { host = "192.0.2.3"; priority = 1; } );|'
	fi
	render boundary/relay-a.conf "$B/relay-a.conf" "$B/a" relay-a.dmz.example "$sed_a" \
		'{ domain = "loop.example"; peer = "relay-b"; },' &&
		render boundary/relay-b.conf "$B/relay-b1.conf" "$B/b" relay-b.dmz.example "$sed_b; "'s|"10\.2\.0\.1"|"127.0.1.20"|g' \
			'{ domain = "loop.example"; peer = "relay-a"; },' &&
		render boundary/relay-b.conf "$B/relay-b2.conf" "$B/b" relay-b.dmz.example \
			"$sed_b; "'s|"10\.2\.0\.1"|"127.0.1.21"|g; s|"192\.0\.2\.2"|"192.0.2.3"|g' \
			'{ domain = "loop.example"; peer = "relay-a"; },' ||
		{ lab_fail boundary-setup "cannot render the boundary examples"; return; }
	log "added to the examples: control sockets, route loop.example (A -> relay-b, B -> relay-a)$([ "$TRUNK" = 1 ] && echo ', trunk = true on relay peers')$([ "$FAILOVER" = 1 ] && echo ', relay A peer relay-b: addresses B1 (priority 0), B2 (priority 1)')"
	check_configs boundary-configs "$B/relay-a.conf" "$B/relay-b1.conf" "$B/relay-b2.conf"

	setup_prosody hqa hq.a.example 127.0.1.31 127.0.1.35 "$B/relay-a.conf" 127.0.1.10 &&
		setup_prosody opsa ops.a.example 127.0.1.32 127.0.1.36 "$B/relay-a.conf" 127.0.1.10 &&
		setup_prosody hqb hq.b.example 127.0.1.41 127.0.1.45 "$B/relay-b1.conf" \
			relay-b1.lab=127.0.1.20 relay-b2.lab=127.0.1.21 &&
		setup_prosody labb lab.b.example 127.0.1.42 127.0.1.46 "$B/relay-b1.conf" \
			relay-b1.lab=127.0.1.20 relay-b2.lab=127.0.1.21 ||
		{ wait_registrations; lab_fail boundary-setup "leaf setup failed"; return; }
	wait_registrations || { lab_fail boundary-setup "prosodyctl register failed"; return; }
	if ! start_relay a "$NS_A" "$B/relay-a.conf" 127.0.1.10 ||
		! start_relay b1 "$NS_B" "$B/relay-b1.conf" 127.0.1.20 ||
		! start_relay b2 "$NS_B" "$B/relay-b2.conf" 127.0.1.21 ||
		! start_prosody hqa "$NS_A" 127.0.1.31 127.0.1.35 ||
		! start_prosody opsa "$NS_A" 127.0.1.32 127.0.1.36 ||
		! start_prosody hqb "$NS_B" 127.0.1.41 127.0.1.45 ||
		! start_prosody labb "$NS_B" 127.0.1.42 127.0.1.46; then
		lab_fail boundary-start "the boundary did not start"
		return
	fi
	log "boundary up in $(ms_since "$t0")"

	sep=""
	can_connect "$NS_A" 127.0.1.41 5269 && sep="$sep A->hq.b-leaf-reachable"
	can_connect "$NS_A" 127.0.1.20 5269 && sep="$sep A->relay-B-inside-reachable"
	can_connect "$NS_B" 127.0.1.31 5269 && sep="$sep B->hq.a-leaf-reachable"
	can_connect "$NS_A" 192.0.2.2 5269 || sep="$sep A-cannot-reach-B1-on-DMZ"
	can_connect "$NS_B" 192.0.2.1 5269 || sep="$sep B-cannot-reach-A-on-DMZ"
	can_connect "$NS_B" 127.0.1.20 5269 && sep="$sep B1-inside-reachable-in-enclave-B"
	can_connect "$NS_B" 127.0.1.21 5269 || sep="$sep B2-inside-unreachable"
	if [ -z "$sep" ]; then
		lab_ok boundary-separation "enclave A reaches enclave B only at relay B's DMZ addresses, and the reverse; in enclave B only B2's inside address answers"
	else
		lab_fail boundary-separation "$sep"
	fi

		# One stanza hq.a -> hq.b first: relay A's trunk link then goes to B1,
	# its preferred address, before B2 opens a link of its own toward A,
	# so which instance carries enclave A's traffic is fixed.
	client warm "$NS_A" loop --login u@hq.a.example=127.0.1.31 --to u@hq.b.example --window 2
	clients_wait
	t1=$(lab_now_ms)
	mkdir -p "$B/barrier"
	tag=boundary-$(od -An -tx1 -N4 /dev/urandom | tr -d ' \n')
	all="--all u@hq.a.example --all u@ops.a.example --all u@hq.b.example --all u@lab.b.example"
	# shellcheck disable=SC2086
	client ba "$NS_A" mesh --name a --barrier "$B/barrier" --parties 2 --tag "$tag" \
		--login u@hq.a.example=127.0.1.31 --login u@ops.a.example=127.0.1.32 $all
	# shellcheck disable=SC2086
	client bb "$NS_B" mesh --name b --barrier "$B/barrier" --parties 2 --tag "$tag" \
		--login u@hq.b.example=127.0.1.41 --login u@lab.b.example=127.0.1.42 $all
	clients_wait
	log "boundary mesh: $(ms_since "$t1")"
	mesh_cases boundary-mesh "$top/client-ba.out" "$top/client-bb.out"

	al=$B/relay-a.conf.log b1l=$B/relay-b1.conf.log b2l=$B/relay-b2.conf.log
	miss=""
	m=$(multihop hqa-hqb "$al" "$b1l" hq.a.example hq.b.example) || miss="$miss$m"
	m=$(multihop hqb-hqa "$b2l" "$al" hq.b.example hq.a.example) || miss="$miss$m"
	m=$(multihop opsa-labb "$al" "$b1l" ops.a.example lab.b.example) || miss="$miss$m"
	if [ -z "$miss" ]; then
		lab_ok boundary-multihop-dialback "hq.a->hq.b, ops.a->lab.b (A, B1) and hq.b->hq.a (B2, A): every hop authenticated on its own ($([ "$TRUNK_LINK" = 1 ] && echo 'relay hop: trunk link' || echo dialback))"
	else
		lab_fail boundary-multihop-dialback "missing:$miss"
		grep -hE 'event=(dialback|established|stream-error|peer-stream-error|bounce)' "$al" "$b1l" "$b2l" | tail -n 20 | sed 's/^/#   /'
	fi

	# B2 minted the key of its stream hq.b -> hq.a; relay A asked B1 (its
	# peer relay-b); B1 never had that stream and answered valid. (Not on
	# trunk links: there the relays authenticate each other by certificate.)
	why=""
	if [ "$TRUNK_LINK" = 1 ]; then
		echo "skip scaleout-b2-key-answered-by-b1: trunk links, no dialback between the relays"
	else
		grep -qE "dir=out .*event=established from=hq.b.example to=hq.a.example .*auth=dialback" "$b2l" ||
			why="$why no-B2-stream-hq.b->hq.a"
		grep -qE "dir=out .*event=established from=hq.b.example to=hq.a.example" "$b1l" &&
			why="$why B1-had-the-stream-itself"
		# (B2's connections leave from 192.0.2.2 like B1's: the source address
		# does not tell them apart; B1 not having the stream does)
		grep -qE "dir=in .*event=dialback-valid from=hq.b.example to=hq.a.example" "$al" ||
			why="$why A-did-not-accept-it"
		grep -qE "dir=out peer=192\.0\.2\.2:5269 .*event=dialback-verify-sent from=hq.a.example to=hq.b.example" "$al" ||
			why="$why A-did-not-ask-B1"
		grep -qE "event=dialback-verify-answered from=hq.a.example to=hq.b.example valid=yes" "$b1l" ||
			why="$why B1-did-not-answer-valid"
		if [ -z "$why" ]; then
			lab_ok scaleout-b2-key-answered-by-b1 "hq.b's stream landed on B2 (SRV, B1 unreachable from enclave B); relay A's db:verify went to B1, which answered valid for B2's key"
		else
			lab_fail scaleout-b2-key-answered-by-b1 "$why"
		fi
	fi
	# B1 minted the key of hq.a -> hq.b (relay A's peer is B1); Prosody
	# hq.b verified it through its SRV records, which reach only B2.
	why=""
	grep -qE "dir=out .*event=established from=hq.a.example to=hq.b.example .*auth=dialback" "$b1l" ||
		why="$why no-B1-stream-hq.a->hq.b"
	grep -qE "dir=out .*event=established from=hq.a.example to=hq.b.example" "$b2l" &&
		why="$why B2-had-the-stream-itself"
	grep -qE "event=dialback-verify-answered from=hq.b.example to=hq.a.example valid=yes" "$b2l" ||
		why="$why B2-did-not-answer-valid"
	if [ -z "$why" ]; then
		lab_ok scaleout-b1-key-answered-by-b2 "B1 carried hq.a -> hq.b; Prosody hq.b's db:verify (SRV: B1, B2 at equal priority) reached B2, which answered valid for B1's key"
	else
		lab_fail scaleout-b1-key-answered-by-b2 "$why"
	fi

	n1=$(($(conns "$NS_A" relay-a 192.0.2.2:5269) + $(conns "$NS_B" relay-b1 192.0.2.1:5269)))
	n2=$(($(conns "$NS_A" relay-a 192.0.2.3:5269) + $(conns "$NS_B" relay-b2 192.0.2.1:5269)))
	if [ "$TRUNK_LINK" = 1 ]; then
		p1=$(trunk_pairs "$b1l") p2=$(trunk_pairs "$b2l")
		p1=$((p1 + $(grep -h "event=trunk-pair .*result=valid" "$al" | grep -c "peer=192\.0\.2\.2:5269")))
	else
		p1=$(($(pairs_out "$al" '192\.0\.2\.2') + $(pairs_out "$b1l" '192\.0\.2\.1')))
		p2=$(($(pairs_out "$al" '192\.0\.2\.3') + $(pairs_out "$b2l" '192\.0\.2\.1')))
	fi
	fig="A<->B1: $n1 TCP connection(s), $p1 domain pair(s); A<->B2: $n2 connection(s), $p2 pair(s)"
	if [ "$TRUNK_LINK" = 1 ]; then
		if [ "$n1" -le 1 ] && [ "$n2" -le 1 ] && [ $((n1 + n2)) -ge 1 ]; then
			lab_ok boundary-relay-connections "$fig (trunk links: at most one per relay pair)"
		else
			lab_fail boundary-relay-connections "$fig; trunk links should be one per relay pair"
		fi
	elif [ $((n1 + n2)) -ge 1 ]; then
		lab_ok boundary-relay-connections "$fig (no trunk links in this relay: not asserted)"
	else
		lab_fail boundary-relay-connections "$fig: no connection across the DMZ"
	fi

	# Routing loop: A -> B -> A for loop.example.
	fa=$(grep -c 'event=forward.* to=loop.example' "$al") fb=$(($(grep -c 'event=forward.* to=loop.example' "$b1l") + $(grep -c 'event=forward.* to=loop.example' "$b2l")))
	client loop "$NS_A" loop --login u@hq.a.example=127.0.1.31 --to nobody@loop.example --window 8
	clients_wait
	line=$(grep '^loop ' "$top/client-loop.out" | tail -n 1)
	fa=$(($(grep -c 'event=forward.* to=loop.example' "$al") - fa))
	fb=$(($(grep -c 'event=forward.* to=loop.example' "$b1l") + $(grep -c 'event=forward.* to=loop.example' "$b2l") - fb))
	nerr=$(echo "$line" | sed -n 's/.*errors=\([0-9]*\).*/\1/p')
	detail="$line; forwards toward loop.example: relay A $fa, relay B $fb"
	if [ "$nerr" = 1 ] && [ $((fa + fb)) -le 16 ]; then
		lab_ok routing-loop "$detail"
	else
		lab_fail routing-loop "${detail:-no result: $(tail -n 2 "$top/client-loop.out" | tr '\n' ' ')}"
		grep -hE 'loop.example' "$al" "$b1l" "$b2l" | tail -n 12 | sed 's/^/#   /'
	fi

	if [ "$FAILOVER" = 1 ]; then
		# B1 dies (SIGKILL: no drain); its streams break, relay A's next
		# stanza for enclave B must go to the second address, B2.
		b1pid=$(lab_pid_of relay-b1)
		nb2=$(wc -l <"$b2l")
		kill -KILL "$b1pid" 2>/dev/null
		wait "$b1pid" 2>/dev/null
		rm -f "$B/barrier"/*
		tag=failover-$(od -An -tx1 -N4 /dev/urandom | tr -d ' \n')
		client fa "$NS_A" mesh --name a --barrier "$B/barrier" --parties 2 --tag "$tag" \
			--login u@ops.a.example=127.0.1.32 --all u@ops.a.example --all u@hq.b.example
		client fb "$NS_B" mesh --name b --barrier "$B/barrier" --parties 2 --tag "$tag" \
			--login u@hq.b.example=127.0.1.41 --all u@ops.a.example --all u@hq.b.example
		clients_wait
		if grep -q '^ok pair u@ops.a.example -> u@hq.b.example' "$top/client-fb.out" &&
			tail -n "+$((nb2 + 1))" "$b2l" |
						grep -qE "dir=(in|out) peer=192\.0\.2\.1:[0-9]+ .*event=(dialback-valid|trunk-pair) from=ops.a.example to=hq.b.example"; then
			lab_ok failover "B1 ($b1pid) killed: ops.a -> hq.b went to B2, relay A's second address"
		else
			lab_fail failover "after killing B1: $(grep -h 'pair u@ops.a.example -> u@hq.b.example' "$top/client-fb.out" "$top/client-fa.out" | head -n 1)"
		fi
	else
		echo "skip failover: not implemented (xtrunkd -k lists no peers.[].addresses)"
	fi
	if [ "$FAILOVER" = 1 ]; then relays_alive boundary-relays-alive a b2
	else relays_alive boundary-relays-alive a b1 b2; fi
	log "boundary total $(ms_since "$t0")"
	lab_stop
	net_down
}

tstart=$(lab_now_ms)
# shellcheck disable=SC2034  # read by ejabberd.sh
EJ_CA_CERT=$top/ca/ca.pem EJ_CA_KEY=$top/ca/ca.key EJ_ISSUER=xtrunkctl EJ_XTRUNKCTL=$XTRUNKCTL
if ! pki p1.star.example p2.star.example q1.far.example centre.relay.example onward.relay.example \
	hq.a.example ops.a.example hq.b.example lab.b.example relay-a.dmz.example relay-b.dmz.example; then
	lab_fail pki "xtrunkctl ca-create/issue failed"
	phases=""
fi
log "PKI (xtrunkctl ca-create, issue): $(ms_since "$tstart")"
for ph in $phases; do
	case "$ph" in
	star) star ;;
	boundary) boundary ;;
	*) lab_fail "phase-$ph" "unknown phase (star, boundary)" ;;
	esac
done
log "total $(ms_since "$tstart")"
if [ "$LAB_FAILED" -ne 0 ]; then
	echo "lab directory kept: $top"
elif [ "${LAB_KEEP:-0}" = 1 ]; then
	echo "lab directory kept: $top"
else
	keep=0
fi
reported=1
lab_summary
[ "$LAB_FAILED" -eq 0 ]
