#!/bin/sh
# xtrunk integration test: ejabberd (e.example) <-> relay <-> Prosody A (a.example).
#
#   sh test/integration/ejabberd.sh XTRUNKD     # through the relay
#   sh test/integration/ejabberd.sh --direct    # baseline: no relay, the two
#                                               # servers federate directly
#
# Uses test/lab/lab.sh (Prosody A, its dnsmasq, the relay, the CA, the
# accounts) and test/lab/ejabberd.sh (ejabberd 23.01 on 127.0.0.5, its own
# dnsmasq on 127.0.0.15:53, private epmd, private mount namespace). lab.sh
# knows nothing about e.example, so after lab_setup this script adds to the
# files lab_setup generated (not to lab.sh):
#   $LAB_DIR/dns-a.conf  e.example A + SRV -> the relay 127.0.0.10 (direct
#                        mode: ejabberd itself, 127.0.0.5)
#   $LAB_DIR/relay.conf  peer leaf-e (127.0.0.5:5269) and route e.example
# ejabberd's DNS sends a.example to the relay (direct mode: to 127.0.0.2).
# s2s authentication is dialback in both directions: ejabberd does not trust
# the lab CA, the relay's certificate is for relay.lab, and in direct mode
# Prosody A does not trust the lab CA (LAB_TRUST_CA=0).
#
# Cases (one line each, ok NAME / FAIL NAME, then "N passed, M failed"):
#   e-to-a-roundtrip  erin@e.example -> alice@a.example: message, IQ ping to
#                     the full JID (result back), directed presence
#   a-to-e-roundtrip  the same from alice to erin
#   relay-carried     (relay mode) the relay log shows forwarded stanzas
#                     for both directions
#   relay-alive       (relay mode) the relay still runs
#   ejabberd-alive    the ejabberd VM still runs, no crash reports in its log
# Exit 0 only if all pass. Whole run bounded by a watchdog (200 s).
# Environment: LAB_KEEP=1 keeps the lab directory (kept anyway on failure),
# LAB_CLIENT_TIMEOUT (default 20 s per client run), EJ_LOGLEVEL (info).
set -u

here=$(cd "$(dirname "$0")" && pwd)
LAB_LIBDIR=$(cd "$here/../lab" && pwd)
# shellcheck disable=SC2034  # read by ejabberd.sh
EJ_LIBDIR=$LAB_LIBDIR

mode=relay
XTRUNKD=""
case "${1:-}" in
--direct) mode=direct ;;
*) XTRUNKD=${1:-} ;;
esac
# Dialback leaf to leaf in direct mode (lab.sh's default 1 lets Prosody
# verify the lab certificates and use SASL EXTERNAL).
[ "$mode" = direct ] && : "${LAB_TRUST_CA:=0}"

# shellcheck source=../lab/lab.sh
. "$LAB_LIBDIR/lab.sh"
# shellcheck source=../lab/ejabberd.sh
. "$LAB_LIBDIR/ejabberd.sh"

RELAY_ADDR=127.0.0.10
A_ADDR=127.0.0.2
E_ADDR=$EJ_ADDR
E_USER=erin@$EJ_DOMAIN
A_USER=alice@a.example
# shellcheck disable=SC2034  # read by ejabberd.sh
EJ_ACCOUNTS=${E_USER%@*} EJ_PW=$LAB_PW

if [ "$mode" = relay ]; then
	if [ -z "$XTRUNKD" ] || [ ! -f "$XTRUNKD" ] || [ ! -x "$XTRUNKD" ]; then
		lab_fail relay-binary "relay binary '${XTRUNKD}' missing or not executable; usage: ejabberd.sh XTRUNKD | --direct"
		lab_summary
		exit 1
	fi
	XTRUNKD=$(cd "$(dirname "$XTRUNKD")" && pwd)/$(basename "$XTRUNKD")
fi

dir=$(mktemp -d /tmp/xtrunk-ej.XXXXXX) || exit 1
keep=1
reported=0
CLIENT_PID=""
cleanup() {
	rc=$?
	trap - EXIT
	lab_watchdog_stop
	if [ -n "$CLIENT_PID" ]; then
		kill -TERM "$CLIENT_PID" 2>/dev/null
		wait "$CLIENT_PID" 2>/dev/null
	fi
	ejabberd_stop
	lab_stop
	if [ "$keep" = 0 ]; then
		rm -rf "$dir"
	elif [ "$reported" = 0 ]; then
		echo "ejabberd test: lab directory kept: $dir" >&2
	fi
	exit $rc
}
trap cleanup EXIT
trap 'echo "ejabberd test: interrupted" >&2; exit 130' INT TERM HUP
lab_watchdog 200

# Adds e.example to the generated DNS and relay configs (lab.sh untouched).
patch_lab() {
	if [ "$mode" = relay ]; then
		_target=$RELAY_ADDR
	else
		_target=$E_ADDR
	fi
	for _l in a b; do
		{
			echo "# added by test/integration/ejabberd.sh"
			echo "host-record=$EJ_DOMAIN,$_target"
			echo "srv-host=_xmpp-server._tcp.$EJ_DOMAIN,$EJ_DOMAIN,5269,0,1"
		} >>"$dir/dns-$_l.conf" || return 1
	done
	[ "$mode" = relay ] || return 0
	_c="$dir/relay.conf"
	awk -v peer="  { name = \"leaf-e\"; host = \"$E_ADDR\"; port = 5269; tls = \"required\"; }," \
	    -v route="  { domain = \"$EJ_DOMAIN\"; peer = \"leaf-e\"; }," '
		{ print }
		/^peers[ \t]*=[ \t]*\([ \t]*$/ { print peer; np++ }
		/^routes[ \t]*=[ \t]*\([ \t]*$/ { print route; nr++ }
		END { exit (np == 1 && nr == 1) ? 0 : 1 }
	' "$_c" >"$_c.new" && mv "$_c.new" "$_c" && chmod 600 "$_c" ||
		{ lab_die "cannot add leaf-e/e.example to $_c (its peers/routes layout changed?)"; return 1; }
}

# ej_case NAME SUBCOMMAND --from JID --to JID — xclient.py with explicit
# c2s addresses (lab.sh's lab_c2s_addr does not know e.example).
ej_case() {
	_name=$1 _sub=$2 _from=$4 _to=$6
	_tmo=${LAB_CLIENT_TIMEOUT:-20}
	_fh=$A_ADDR _th=$A_ADDR
	[ "${_from#*@}" = "$EJ_DOMAIN" ] && _fh=$E_ADDR
	[ "${_to#*@}" = "$EJ_DOMAIN" ] && _th=$E_ADDR
	timeout -k 3 $((_tmo + 10)) "$LAB_PYTHON" "$LAB_LIBDIR/xclient.py" "$_sub" \
		--from "$_from" --to "$_to" --pw "$LAB_PW" --ca "$dir/ca.pem" \
		--timeout "$_tmo" --from-host "$_fh" --to-host "$_th" >"$dir/client-$_name.out" 2>&1 &
	CLIENT_PID=$!
	wait "$CLIENT_PID"
	_rc=$?
	CLIENT_PID=""
	_line=$(grep -E '^(ok|FAIL) ' "$dir/client-$_name.out" | tail -n 1)
	if [ $_rc -eq 0 ]; then
		lab_ok "$_name" "${_line#*: }"
	else
		[ -n "$_line" ] || _line="client exit $_rc: $(tail -n 3 "$dir/client-$_name.out" | tr '\n' ' ')"
		lab_fail "$_name" "${_line#FAIL }"
	fi
}

# The lab's addresses are fixed: another lab run (run.sh, ...) on this
# machine would answer in place of ours. Wait (bounded) until they are free.
ej_lab_busy() {
	for _s in "t $A_ADDR:5222" "t $A_ADDR:5269" "t $RELAY_ADDR:5269" "t $E_ADDR:5222" \
	          "t $E_ADDR:5269" "t $E_ADDR:$EJ_EPMD_PORT" "u $EJ_DNS_ADDR:53" \
	          "u 127.0.0.12:$LAB_DNS_PORT" "u 127.0.0.13:$LAB_DNS_PORT"; do
		ss "-Hl${_s%% *}n" "src ${_s#* }" 2>/dev/null | grep -q . && { echo "${_s#* }"; return 0; }
	done
	return 1
}
_bend=$(($(date +%s) + ${LAB_BUSY_WAIT:-60}))
while _busy=$(ej_lab_busy); do
	if [ "$(date +%s)" -ge "$_bend" ]; then
		lab_fail lab-free "$_busy is in use (another lab running?) after ${LAB_BUSY_WAIT:-60} s"
		break
	fi
	sleep 1
done

t0=$(lab_now_ms)
started=0
# shellcheck disable=SC2034  # read by ejabberd.sh
if [ "$mode" = relay ]; then
	EJ_PEERS="a.example=$RELAY_ADDR b.example=$RELAY_ADDR"
else
	EJ_PEERS="a.example=$A_ADDR b.example=127.0.0.3"
fi
if [ "$LAB_FAILED" = 0 ] && lab_setup "$dir" "$mode" && patch_lab && ejabberd_setup "$dir/e" &&
   { [ "$mode" = direct ] || lab_start_relay "$XTRUNKD"; } &&
   lab_start_prosody a && ejabberd_start; then
	started=1
	echo "# lab up in $(($(lab_now_ms) - t0)) ms ($mode${XTRUNKD:+, relay $XTRUNKD}, lab $dir)"
else
	lab_fail lab-start "the lab did not start; see the logs below"
fi

for c in "e-to-a-roundtrip roundtrip --from $E_USER --to $A_USER" \
         "a-to-e-roundtrip roundtrip --from $A_USER --to $E_USER"; do
	# shellcheck disable=SC2086
	set -- $c
	if [ "$started" = 1 ]; then
		_t=$(lab_now_ms)
		ej_case "$@"
		echo "# $1: $(($(lab_now_ms) - _t)) ms including client login"
	else
		lab_fail "$1" "not run: the lab did not start"
	fi
done

if [ "$started" = 1 ]; then
	if [ "$mode" = relay ]; then
		_fw=$(grep -c 'event=forward' "$dir/relay.log")
		_ea=$(grep 'event=forward' "$dir/relay.log" | grep -c "from=[^ ]*${EJ_DOMAIN}[^ ]* to=[^ ]*a\.example")
		_ae=$(grep 'event=forward' "$dir/relay.log" | grep -c "from=[^ ]*a\.example[^ ]* to=[^ ]*${EJ_DOMAIN}")
		if [ "$_ea" -gt 0 ] && [ "$_ae" -gt 0 ]; then
			lab_ok relay-carried "$_fw event=forward lines: $_ea e->a, $_ae a->e"
		else
			lab_fail relay-carried "$_fw event=forward lines, $_ea e->a, $_ae a->e"
		fi
		if lab_alive "$(lab_pid_of relay)"; then
			lab_ok relay-alive
		else
			lab_fail relay-alive "the relay exited during the test"
		fi
	fi
	_crash=$(grep -ciE 'crash|\[error\]' "$dir/e/log/ejabberd.log")
	if ! ej_alive "$(ej_pid_of ejabberd)"; then
		lab_fail ejabberd-alive "the ejabberd VM exited during the test"
	elif [ "$_crash" -gt 0 ]; then
		lab_fail ejabberd-alive "$_crash crash/error lines in $dir/e/log/ejabberd.log"
	else
		lab_ok ejabberd-alive
	fi
fi

echo "# total $(($(lab_now_ms) - t0)) ms"
if [ "$LAB_FAILED" -ne 0 ]; then
	lab_logs_tail 40
	for _f in "$dir/e/log/error.log" "$dir/e/log/ejabberd.log"; do
		[ -s "$_f" ] || continue
		echo "----- ejabberd: tail -n 40 $_f"
		tail -n 40 "$_f"
	done
	echo "lab directory kept: $dir"
elif [ "${LAB_KEEP:-0}" = 1 ]; then
	echo "lab directory kept: $dir"
else
	keep=0
fi
reported=1
lab_summary
[ "$LAB_FAILED" -eq 0 ]
