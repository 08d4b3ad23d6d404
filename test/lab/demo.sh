#!/bin/sh
# make demo: one message from alice@a.example to bob@b.example, carried
# between two real Prosody servers by the relay, then the path it took.
#
#   sh test/lab/demo.sh XTRUNKD
#   sh test/lab/demo.sh --direct      the same lab without the relay (the two
#                                     servers talk to each other directly)
# Needs root (Prosody runs as the prosody user); uses only 127.0.0.x.
set -u

here=$(cd "$(dirname "$0")" && pwd)
LAB_LIBDIR=$here
. "$LAB_LIBDIR/lab.sh"

mode=relay
XTRUNKD=${1:-}
if [ "$XTRUNKD" = --direct ]; then
	mode=direct
elif [ -z "$XTRUNKD" ] || [ ! -f "$XTRUNKD" ] || [ ! -x "$XTRUNKD" ]; then
	echo "demo: relay binary '${XTRUNKD}' missing or not executable (run: make demo)" >&2
	echo "usage: demo.sh XTRUNKD | demo.sh --direct" >&2
	exit 1
else
	XTRUNKD=$(cd "$(dirname "$XTRUNKD")" && pwd)/$(basename "$XTRUNKD")
fi

dir=$(mktemp -d /tmp/xtrunk-demo.XXXXXX) || exit 1
keep=0
cleanup() {
	rc=$?
	trap - EXIT
	lab_watchdog_stop
	printf '\nCleaning up: stopping %sboth Prosody servers and their DNS ... ' "$([ "$mode" = relay ] && echo "the relay, ")"
	lab_stop
	echo "done."
	if [ "$keep" = 1 ] || [ "${LAB_KEEP:-0}" = 1 ]; then
		echo "Logs kept in $dir"
	else
		rm -rf "$dir"
	fi
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP
lab_watchdog 120

step() { printf '%-62s' "$*"; }
done_in() { echo "done ($(($(lab_now_ms) - $1)) ms)"; }
fail_out() { echo "FAILED"; keep=1; lab_logs_tail 20; exit 1; }

echo "xtrunk demo: alice@a.example sends one message to bob@b.example"
echo
if [ "$mode" = relay ]; then
	cat <<'EOF'
  alice --c2s--> Prosody A ---s2s---> xtrunkd relay ---s2s---> Prosody B --c2s--> bob
                 a.example            127.0.0.10:5269          b.example
                 127.0.0.2                                     127.0.0.3

  Prosody A's DNS answers "b.example is at the relay" and Prosody B's DNS
  answers "a.example is at the relay": the servers cannot reach each other
  any other way. Both are stock Prosody, unmodified.
EOF
else
	cat <<'EOF'
  alice --c2s--> Prosody A ---------------s2s--------------> Prosody B --c2s--> bob
                 a.example 127.0.0.2                         b.example 127.0.0.3

  (--direct: no relay; each server's DNS points at the other server.)
EOF
fi
echo

t=$(lab_now_ms)
step "Creating a test CA, certificates, DNS and accounts ..."
lab_setup "$dir" "$mode" 2>"$dir.setup.log" && done_in "$t" || { cat "$dir.setup.log"; rm -f "$dir.setup.log"; fail_out; }
rm -f "$dir.setup.log"
if [ "$mode" = relay ]; then
	t=$(lab_now_ms)
	step "Starting the relay (xtrunkd) on 127.0.0.10:5269 ..."
	lab_start_relay "$XTRUNKD" 2>/dev/null && done_in "$t" || fail_out
fi
t=$(lab_now_ms)
step "Starting Prosody A (a.example) and Prosody B (b.example) ..."
lab_start_prosody 2>/dev/null && done_in "$t" || fail_out
echo

out=$(LAB_CLIENT_TIMEOUT=20 lab_xclient message --show --from alice@a.example --to bob@b.example 2>&1)
rc=$?
printf '%s\n' "$out" | grep -vE '^(ok|FAIL) '
echo
result=$(printf '%s\n' "$out" | grep -E '^(ok|FAIL) ' | tail -n 1)

if [ "$mode" = relay ]; then
	echo "The path it took (the relay's log, lines with event=):"
	if grep -q 'event=' "$dir/relay.log" 2>/dev/null; then
		grep 'event=' "$dir/relay.log" | sed 's/^/  /'
	else
		echo "  (the relay logged no event= lines; full log: $dir/relay.log)"
		keep=1
	fi
	echo
fi

if [ $rc -eq 0 ]; then
	echo "Result: delivered. $result"
else
	echo "Result: NOT delivered. ${result:-client gave no result line}"
	keep=1
	lab_logs_tail 20
fi
exit $rc
