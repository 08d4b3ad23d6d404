#!/bin/sh
# Check the lab itself, without the relay: the two Prosody servers federate
# directly (direct mode: each one's DNS points at the other), and the test
# client proves a message, an IQ and a directed presence cross both ways and
# that a message to c.example (nothing listens) bounces.
#
#   sh test/lab/direct-check.sh
#
# Runs twice: leaves trusting the lab CA (s2s authenticates with
# certificates, SASL EXTERNAL) and not trusting it (dialback, the method the
# relay uses). Prints ok/FAIL lines and "N passed, M failed"; exit 0 only if
# all passed. Bounded to 120 s.
set -u

here=$(cd "$(dirname "$0")" && pwd)
LAB_LIBDIR=$here
. "$LAB_LIBDIR/lab.sh"

base=$(mktemp -d /tmp/xtrunk-direct.XXXXXX) || exit 1
chmod 755 "$base"   # the prosody user must reach the lab directories in it
keep=1
cleanup() {
	rc=$?
	trap - EXIT
	lab_watchdog_stop
	lab_stop
	[ "$keep" = 0 ] && rm -rf "$base"
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP
lab_watchdog 120

run_variant() { # NAME TRUST_CA
	_v=$1
	_trust=$2
	LAB_TRUST_CA=$_trust
	_t=$(lab_now_ms)
	if ! lab_setup "$base/$_v" direct || ! lab_start_prosody; then
		lab_fail "$_v-lab-start" "see $base/$_v"
		lab_logs_tail 30
		lab_stop
		return
	fi
	echo "# $_v: lab up in $(($(lab_now_ms) - _t)) ms"
	for _c in "a-to-b-roundtrip roundtrip --from alice@a.example --to bob@b.example" \
		"b-to-a-roundtrip roundtrip --from bob@b.example --to alice@a.example" \
		"a-to-b-again roundtrip --from alice@a.example --to bob@b.example" \
		"a-to-c-error expect-error --from alice@a.example --to carol@c.example"; do
		# shellcheck disable=SC2086
		set -- $_c
		_n=$1; shift
		_t=$(lab_now_ms)
		lab_case "$_v-$_n" "$@"
		echo "#   wall time $(($(lab_now_ms) - _t)) ms (client process, logins, steps)"
	done
	# Which s2s authentication did the servers use?
	if [ "$_trust" = 1 ]; then
		if grep -q "SASL EXTERNAL with b.example succeeded" "$LAB_DIR/a/prosody.log"; then
			lab_ok "$_v-auth" "a.example -> b.example authenticated with SASL EXTERNAL"
		else
			lab_fail "$_v-auth" "no SASL EXTERNAL success in Prosody A's log"
		fi
	else
		if grep -q "asking a.example if key" "$LAB_DIR/b/prosody.log" &&
			grep -q "verified dialback key... it is valid" "$LAB_DIR/a/prosody.log"; then
			lab_ok "$_v-auth" "a.example -> b.example authenticated with dialback"
		else
			lab_fail "$_v-auth" "no dialback verification in the logs"
		fi
	fi
	[ "$LAB_FAILED" -eq 0 ] || lab_logs_tail 30
	lab_stop
}

run_variant certs 1
run_variant dialback 0

if [ "$LAB_FAILED" -eq 0 ]; then keep=0; else echo "lab directories kept: $base"; fi
lab_summary
[ "$LAB_FAILED" -eq 0 ]
