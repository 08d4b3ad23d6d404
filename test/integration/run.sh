#!/bin/sh
# xtrunk integration test (make check): the relay between two real Prosody
# servers on loopback.
#
#   sh test/integration/run.sh XTRUNKD
#
# Sets up the lab (test/lab/lab.sh) in a temporary directory in relay mode:
# Prosody A (a.example) and B (b.example) each resolve the other's domain and
# c.example to the relay at 127.0.0.10, so every s2s stanza between them
# crosses XTRUNKD. Starts the relay and both servers once, then runs:
#   a-to-b-roundtrip   alice@a.example -> bob@b.example: message, IQ to the
#                      full JID (type=result back), directed presence
#   b-to-a-roundtrip   the same from bob to alice
#   a-to-c-error       alice -> carol@c.example (next hop down): a message
#                      error remote-server-not-found|remote-server-timeout
#   relay-alive        the relay is still running after the cases
# One line per case (ok NAME / FAIL NAME), then exactly "N passed, M failed"
# as the last line. Exit 0 only if everything passed. The whole run is
# bounded (watchdog 170 s; every step has its own timeout).
#
# Environment: LAB_KEEP=1 keeps the lab directory (kept anyway on failure),
# LAB_CLIENT_TIMEOUT (seconds per client run, default 20), LAB_LOGLEVEL.
# test/lab/fakerelay.py can stand in for XTRUNKD to test the lab itself.
set -u

here=$(cd "$(dirname "$0")" && pwd)
LAB_LIBDIR=$(cd "$here/../lab" && pwd)
. "$LAB_LIBDIR/lab.sh"

XTRUNKD=${1:-}
lab_relay_binary "run.sh XTRUNKD" || exit 1

dir=$(mktemp -d /tmp/xtrunk-it.XXXXXX) || exit 1
keep=1
reported=0
cleanup() {
	rc=$?
	trap - EXIT
	lab_watchdog_stop
	lab_stop
	if [ "$keep" = 0 ]; then
		rm -rf "$dir"
	elif [ "$reported" = 0 ]; then
		echo "integration: lab directory kept: $dir" >&2
	fi
	exit $rc
}
trap cleanup EXIT
trap 'echo "integration: interrupted" >&2; exit 130' INT TERM HUP
lab_watchdog 170

t0=$(lab_now_ms)
started=0
if lab_setup "$dir" relay && lab_start_relay "$XTRUNKD" && lab_start_prosody; then
	started=1
	echo "# lab up in $(($(lab_now_ms) - t0)) ms (relay $XTRUNKD, lab $dir)"
else
	lab_fail lab-start "the lab did not start; see the logs below"
fi

case_or_skip() { # NAME xclient-args...
	if [ "$started" = 1 ]; then
		lab_case "$@"
	else
		lab_fail "$1" "not run: the lab did not start"
	fi
}
case_or_skip a-to-b-roundtrip roundtrip --from alice@a.example --to bob@b.example
case_or_skip b-to-a-roundtrip roundtrip --from bob@b.example --to alice@a.example
case_or_skip a-to-c-error expect-error --from alice@a.example --to carol@c.example

if [ "$started" = 1 ]; then
	if lab_alive "$(lab_pid_of relay)"; then
		lab_ok relay-alive "$(grep -c 'event=forward' "$dir/relay.log") event=forward lines in the relay log"
	else
		lab_fail relay-alive "the relay exited during the test"
	fi
fi

echo "# total $(($(lab_now_ms) - t0)) ms"
if [ "$LAB_FAILED" -ne 0 ]; then
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
