#!/bin/sh
# Real leaves: the message rate of Prosody -> Prosody direct against
# Prosody -> xtrunkd -> Prosody, in the same run, as a ratio (issue 6:
# the relayed rate should be at least 95% of the direct one).
#
#   sh test/bench/prosody.sh XTRUNKD [COUNT] [REPS]
#
# The Prosody lab (test/lab/lab.sh, 127.0.0.2/.3, relay on 127.0.0.10) in
# direct mode, then in relay mode; in each, alice@a.example sends COUNT
# messages (default 20000) to bob@b.example as fast as one slixmpp client
# can (test/lab/xclient.py flood), REPS times (default 3); the median rate
# of each mode and their ratio are printed. The relay runs without -v and
# Prosody logs at warn, so neither writes a line per stanza. Run it under
# flock /tmp/xtrunk-lab.lock: it uses the lab's fixed addresses.
set -u
XTRUNKD=${1:?usage: prosody.sh XTRUNKD [COUNT] [REPS]}
COUNT=${2:-20000}
REPS=${3:-3}
case $XTRUNKD in /*) ;; *) XTRUNKD=$(pwd)/$XTRUNKD ;; esac
LAB_LIBDIR=$(cd "$(dirname "$0")/../lab" && pwd)
. "$LAB_LIBDIR/lab.sh"
export LAB_LOGLEVEL=warn LAB_RELAY_FLAGS=-d LAB_CLIENT_TIMEOUT=${LAB_CLIENT_TIMEOUT:-120}
top=$(mktemp -d /tmp/xtrunk-pbench.XXXXXX) || exit 1
chmod 755 "$top" # the prosody user must reach the lab below it
trap 'lab_stop; rm -rf "$top"' EXIT
trap 'exit 130' INT TERM HUP

median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

run_mode() { # MODE -> one rate per line on stdout
	lab_setup "$top/$1" "$1" >"$top/setup-$1.log" 2>&1 || { echo "setup $1 failed: $(tail -n 3 "$top/setup-$1.log")" >&2; return 1; }
	if [ "$1" = relay ]; then lab_start_relay "$XTRUNKD" >/dev/null 2>&1 || return 1; fi
	lab_start_prosody >/dev/null 2>&1 || { echo "prosody ($1) did not start" >&2; return 1; }
	i=0
	while [ "$i" -lt "$REPS" ]; do
		out=$(lab_xclient flood --from alice@a.example --to bob@b.example --count "$COUNT")
		echo "# $1: $out" >&2
		printf '%s\n' "$out" | sed -n 's/.*: \([0-9]*\) msg\/s$/\1/p'
		i=$((i + 1))
	done
	lab_stop
}

direct=$(run_mode direct | median)
relay=$(run_mode relay | median)
if [ -z "$direct" ] || [ -z "$relay" ]; then
	echo "prosody-bench: a run failed (direct '$direct', relay '$relay')"
	exit 1
fi
ratio=$(awk -v r="$relay" -v d="$direct" 'BEGIN { printf "%.2f", r / d }')
echo "prosody-bench: $COUNT messages x $REPS, median: direct $direct msg/s, through xtrunkd $relay msg/s, ratio $ratio"
