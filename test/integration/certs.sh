#!/bin/sh
# xtrunk integration test: certificates only, from an enclave CA (issue 3).
#
#   sh test/integration/certs.sh XTRUNKD
#
# Sets up the lab (test/lab/lab.sh) in secure mode: the enclave CA is made
# with xtrunkctl (beside XTRUNKD, or $LAB_XTRUNKCTL); Prosody A (a.example)
# and B (b.example) hold certificates from it, trust it and run with
# s2s_secure_auth = true; the relay issues its certificates from the same CA
# (tls.ca_certificate/ca_key, no tls.certificate), trusts it (tls.trust) and
# has auth = "certificate" for leaf-a and leaf-b. DNS sends every s2s stream
# between the leaves to the relay.
#
# Cases (one line each: ok NAME / FAIL NAME):
#   secure-a-to-b-roundtrip   alice -> bob: message, IQ, directed presence
#   secure-b-to-a-roundtrip   bob -> alice: the same
#   secure-relay-auth         relay log: SASL EXTERNAL inbound from both
#                             leaves (sasl-success ... auth=certificate),
#                             outbound streams to both established with
#                             auth=certificate, and no auth=dialback line
#   secure-leaves-auth        both Prosody logs: SASL EXTERNAL from the relay
#                             accepted for the other leaf's domain
# Then leaf A presents a bad s2s certificate (c2s keeps its good one); the
# relay and Prosody A are restarted for each configuration:
#   KIND-a-to-b-refused       KIND = expired | wrong-name; auth = certificate,
#                             A with s2s_secure_auth = true: a message from
#                             alice must not reach bob, alice gets an error,
#                             and the relay logs event=dialback-refused for
#                             a.example with the reason (expired,
#                             name-mismatch)
#   KIND-b-to-a-refused       the same from bob: the relay refuses leaf A's
#                             certificate (event=certificate-refused
#                             identity=a.example reason=...), bob gets an error
#   fallback-any-KIND-a-to-b  A with s2s_secure_auth = false, auth = "any" for
#                             leaf-a: dialback is allowed, so the message
#                             crosses, and the relay log shows auth=dialback
#                             for a.example
#   fallback-any-KIND-b-to-a  the same config, bob -> alice crosses
#   fallback-certificate-KIND-a-to-b
#                             the same leaf (s2s_secure_auth = false) but
#                             auth = "certificate": the message does not cross
#                             (event=dialback-refused with the reason)
#   relay-alive               the relay is still running at the end
# The last line is exactly "N passed, M failed"; exit 0 only if all passed.
# On failure the relay log lines of the failed run are printed under the
# case, and the log tails of the last configuration at the end; earlier
# relay logs stay in the lab directory as relay.log.N.
# The run is bounded (watchdog 175 s; every client run has its own timeout;
# it first waits up to LAB_BUSY_WAIT=60 s for another lab on the same fixed
# addresses to finish). Typical run: about 7 s.
#
# Environment: LAB_KEEP=1 keeps the lab directory (kept anyway on failure),
# LAB_CLIENT_TIMEOUT (seconds per positive client run, default 20),
# CERTS_NEG_TIMEOUT (seconds per negative/fallback run, default 10),
# LAB_LOGLEVEL, LAB_XTRUNKCTL.
set -u

here=$(cd "$(dirname "$0")" && pwd)
LAB_LIBDIR=$(cd "$here/../lab" && pwd)
. "$LAB_LIBDIR/lab.sh"

XTRUNKD=${1:-}
lab_relay_binary "certs.sh XTRUNKD" || exit 1
if [ -z "${LAB_XTRUNKCTL:-}" ] && [ -x "$(dirname "$XTRUNKD")/xtrunkctl" ]; then
	LAB_XTRUNKCTL=$(dirname "$XTRUNKD")/xtrunkctl
fi
NEG_TIMEOUT=${CERTS_NEG_TIMEOUT:-10}

dir=$(mktemp -d /tmp/xtrunk-certs.XXXXXX) || exit 1
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
	lab_stop
	if [ "$keep" = 0 ]; then
		rm -rf "$dir"
	elif [ "$reported" = 0 ]; then
		echo "certs: lab directory kept: $dir" >&2
	fi
	exit $rc
}
trap cleanup EXIT
trap 'echo "certs: interrupted" >&2; exit 130' INT TERM HUP
trap 'exit 141' PIPE   # e.g. "| head": still end every process we started
lab_watchdog 175

# ---------------------------------------------------------------- helpers

# client TIMEOUT SUBCOMMAND xclient-args... — runs xclient (background, PID
# known, bounded), leaves its output in $dir/client.out and its result line
# in $client_line, returns its exit status.
client_line=""
client() {
	ct_ct=$1; shift
	LAB_CLIENT_TIMEOUT=$ct_ct LAB_XCLIENT_EXEC=1 lab_xclient "$@" >"$dir/client.out" 2>&1 &
	CLIENT_PID=$!
	wait "$CLIENT_PID"
	ct_crc=$?
	CLIENT_PID=""
	client_line=$(grep -E '^(ok|FAIL) ' "$dir/client.out" | tail -n 1)
	[ -n "$client_line" ] || client_line="client exit $ct_crc: $(tail -n 3 "$dir/client.out" | tr '\n' ' ')"
	client_line=${client_line#* -> *: }
	return $ct_crc
}

# Relay log lines written since mark_log was called.
log_mark=0
mark_log() { log_mark=$(wc -l <"$dir/relay.log" 2>/dev/null || echo 0); }
new_log() { tail -n "+$((log_mark + 1))" "$dir/relay.log" 2>/dev/null; }

ms_since() { echo "$(($(lab_now_ms) - $1)) ms"; }

# After a failed case: the relay log lines of that run, indented.
show_new_log() {
	echo "#   relay log during this case (last 15 lines):"
	new_log | tail -n 15 | sed 's/^/#     /'
}

# reconfigure NAME — apply LAB_* settings: rewrite the configs, restart the
# relay and Prosody A (B is unchanged and keeps running).
configured=0
reconfigure() {
	ct_t=$(lab_now_ms)
	configured=0
	if lab_secure_configure && lab_restart_relay "$XTRUNKD" && lab_restart_prosody a; then
		configured=1
		echo "# $1: leaf A cert=$LAB_S2S_CERT_A s2s_secure_auth=$LAB_SECURE_AUTH_A, relay leaf-a auth=$LAB_AUTH_A; restarted in $(ms_since "$ct_t")"
	else
		lab_fail "$1-restart" "relay or Prosody A did not restart"
	fi
}

# refused NAME FROM TO LOGPATTERN — the message FROM -> TO must not cross,
# an error must come back to FROM, and a relay log line written during the
# run must match LOGPATTERN (grep -E).
refused() {
	ct_n=$1 ct_f=$2 ct_to=$3 ct_pat=$4
	if [ "$configured" != 1 ]; then lab_fail "$ct_n" "not run: the lab did not restart"; return; fi
	ct_t=$(lab_now_ms)
	mark_log
	client "$NEG_TIMEOUT" message --from "$ct_f" --to "$ct_to"
	ct_rc=$?
	ct_el=$(ms_since "$ct_t")
	ct_fd=${ct_f#*@} ct_td=${ct_to#*@}
	ct_line=$(new_log | grep -E "$ct_pat" | head -n 1)
	if [ $ct_rc -eq 0 ]; then
		lab_fail "$ct_n" "the message crossed: $client_line; $ct_el"
		show_new_log
	elif new_log | grep -q "event=forward kind=message from=$ct_fd to=$ct_td"; then
		lab_fail "$ct_n" "the relay forwarded a message $ct_fd -> $ct_td; client: $client_line; $ct_el"
		show_new_log
	elif ! printf '%s' "$client_line" | grep -q 'sender got error'; then
		lab_fail "$ct_n" "no error came back to the sender: $client_line; $ct_el"
		show_new_log
	elif [ -z "$ct_line" ]; then
		ct_seen=$(new_log | grep -E 'event=(dialback-refused|certificate-refused|sasl-not-offered)' | head -n 2 |
			sed 's/.*event=/event=/' | tr '\n' ' ')
		lab_fail "$ct_n" "no relay log line matching /$ct_pat/; the relay logged: ${ct_seen:-nothing relevant}; client: $client_line; $ct_el"
		show_new_log
	else
		lab_ok "$ct_n" "$(printf '%s' "$ct_line" | sed 's/.*\(event=[^ ]*\)/\1/' | cut -c1-150); client: ${client_line#sender got error }; $ct_el"
	fi
}

# crosses NAME FROM TO [LOGPATTERN] — the message FROM -> TO must arrive;
# with LOGPATTERN a relay log line written during the run must match it.
crosses() {
	ct_n=$1 ct_f=$2 ct_to=$3 ct_pat=${4:-}
	if [ "$configured" != 1 ]; then lab_fail "$ct_n" "not run: the lab did not restart"; return; fi
	ct_t=$(lab_now_ms)
	mark_log
	client "$NEG_TIMEOUT" message --from "$ct_f" --to "$ct_to"
	ct_rc=$?
	ct_el=$(ms_since "$ct_t")
	if [ $ct_rc -ne 0 ]; then
		ct_seen=$(new_log | grep -E 'event=(dialback-refused|dialback-error|certificate-refused|sasl-not-offered|next-hop-failed)' |
			head -n 3 | sed 's/.*event=/event=/' | tr '\n' ' ')
		lab_fail "$ct_n" "the message did not cross: $client_line; relay: ${ct_seen:-no refusal logged}; $ct_el"
		show_new_log
	elif [ -n "$ct_pat" ] && ! new_log | grep -qE "$ct_pat"; then
		lab_fail "$ct_n" "crossed, but no relay log line matching /$ct_pat/; $ct_el"
		show_new_log
	else
		lab_ok "$ct_n" "$client_line${ct_pat:+; $(new_log | grep -E "$ct_pat" | head -n 1 | sed 's/.*\(event=[^ ]*\)/\1/' | cut -c1-100)}; $ct_el"
	fi
}

# ---------------------------------------------------------------- positive

t0=$(lab_now_ms)
started=0
if lab_wait_free && lab_setup "$dir" secure && lab_start_relay "$XTRUNKD" && lab_start_prosody; then
	started=1
	echo "# secure lab up in $(ms_since "$t0") (relay $XTRUNKD, lab $dir)"
else
	lab_fail lab-start "the secure lab did not start; see the logs below"
fi

if [ "$started" = 1 ]; then
	lab_case secure-a-to-b-roundtrip roundtrip --from alice@a.example --to bob@b.example
	lab_case secure-b-to-a-roundtrip roundtrip --from bob@b.example --to alice@a.example

	# Every hop authenticated by certificate, as the relay saw it.
	log=$dir/relay.log
	missing=""
	for pair in "a.example b.example" "b.example a.example"; do
		# shellcheck disable=SC2086
		set -- $pair
		grep -qE "dir=in .*event=sasl-success from=$1 to=$2 auth=certificate" "$log" ||
			missing="$missing inbound-sasl($1->$2)"
		grep -qE "dir=out .*event=established from=$1 to=$2 .*auth=certificate" "$log" ||
			missing="$missing outbound-certificate($1->$2)"
	done
	ndb=$(grep -c 'auth=dialback' "$log")
	if [ -z "$missing" ] && [ "$ndb" -eq 0 ]; then
		lab_ok secure-relay-auth "$(grep -c 'event=sasl-success' "$log") sasl-success, $(grep -c 'event=established.*auth=certificate' "$log") established auth=certificate, 0 auth=dialback"
	else
		lab_fail secure-relay-auth "missing:${missing:- none}; $ndb auth=dialback line(s)"
		grep -E 'event=(sasl|established|dialback|certificate)' "$log" | tail -n 12
	fi

	# ... and as the leaves saw it: each accepted SASL EXTERNAL from the relay
	# for the other's domain (s2s_secure_auth = true: nothing else would do).
	if grep -q "Accepting SASL EXTERNAL identity from a.example" "$dir/b/prosody.log" &&
		grep -q "Accepting SASL EXTERNAL identity from b.example" "$dir/a/prosody.log"; then
		lab_ok secure-leaves-auth "Prosody B accepted SASL EXTERNAL for a.example, Prosody A for b.example"
	else
		lab_fail secure-leaves-auth "no 'Accepting SASL EXTERNAL identity' line in one of the Prosody logs"
	fi
else
	for c in secure-a-to-b-roundtrip secure-b-to-a-roundtrip secure-relay-auth secure-leaves-auth; do
		lab_fail "$c" "not run: the lab did not start"
	done
fi

# ---------------------------------------------------------------- negative

neg() { # KIND REASON
	ct_k=$1 ct_r=$2
	if [ "$started" != 1 ]; then
		for ct_c in "$ct_k-a-to-b-refused" "$ct_k-b-to-a-refused" "fallback-any-$ct_k-a-to-b" \
			"fallback-any-$ct_k-b-to-a" "fallback-certificate-$ct_k-a-to-b"; do
			lab_fail "$ct_c" "not run: the lab did not start"
		done
		return
	fi
	# (a)/(b): the secure lab, leaf A presenting a bad certificate.
	LAB_S2S_CERT_A=$ct_k LAB_SECURE_AUTH_A=true LAB_AUTH_A=certificate
	reconfigure "$ct_k"
	refused "$ct_k-a-to-b-refused" alice@a.example bob@b.example \
		"event=dialback-refused from=a\\.example to=b\\.example reason=\"[^\"]*$ct_r"
	refused "$ct_k-b-to-a-refused" bob@b.example alice@a.example \
		"event=certificate-refused identity=a\\.example reason=\"[^\"]*$ct_r"

	# (c): the leaf allows dialback; the relay config decides.
	LAB_SECURE_AUTH_A=false LAB_AUTH_A=any
	reconfigure "fallback-any-$ct_k"
	crosses "fallback-any-$ct_k-a-to-b" alice@a.example bob@b.example \
		"event=dialback-valid from=a\\.example to=b\\.example auth=dialback"
	crosses "fallback-any-$ct_k-b-to-a" bob@b.example alice@a.example

	LAB_AUTH_A=certificate
	reconfigure "fallback-certificate-$ct_k"
	refused "fallback-certificate-$ct_k-a-to-b" alice@a.example bob@b.example \
		"event=dialback-refused from=a\\.example to=b\\.example reason=\"[^\"]*$ct_r"
}

t1=$(lab_now_ms)
neg expired '\bexpired\b'
neg wrong-name 'name-mismatch'
echo "# negative cases: $(ms_since "$t1")"

if [ "$started" = 1 ]; then
	if lab_alive "$(lab_pid_of relay)"; then
		lab_ok relay-alive
	else
		lab_fail relay-alive "the relay exited; see $dir/relay.log"
	fi
fi

echo "# total $(ms_since "$t0")"
if [ "$LAB_FAILED" -ne 0 ]; then
	echo "----- relay logs of the failed configurations are in $dir (relay.log, relay.log.N)"
	lab_logs_tail 40
	echo "lab directory kept: $dir"
elif [ "${LAB_KEEP:-0}" = 1 ]; then
	echo "lab directory kept: $dir"
else
	keep=0
fi
reported=1
lab_summary
[ "$LAB_FAILED" -eq 0 ]
