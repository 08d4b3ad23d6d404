#!/bin/sh
# Real leaves: the message rate of Prosody -> Prosody direct against
# Prosody -> xtrunkd -> Prosody, in the same run, as a ratio (issue 6:
# the relayed rate should be at least 95% of the direct one).
#
#   sh test/bench/prosody.sh XTRUNKD [COUNT] [PAIRS]
#
# Two Prosody labs (test/lab/lab.sh, 127.0.0.2/.3, relay on 127.0.0.10)
# are set up once, one in direct mode and one in relay mode; then PAIRS
# times (default 6) a direct run and a relayed run, interleaved (D R D R
# ...; the order inside a pair alternates, so slow drift of the shared
# machine falls on both modes alike). Each run starts its leaves (and the
# relay) afresh, logs alice@a.example and bob@b.example in, and has alice
# send COUNT messages (default 20000) to bob as fast as one slixmpp client
# can (test/lab/xclient.py flood). Printed: every run's rate and the CPU
# each process (client, Prosody A, Prosody B, relay: utime + stime from
# /proc/PID/stat over the flood) spent per message; per mode the median
# rate, the range and the spread ((max - min) / median), the median CPU per
# message of each process, of their total and of the rest of the machine
# ("other": busy time of /proc/stat not spent by them); the ratio of the
# total CPU per message; the median of the per-pair rate ratios (the last
# line, which make bench reports). The relay
# runs without -v and Prosody logs at warn, so neither writes a line per
# stanza. Run it under flock /tmp/xtrunk-lab.lock: it uses the lab's fixed
# addresses. PROSODY_BENCH_KEEP=1 keeps the working directory.
set -u
XTRUNKD=${1:?usage: prosody.sh XTRUNKD [COUNT] [PAIRS]}
COUNT=${2:-20000}
PAIRS=${3:-8}
case $XTRUNKD in /*) ;; *) XTRUNKD=$(pwd)/$XTRUNKD ;; esac
LAB_LIBDIR=$(cd "$(dirname "$0")/../lab" && pwd)
. "$LAB_LIBDIR/lab.sh"
export LAB_LOGLEVEL=warn LAB_RELAY_FLAGS=-d LAB_CLIENT_TIMEOUT=${LAB_CLIENT_TIMEOUT:-120}
top=$(mktemp -d /tmp/xtrunk-pbench.XXXXXX) || exit 1
chmod 755 "$top" # the prosody user must reach the lab below it
cleanup() {
	lab_stop
	if [ "${PROSODY_BENCH_KEEP:-0}" = 1 ]; then echo "prosody-bench: kept $top" >&2; else rm -rf "$top"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

# median / min / max of the numbers on stdin, one per line
median() { sort -n | awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)] }'; }
range() { sort -n | awk '{ v[NR] = $1 } END { if (NR) printf "%s-%s %.0f%%", v[1], v[NR], 100 * (v[NR] - v[1]) / v[int((NR + 1) / 2)] }'; }

for mode in direct relay; do
	lab_setup "$top/$mode" "$mode" >"$top/setup-$mode.log" 2>&1 ||
		{ echo "prosody-bench: setup $mode failed: $(tail -n 3 "$top/setup-$mode.log")" >&2; exit 1; }
done

# run_one MODE: one flood in a freshly started lab of that mode; appends
# "MODE RATE client=.. prosody-a=.. prosody-b=.. [relay=..]" to $top/runs.
run_one() {
	# shellcheck disable=SC2034 # read by lab.sh
	LAB_DIR=$top/$1 LAB_MODE=$1
	cpu=""
	if [ "$1" = relay ]; then
		lab_start_relay "$XTRUNKD" >>"$top/start.log" 2>&1 || { echo "prosody-bench: relay did not start" >&2; return 1; }
		cpu="--cpu relay=$(lab_pid_of relay)"
	fi
	lab_start_prosody >>"$top/start.log" 2>&1 || { echo "prosody-bench: prosody ($1) did not start" >&2; return 1; }
	cpu="$cpu --cpu prosody-a=$(lab_pid_of prosody-a) --cpu prosody-b=$(lab_pid_of prosody-b)"
	# shellcheck disable=SC2086
	out=$(lab_xclient flood --from alice@a.example --to bob@b.example --count "$COUNT" $cpu)
	lab_stop
	echo "# $1: $out" >&2
	rate=$(printf '%s\n' "$out" | sed -n 's/.*: \([0-9]*\) msg\/s$/\1/p')
	[ -n "$rate" ] || return 1
	echo "$1 $rate $(printf '%s\n' "$out" | sed -n 's/.*(cpu us\/msg: \(.*\)).*/\1/p')" >>"$top/runs"
}

: >"$top/runs"
i=0
while [ "$i" -lt "$PAIRS" ]; do
	if [ $((i % 2)) -eq 0 ]; then order="direct relay"; else order="relay direct"; fi
	for mode in $order; do
		run_one "$mode" || { echo "prosody-bench: a $mode run failed" >&2; exit 1; }
	done
	i=$((i + 1))
done

# per-pair ratios (the n-th relay run against the n-th direct run)
ratios=$(awk '$1 == "direct" { d[++nd] = $2 } $1 == "relay" { r[++nr] = $2 }
	END { for (k = 1; k <= nr && k <= nd; k++) printf "%.3f\n", r[k] / d[k] }' "$top/runs")
for mode in direct relay; do
	rates=$(awk -v m="$mode" '$1 == m { print $2 }' "$top/runs")
	line="$mode: median $(printf '%s\n' "$rates" | median) msg/s, range $(printf '%s\n' "$rates" | range); CPU us/msg (median):"
	for who in client prosody-a prosody-b relay total other; do
		v=$(awk -v m="$mode" -v w="$who" '$1 == m { t = 0
			for (f = 3; f <= NF; f++) {
				split($f, kv, "=")
				if (kv[1] != "other") t += kv[2]
				if (kv[1] == w) print kv[2]
			}
			if (w == "total") printf "%.1f\n", t }' "$top/runs" | median)
		[ -n "$v" ] && line="$line $who=$v"
		[ "$who" = total ] && eval "total_$mode=\$v"
	done
	echo "prosody-bench: $line"
done
# The four processes fill both cores, so the rate follows from their CPU
# per message: the ratio of the totals is the rate ratio a quiet machine
# would show (the measured rates also move with "other": the rest of the
# machine's load).
echo "prosody-bench: CPU of client + leaves (+ relay) per message: direct $total_direct us, relayed $total_relay us; direct/relayed $(awk -v d="$total_direct" -v r="$total_relay" 'BEGIN { printf "%.3f", d / r }')"
echo "prosody-bench: per-pair ratio relay/direct: $(printf '%s\n' "$ratios" | tr '\n' ' ')(median $(printf '%s\n' "$ratios" | median))"
direct=$(awk '$1 == "direct" { print $2 }' "$top/runs" | median)
relay=$(awk '$1 == "relay" { print $2 }' "$top/runs" | median)
ratio=$(printf '%s\n' "$ratios" | median)
ratio=$(awk -v r="$ratio" 'BEGIN { printf "%.2f", r }')
echo "prosody-bench: $COUNT messages x $PAIRS pairs, median: direct $direct msg/s, through xtrunkd $relay msg/s, ratio $ratio"
