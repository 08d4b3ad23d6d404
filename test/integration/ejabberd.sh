#!/bin/sh
# xtrunk integration test: ejabberd (e.example) <-> relay <-> Prosody A (a.example).
#
#   sh test/integration/ejabberd.sh XTRUNKD             # both passes: dialback,
#                                                       # then certificates only
#   sh test/integration/ejabberd.sh XTRUNKD --dialback  # the dialback pass only
#   sh test/integration/ejabberd.sh XTRUNKD --secure    # the certificate pass only
#   sh test/integration/ejabberd.sh --direct            # baseline: no relay, the
#                                                       # two servers federate
#                                                       # directly (dialback)
#
# Uses test/lab/lab.sh (Prosody A, its dnsmasq, the relay, the CA, the
# accounts) and test/lab/ejabberd.sh (ejabberd 23.01 on 127.0.0.5, its own
# dnsmasq on 127.0.0.15:53, private epmd, private mount namespace). lab.sh
# knows nothing about e.example, so after lab_setup this script adds to the
# files lab_setup generated (not to lab.sh):
#   $LAB_DIR/dns-a.conf  e.example A + SRV -> the relay 127.0.0.10 (direct
#                        mode: ejabberd itself, 127.0.0.5)
#   $LAB_DIR/relay.conf  peer leaf-e (127.0.0.5:5269; secure pass: with
#                        auth = "certificate") and route e.example
# ejabberd's DNS sends a.example to the relay (direct mode: to 127.0.0.2).
# Each pass has a lab of its own (/tmp/xtrunk-ej.XXXXXX/PASS), started and
# stopped in turn.
#
# Dialback pass (lab relay mode): s2s authentication is dialback in both
# directions: ejabberd does not trust the lab CA, the relay's certificate is
# for relay.lab, and in direct mode Prosody A does not trust the lab CA
# (LAB_TRUST_CA=0). Cases:
#   e-to-a-roundtrip  erin@e.example -> alice@a.example: message, IQ ping to
#                     the full JID (result back), directed presence
#   a-to-e-roundtrip  the same from alice to erin
#   relay-carried     (relay mode) the relay log shows forwarded stanzas
#                     for both directions
#   dialback-auth     (relay mode) the relay log shows dialback for e.example
#                     inbound and outbound, ejabberd's log an accepted
#                     inbound dialback (the contrast to the secure pass)
#   relay-alive       (relay mode) the relay still runs
#   ejabberd-alive    the ejabberd VM still runs, no crash reports in its log
#
# Secure pass (issue 3: certificates only, from the enclave CA): lab.sh in
# secure mode (enclave CA from xtrunkctl ca-create; Prosody A with a
# certificate from it and s2s_secure_auth = true; the relay issuing its
# certificates from it, trusting it, auth = "certificate" for its peers),
# ejabberd with a certificate from `xtrunkctl issue` (DNS-ID, no xmppAddr),
# ca_file = the enclave CA and no mod_s2s_dialback (EJ_DIALBACK=0: dialback
# neither offered nor accepted, outbound certificates verified strictly).
# Cases (same checks, prefixed secure-), plus:
#   secure-relay-auth     relay log: inbound SASL EXTERNAL from both leaves
#                         (event=sasl-success from=e.example / from=a.example
#                         ... auth=certificate), outbound streams to both
#                         established with auth=certificate, no auth=dialback
#   secure-ejabberd-auth  ejabberd log: "Accepted inbound s2s EXTERNAL
#                         authentication a.example -> e.example" and
#                         "Accepted outbound s2s EXTERNAL authentication
#                         e.example -> a.example"; no dialback, no "Failed"
#                         s2s authentication
#   secure-prosody-auth   Prosody A accepted SASL EXTERNAL for e.example
# Then ejabberd is restarted trusting another CA (ca_file; its own
# certificate unchanged) and the relay with auth = "any" for leaf-e (it may
# fall back to dialback):
#   secure-untrusted-a-to-e-refused  alice -> erin must not cross, alice gets
#                         an error, ejabberd logs "Failed inbound s2s EXTERNAL
#                         authentication a.example -> e.example" and accepts no
#                         dialback (the relay's fallback db:result is answered
#                         with a stream error)
#   secure-untrusted-e-to-a-refused  erin -> alice must not cross, erin gets an
#                         error, ejabberd logs a failed outbound s2s (the
#                         relay's certificate is rejected; no dialback fallback)
# The last line is exactly "N passed, M failed"; exit 0 only if all passed.
# Whole run bounded by a watchdog (230 s, both passes); typical: 15 s.
# Environment: LAB_KEEP=1 keeps the lab directory (kept anyway on failure),
# LAB_CLIENT_TIMEOUT (default 20 s per client run), EJ_LOGLEVEL (info),
# LAB_XTRUNKCTL (default: xtrunkctl beside XTRUNKD), EJ_NEG_TIMEOUT (default
# 10 s per client run of the secure-untrusted cases).
set -u

here=$(cd "$(dirname "$0")" && pwd)
LAB_LIBDIR=$(cd "$here/../lab" && pwd)
# shellcheck disable=SC2034  # read by ejabberd.sh
EJ_LIBDIR=$LAB_LIBDIR

usage="usage: ejabberd.sh XTRUNKD [--dialback|--secure] | --direct"
mode=relay
passes="dialback secure"
XTRUNKD=""
for _arg in "$@"; do
	case "$_arg" in
	--direct) mode=direct passes=direct ;;
	--dialback) passes=dialback ;;
	--secure) passes=secure ;;
	-*) echo "$usage" >&2; exit 2 ;;
	*) XTRUNKD=$_arg ;;
	esac
done

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
		lab_fail relay-binary "relay binary '${XTRUNKD}' missing or not executable; $usage"
		lab_summary
		exit 1
	fi
	XTRUNKD=$(cd "$(dirname "$XTRUNKD")" && pwd)/$(basename "$XTRUNKD")
	if [ -z "${LAB_XTRUNKCTL:-}" ] && [ -x "$(dirname "$XTRUNKD")/xtrunkctl" ]; then
		LAB_XTRUNKCTL=$(dirname "$XTRUNKD")/xtrunkctl
	fi
	# shellcheck disable=SC2034  # read by ejabberd.sh
	EJ_XTRUNKCTL=${LAB_XTRUNKCTL:-}
fi

top=$(mktemp -d /tmp/xtrunk-ej.XXXXXX) || exit 1
chmod 755 "$top"
keep=1
reported=0
CLIENT_PID=""
cleanup() {
	rc=$?
	trap - EXIT
	trap '' PIPE   # output may go to a closed pipe: clean up regardless
	lab_watchdog_stop
	if [ -n "$CLIENT_PID" ]; then
		kill -TERM "$CLIENT_PID" 2>/dev/null
		wait "$CLIENT_PID" 2>/dev/null
	fi
	ejabberd_stop
	lab_stop
	if [ "$keep" = 0 ]; then
		rm -rf "$top"
	elif [ "$reported" = 0 ]; then
		echo "ejabberd test: lab directory kept: $top" >&2
	fi
	exit $rc
}
trap cleanup EXIT
trap 'echo "ejabberd test: interrupted" >&2; exit 130' INT TERM HUP
trap 'exit 141' PIPE   # e.g. "| head": still end every process we started
lab_watchdog 230

ms_since() { echo "$(($(lab_now_ms) - $1)) ms"; }

# Adds e.example to the generated DNS and relay configs (lab.sh untouched).
patch_lab() { # PASS
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
		} >>"$LAB_DIR/dns-$_l.conf" || return 1
	done
	[ "$mode" = relay ] || return 0
	_auth=""
	[ "$1" = secure ] && _auth=' auth = "certificate";'
	_c="$LAB_DIR/relay.conf"
	awk -v peer="  { name = \"leaf-e\"; host = \"$E_ADDR\"; port = 5269; tls = \"required\";$_auth }," \
	    -v route="  { domain = \"$EJ_DOMAIN\"; peer = \"leaf-e\"; }," '
		{ print }
		/^peers[ \t]*=[ \t]*\([ \t]*$/ { print peer; np++ }
		/^routes[ \t]*=[ \t]*\([ \t]*$/ { print route; nr++ }
		END { exit (np == 1 && nr == 1) ? 0 : 1 }
	' "$_c" >"$_c.new" && mv "$_c.new" "$_c" && chmod 600 "$_c" ||
		{ lab_die "cannot add leaf-e/e.example to $_c (its peers/routes layout changed?)"; return 1; }
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
ej_wait_free() { # NAME-PREFIX
	_bend=$(($(date +%s) + ${LAB_BUSY_WAIT:-60}))
	while _busy=$(ej_lab_busy); do
		if [ "$(date +%s)" -ge "$_bend" ]; then
			lab_fail "${1}lab-free" "$_busy is in use (another lab running?) after ${LAB_BUSY_WAIT:-60} s"
			return 1
		fi
		sleep 0.2
	done
}

# client NAME TIMEOUT SUBCOMMAND FROM TO — xclient (background, PID known,
# bounded) with explicit c2s addresses; output in $LAB_DIR/client-NAME.out,
# result line in $client_line; returns the client's exit status.
client_line=""
client() {
	_cn=$1 _ct=$2 _cs=$3 _cf=$4 _cto=$5
	_fh=$A_ADDR _th=$A_ADDR
	[ "${_cf#*@}" = "$EJ_DOMAIN" ] && _fh=$E_ADDR
	[ "${_cto#*@}" = "$EJ_DOMAIN" ] && _th=$E_ADDR
	timeout -k 3 $((_ct + 10)) "$LAB_PYTHON" "$LAB_LIBDIR/xclient.py" "$_cs" \
		--from "$_cf" --to "$_cto" --pw "$LAB_PW" --ca "$LAB_DIR/ca.pem" \
		--timeout "$_ct" --from-host "$_fh" --to-host "$_th" >"$LAB_DIR/client-$_cn.out" 2>&1 &
	CLIENT_PID=$!
	wait "$CLIENT_PID"
	_crc=$?
	CLIENT_PID=""
	client_line=$(grep -E '^(ok|FAIL) ' "$LAB_DIR/client-$_cn.out" | tail -n 1)
	[ -n "$client_line" ] || client_line="client exit $_crc: $(tail -n 3 "$LAB_DIR/client-$_cn.out" | tr '\n' ' ')"
	client_line=${client_line#* -> *: }
	return $_crc
}

# ej_log_wait FILE SKIP PATTERN [SECONDS] — ejabberd's logger writes
# asynchronously, a line may land after the client has its answer: wait
# (bounded, default 3 s) for a line after the first SKIP lines of FILE that
# matches PATTERN (grep -E).
ej_log_wait() {
	_wend=$(($(lab_now_ms) + ${4:-3} * 1000))
	while ! tail -n "+$(($2 + 1))" "$1" 2>/dev/null | grep -qE "$3"; do
		[ "$(lab_now_ms)" -ge "$_wend" ] && return 1
		sleep 0.05
	done
}

# ej_case NAME SUBCOMMAND --from JID --to JID — one ok/FAIL line.
ej_case() {
	if client "$1" "${LAB_CLIENT_TIMEOUT:-20}" "$2" "$4" "$6"; then
		lab_ok "$1" "$client_line"
	else
		lab_fail "$1" "$client_line"
	fi
}

# Secure pass: every hop authenticated by certificate, as the relay, ejabberd
# and Prosody A saw it.
secure_auth_checks() {
	_log=$LAB_DIR/relay.log
	_missing=""
	for _pair in "$EJ_DOMAIN a.example" "a.example $EJ_DOMAIN"; do
		# shellcheck disable=SC2086
		set -- $_pair
		grep -qE "dir=in .*event=sasl-success from=$1 to=$2 auth=certificate" "$_log" ||
			_missing="$_missing inbound-sasl($1->$2)"
		grep -qE "dir=out .*event=established from=$1 to=$2 .*auth=certificate" "$_log" ||
			_missing="$_missing outbound-certificate($1->$2)"
	done
	_ndb=$(grep -c 'auth=dialback' "$_log")
	_ndbe=$(grep -cE 'event=dialback' "$_log")
	if [ -z "$_missing" ] && [ "$_ndb" -eq 0 ] && [ "$_ndbe" -eq 0 ]; then
		lab_ok secure-relay-auth "$(grep -c 'event=sasl-success.*auth=certificate' "$_log") sasl-success auth=certificate (e.example: $(grep -c "event=sasl-success from=$EJ_DOMAIN .*auth=certificate" "$_log")), $(grep -c 'event=established.*auth=certificate' "$_log") established auth=certificate (to e.example: $(grep -c "event=established from=[^ ]* to=$EJ_DOMAIN .*auth=certificate" "$_log")), 0 dialback"
	else
		lab_fail secure-relay-auth "missing:${_missing:- none}; $_ndb auth=dialback line(s), $_ndbe event=dialback* line(s)"
		grep -E 'event=(sasl|established|dialback|certificate|tls|stream-error|peer-stream-error|next-hop|bounce)' "$_log" |
			tail -n 20 | sed 's/^/#   /'
	fi

	_ej=$LAB_DIR/e/log/ejabberd.log
	ej_log_wait "$_ej" 0 "Accepted inbound s2s EXTERNAL authentication a\.example -> $EJ_DOMAIN"
	ej_log_wait "$_ej" 0 "Accepted outbound s2s EXTERNAL authentication $EJ_DOMAIN -> a\.example"
	_in=$(grep -c "Accepted inbound s2s EXTERNAL authentication a\.example -> $EJ_DOMAIN" "$_ej")
	_out=$(grep -c "Accepted outbound s2s EXTERNAL authentication $EJ_DOMAIN -> a\.example" "$_ej")
	_ejdb=$(grep -ciE 'Accepted (inbound|outbound) s2s dialback' "$_ej")
	_ejfail=$(grep -cE 'Failed (inbound|outbound) s2s|Failed to establish outbound s2s' "$_ej")
	if [ "$_in" -gt 0 ] && [ "$_out" -gt 0 ] && [ "$_ejdb" -eq 0 ] && [ "$_ejfail" -eq 0 ]; then
		lab_ok secure-ejabberd-auth "ejabberd accepted SASL EXTERNAL inbound a.example -> $EJ_DOMAIN ($_in) and outbound $EJ_DOMAIN -> a.example ($_out); 0 dialback, 0 failed"
	else
		lab_fail secure-ejabberd-auth "EXTERNAL accepted inbound $_in, outbound $_out; $_ejdb dialback, $_ejfail failed s2s line(s)"
		grep -E 's2s' "$_ej" | tail -n 12 | sed 's/^/#   /'
	fi

	if grep -q "Accepting SASL EXTERNAL identity from $EJ_DOMAIN" "$LAB_DIR/a/prosody.log"; then
		lab_ok secure-prosody-auth "Prosody A accepted SASL EXTERNAL for $EJ_DOMAIN (via the relay)"
	else
		lab_fail secure-prosody-auth "no 'Accepting SASL EXTERNAL identity from $EJ_DOMAIN' in $LAB_DIR/a/prosody.log"
	fi
}

# Secure pass, negative: ejabberd trusts another CA (so the relay's enclave
# certificates no longer verify there) and the relay may fall back to
# dialback toward it (leaf-e auth = "any"). Without mod_s2s_dialback nothing
# may cross in either direction, and ejabberd must not accept dialback.
secure_negative() {
	n_nt=$(lab_now_ms)
	n_ok=0
	n_x=${LAB_XTRUNKCTL:-$LAB_LIBDIR/../../build/xtrunkctl}
	ejabberd_stop
	rm -rf "$LAB_DIR/other-ca"
	if "$n_x" ca-create -o "$LAB_DIR/other-ca" -n "not the enclave CA" -d 1 >"$LAB_DIR/other-ca.log" 2>&1 &&
	   cp "$LAB_DIR/other-ca/ca.pem" "$LAB_DIR/e/ca.pem" &&
	   sed -i 's/\(name = "leaf-e";.*\)auth = "certificate";/\1auth = "any";/' "$LAB_DIR/relay.conf" &&
	   grep -q 'name = "leaf-e";.*auth = "any";' "$LAB_DIR/relay.conf" &&
	   lab_restart_relay "$XTRUNKD"; then
		n_acc=$EJ_ACCOUNTS
		EJ_ACCOUNTS=""   # registered already (the spool is kept)
		ejabberd_start && n_ok=1
		EJ_ACCOUNTS=$n_acc
	fi
	if [ "$n_ok" != 1 ]; then
		for n_c in secure-untrusted-a-to-e-refused secure-untrusted-e-to-a-refused; do
			lab_fail "$n_c" "not run: the relay or ejabberd did not restart"
		done
		return
	fi
	echo "# untrusted: ejabberd ca_file = another CA, relay leaf-e auth = any; restarted in $(ms_since "$n_nt")"
	n_ej=$LAB_DIR/e/log/ejabberd.log

	# a -> e: the relay's client certificate (a.example) does not verify at
	# ejabberd, so SASL EXTERNAL fails; dialback would be the relay's
	# fallback, ejabberd neither offers nor accepts it.
	n_ejm=$(wc -l <"$n_ej")
	n_t=$(lab_now_ms)
	client untrusted-a-e "${EJ_NEG_TIMEOUT:-10}" message "$A_USER" "$E_USER"
	n_rc=$?
	n_el=$(ms_since "$n_t")
	ej_log_wait "$n_ej" "$n_ejm" "Failed inbound s2s EXTERNAL authentication a\.example -> $EJ_DOMAIN"
	n_new=$(tail -n "+$((n_ejm + 1))" "$n_ej")
	n_ejdb=$(printf '%s\n' "$n_new" | grep -ciE 'Accepted inbound s2s dialback')
	n_ejf=$(printf '%s\n' "$n_new" | grep -E "Failed inbound s2s EXTERNAL authentication a\.example -> $EJ_DOMAIN" | head -n 1 | sed 's/.*: //')
	n_rl=$(grep -E "event=(sasl-failed|sasl-not-offered|dialback[a-z-]*|certificate-refused|next-hop-failed|peer-stream-error|stream-error|bounce) .*$EJ_DOMAIN|to=$EJ_DOMAIN.*event=(sasl-failed|dialback[a-z-]*)" "$LAB_DIR/relay.log" |
		sed 's/.*event=\([a-z-]*\).*/\1/' | head -n 5 | tr '\n' ' ' | sed 's/ $//; s/ / -> /g')
	if [ $n_rc -eq 0 ]; then
		lab_fail secure-untrusted-a-to-e-refused "the message crossed: $client_line; $n_el"
	elif ! printf '%s' "$client_line" | grep -q 'sender got error'; then
		lab_fail secure-untrusted-a-to-e-refused "no error came back to alice: $client_line; relay: $n_rl; $n_el"
	elif [ "$n_ejdb" -ne 0 ]; then
		lab_fail secure-untrusted-a-to-e-refused "ejabberd accepted dialback ($n_ejdb line(s)); $n_el"
	elif grep -q "event=forward kind=message from=a.example to=$EJ_DOMAIN" "$LAB_DIR/relay.log"; then
		lab_fail secure-untrusted-a-to-e-refused "the relay forwarded a message to $EJ_DOMAIN; $n_el"
	elif [ -z "$n_ejf" ]; then
		lab_fail secure-untrusted-a-to-e-refused "no 'Failed inbound s2s EXTERNAL authentication' in the ejabberd log; relay: $n_rl; client: $client_line; $n_el"
	else
		lab_ok secure-untrusted-a-to-e-refused "ejabberd: EXTERNAL failed ($n_ejf), no dialback; relay: $n_rl; client: ${client_line#sender got error }; $n_el"
	fi
	if [ $n_rc -eq 0 ] || [ "$LAB_FAILED" -ne "$_nf0" ]; then
		echo "#   relay log (e.example lines):"
		grep -E "$EJ_DOMAIN|127\.0\.0\.5" "$LAB_DIR/relay.log" | grep -v 'event=stanza' | tail -n 15 | sed 's/^/#     /'
		echo "#   ejabberd log (s2s lines):"
		printf '%s\n' "$n_new" | grep -E 's2s' | tail -n 8 | sed 's/^/#     /'
	fi

	# e -> a: ejabberd verifies the relay's certificate (for a.example)
	# against the other CA and, without dialback, gives up.
	n_nf1=$LAB_FAILED
	n_ejm=$(wc -l <"$n_ej")
	n_t=$(lab_now_ms)
	client untrusted-e-a "${EJ_NEG_TIMEOUT:-10}" message "$E_USER" "$A_USER"
	n_rc=$?
	n_el=$(ms_since "$n_t")
	ej_log_wait "$n_ej" "$n_ejm" "Failed (to establish )?outbound s2s .*$EJ_DOMAIN -> a\.example"
	n_new=$(tail -n "+$((n_ejm + 1))" "$n_ej")
	n_ejo=$(printf '%s\n' "$n_new" | grep -E "Failed (to establish )?outbound s2s .*$EJ_DOMAIN -> a\.example" | head -n 1 | sed 's/.*a\.example[^:]*: //' | cut -c1-120)
	n_ejacc=$(printf '%s\n' "$n_new" | grep -c "Accepted outbound s2s .*$EJ_DOMAIN -> a\.example")
	if [ $n_rc -eq 0 ]; then
		lab_fail secure-untrusted-e-to-a-refused "the message crossed: $client_line; $n_el"
	elif ! printf '%s' "$client_line" | grep -q 'sender got error'; then
		lab_fail secure-untrusted-e-to-a-refused "no error came back to erin: $client_line; $n_el"
	elif [ "$n_ejacc" -ne 0 ]; then
		lab_fail secure-untrusted-e-to-a-refused "ejabberd authenticated outbound to a.example; $n_el"
	elif grep -q "event=forward kind=message from=$EJ_DOMAIN to=a.example" "$LAB_DIR/relay.log"; then
		lab_fail secure-untrusted-e-to-a-refused "the relay forwarded a message from $EJ_DOMAIN; $n_el"
	elif [ -z "$n_ejo" ]; then
		lab_fail secure-untrusted-e-to-a-refused "no 'Failed ... outbound s2s' line in the ejabberd log; client: $client_line; $n_el"
	else
		lab_ok secure-untrusted-e-to-a-refused "ejabberd: outbound failed ($n_ejo); client: ${client_line#sender got error }; $n_el"
	fi
	if [ "$LAB_FAILED" -ne "$n_nf1" ]; then
		echo "#   ejabberd log (s2s lines):"
		printf '%s\n' "$n_new" | grep -E 's2s' | tail -n 8 | sed 's/^/#     /'
	fi
}

# run_pass PASS — dialback | secure | direct: its own lab in $top/PASS,
# started, tested, stopped.
failed_dirs=""
run_pass() {
	_pass=$1
	_pre=""
	[ "$_pass" = secure ] && _pre=secure-
	_f0=$LAB_FAILED
	# shellcheck disable=SC2034  # read by lab.sh and ejabberd.sh
	case "$_pass" in
	dialback) _labmode=relay EJ_TRUST_CA=0 EJ_DIALBACK=1 ;;
	secure) _labmode=secure EJ_TRUST_CA=1 EJ_DIALBACK=0 ;;
	direct) _labmode=direct EJ_TRUST_CA=0 EJ_DIALBACK=1 LAB_TRUST_CA=0 ;;
	esac
	# shellcheck disable=SC2034  # read by ejabberd.sh: a fresh CA choice per pass
	EJ_CA_CERT="" EJ_CA_KEY=""
	# shellcheck disable=SC2034  # read by ejabberd.sh
	if [ "$mode" = relay ]; then
		EJ_PEERS="a.example=$RELAY_ADDR b.example=$RELAY_ADDR"
	else
		EJ_PEERS="a.example=$A_ADDR b.example=127.0.0.3"
	fi
	_pt0=$(lab_now_ms)
	_started=0
	echo "# pass $_pass"
	if ej_wait_free "$_pre" && lab_setup "$top/$_pass" "$_labmode" && patch_lab "$_pass" &&
	   ejabberd_setup "$LAB_DIR/e" &&
	   { [ "$mode" = direct ] || lab_start_relay "$XTRUNKD"; } &&
	   lab_start_prosody a && ejabberd_start; then
		_started=1
		echo "# $_pass lab up in $(ms_since "$_pt0") ($_labmode${XTRUNKD:+, relay $XTRUNKD}, lab $LAB_DIR)"
	else
		lab_fail "${_pre}lab-start" "the $_pass lab did not start; see the logs below"
	fi

	for _c in "${_pre}e-to-a-roundtrip roundtrip --from $E_USER --to $A_USER" \
	          "${_pre}a-to-e-roundtrip roundtrip --from $A_USER --to $E_USER"; do
		# shellcheck disable=SC2086
		set -- $_c
		if [ "$_started" = 1 ]; then
			_pt=$(lab_now_ms)
			ej_case "$@"
			echo "# $1: $(ms_since "$_pt") including client login"
		else
			lab_fail "$1" "not run: the lab did not start"
		fi
	done

	if [ "$_started" = 1 ]; then
		if [ "$mode" = relay ]; then
			_fw=$(grep -c 'event=forward' "$LAB_DIR/relay.log")
			_ea=$(grep 'event=forward' "$LAB_DIR/relay.log" | grep -c "from=[^ ]*${EJ_DOMAIN}[^ ]* to=[^ ]*a\.example")
			_ae=$(grep 'event=forward' "$LAB_DIR/relay.log" | grep -c "from=[^ ]*a\.example[^ ]* to=[^ ]*${EJ_DOMAIN}")
			if [ "$_ea" -gt 0 ] && [ "$_ae" -gt 0 ]; then
				lab_ok "${_pre}relay-carried" "$_fw event=forward lines: $_ea e->a, $_ae a->e"
			else
				lab_fail "${_pre}relay-carried" "$_fw event=forward lines, $_ea e->a, $_ae a->e"
			fi
		fi
		if [ "$_pass" = dialback ]; then
			# the contrast to the secure pass: here the e.example hops use dialback
			_l=$LAB_DIR/relay.log
			ej_log_wait "$LAB_DIR/e/log/ejabberd.log" 0 "Accepted inbound s2s dialback authentication a\.example -> $EJ_DOMAIN"
			if grep -qE "dir=in .*event=dialback-valid from=$EJ_DOMAIN to=a\.example auth=dialback" "$_l" &&
			   grep -qE "dir=out .*event=established from=a\.example to=$EJ_DOMAIN .*auth=dialback" "$_l" &&
			   grep -q "Accepted inbound s2s dialback authentication a\.example -> $EJ_DOMAIN" "$LAB_DIR/e/log/ejabberd.log"; then
				lab_ok dialback-auth "relay: e.example inbound and outbound by dialback; ejabberd accepted dialback a.example -> $EJ_DOMAIN"
			else
				lab_fail dialback-auth "no dialback-valid from $EJ_DOMAIN / established to $EJ_DOMAIN auth=dialback in the relay log, or no accepted dialback in the ejabberd log"
			fi
		fi
		if [ "$_pass" = secure ]; then
			secure_auth_checks
			_nf0=$LAB_FAILED
			secure_negative
		fi
		if [ "$mode" = relay ]; then
			if lab_alive "$(lab_pid_of relay)"; then
				lab_ok "${_pre}relay-alive"
			else
				lab_fail "${_pre}relay-alive" "the relay exited during the test"
			fi
		fi
		_crash=$(grep -ciE 'crash|\[error\]' "$LAB_DIR/e/log/ejabberd.log")
		if ! ej_alive "$(ej_pid_of ejabberd)"; then
			lab_fail "${_pre}ejabberd-alive" "the ejabberd VM exited during the test"
		elif [ "$_crash" -gt 0 ]; then
			lab_fail "${_pre}ejabberd-alive" "$_crash crash/error lines in $LAB_DIR/e/log/ejabberd.log"
		else
			lab_ok "${_pre}ejabberd-alive"
		fi
	elif [ "$_pass" = secure ]; then
		for _c in secure-relay-carried secure-relay-auth secure-ejabberd-auth secure-prosody-auth \
		          secure-untrusted-a-to-e-refused secure-untrusted-e-to-a-refused; do
			lab_fail "$_c" "not run: the lab did not start"
		done
	fi

	if [ "$LAB_FAILED" -ne "$_f0" ] && [ -n "$LAB_DIR" ]; then
		lab_logs_tail 40
		for _f in "$LAB_DIR/e/log/error.log" "$LAB_DIR/e/log/ejabberd.log"; do
			[ -s "$_f" ] || continue
			echo "----- ejabberd: tail -n 40 $_f"
			tail -n 40 "$_f"
		done
		failed_dirs="$failed_dirs $LAB_DIR"
	fi
	_ts=$(lab_now_ms)
	ejabberd_stop
	lab_stop
	echo "# $_pass pass: $(ms_since "$_pt0") (stop $(ms_since "$_ts"))"
}

t0=$(lab_now_ms)
for p in $passes; do
	run_pass "$p"
done

echo "# total $(ms_since "$t0")"
if [ "$LAB_FAILED" -ne 0 ]; then
	echo "lab directory kept: $top (failed:$failed_dirs)"
elif [ "${LAB_KEEP:-0}" = 1 ]; then
	echo "lab directory kept: $top"
else
	keep=0
fi
reported=1
lab_summary
[ "$LAB_FAILED" -eq 0 ]
