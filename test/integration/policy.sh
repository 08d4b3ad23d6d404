#!/bin/sh
# xtrunk integration test: peering-control policy and XEP-0258 security
# labels through the relay, between two real Prosody servers.
#
#   flock /tmp/xtrunk-lab.lock sh test/integration/policy.sh XTRUNKD
#
# The lab of test/lab/lab.sh in relay mode (Prosody A a.example and B
# b.example reach each other only through XTRUNKD, 127.0.0.10), with a
# policy on the relay's peer leaf-b: clearance nato:SECRET, outbound policy
# "to-b" refusing headline messages, a label catalogue with national (uk)
# and NATO label policies and uk:SECRET = nato:SECRET, and an audit file
# (passes too). Cases (alice@a.example -> bob@b.example):
#   unlabelled-passes       a plain chat message arrives
#   label-within            a nato SECRET label arrives as it was sent
#   label-rewritten         a uk SECRET label arrives as nato SECRET with the
#                           NATO display marking (as bob's client sees it)
#   over-classified         uk TOP-SECRET: alice gets policy-violation (type
#                           cancel), carrying nothing of the message; bob
#                           gets nothing
#   forbidden-type          a headline: policy-violation from rule
#                           no-headline, no content, not delivered
#   label-not-understood    a label of a policy OID not in the catalogue:
#                           refused (policy-violation, cancel)
#   audit-log               every line of the audit file is one JSON object;
#                           each refusal above is there with its rule, the
#                           rewrite with both labels, no message body
#   audit-reopened-on-sighup  audit.log moved away, SIGHUP: the next refusal
#                           is written to a new audit.log
#   relay-alive             the relay still runs
# One line per case (ok NAME / FAIL NAME), then "N passed, M failed".
# Bounded: watchdog 200 s, every client run its own timeout. Uses the lab's
# fixed addresses (127.0.0.2-4, .10, .12, .13): run it under the lab lock.
set -u

here=$(cd "$(dirname "$0")" && pwd)
LAB_LIBDIR=$(cd "$here/../lab" && pwd)
. "$LAB_LIBDIR/lab.sh"

XTRUNKD=${1:-}
lab_relay_binary "policy.sh XTRUNKD" || exit 1

UK=1.3.6.1.4.1.99999.1
NATO=1.3.6.1.4.1.99999.2

# Appended to the lab's relay.conf (@LAB@ is the lab directory).
LAB_RELAY_EXTRA='
security_labels = {
  policies = (
    { name = "uk"; oid = "'$UK'";
      classifications = (
        { name = "OFFICIAL"; value = 1; },
        { name = "SECRET"; value = 4; marking = "UK SECRET"; bgcolor = "red"; },
        { name = "TOP-SECRET"; value = 5; marking = "UK TOP SECRET"; } ); },
    { name = "nato"; oid = "'$NATO'";
      classifications = (
        { name = "UNCLASSIFIED"; value = 1; },
        { name = "SECRET"; value = 4; marking = "NATO SECRET"; fgcolor = "white";
          bgcolor = "blue"; } ); }
  );
  equivalences = ( { a = "uk:SECRET"; b = "nato:SECRET"; } );
};
policies = (
  { name = "to-b"; default = "allow"; rules = (
      { name = "no-headline"; kinds = [ "message" ]; types = [ "headline" ];
        action = "reject"; } ); }
);
audit = { file = "@LAB@/audit.log"; passes = true; };'
export LAB_RELAY_EXTRA

dir=$(mktemp -d /tmp/xtrunk-policy.XXXXXX) || exit 1
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
		echo "policy: lab directory kept: $dir" >&2
	fi
	exit $rc
}
trap cleanup EXIT
trap 'echo "policy: interrupted" >&2; exit 130' INT TERM HUP
lab_watchdog 200

t0=$(lab_now_ms)
started=0
# The clearance and outbound policy go on the relay's peer leaf-b.
if lab_setup "$dir" relay &&
	sed -i 's|{ name = "leaf-b";\(.*\) },$|{ name = "leaf-b";\1 policy_out = "to-b"; clearance = "nato:SECRET"; },|' \
		"$dir/relay.conf" &&
	grep -q 'clearance = "nato:SECRET"' "$dir/relay.conf" &&
	"$XTRUNKD" -n -f "$dir/relay.conf" >"$dir/config-test.out" 2>&1 &&
	lab_start_relay "$XTRUNKD" && lab_start_prosody; then
	started=1
	echo "# lab up in $(($(lab_now_ms) - t0)) ms (relay $XTRUNKD, lab $dir)"
else
	cat "$dir/config-test.out" 2>/dev/null
	lab_fail lab-start "the lab did not start; see the logs below"
fi

case_or_skip() { # NAME xclient-args...
	if [ "$started" = 1 ]; then
		lab_case "$@"
	else
		lab_fail "$1" "not run: the lab did not start"
	fi
}
A=alice@a.example
B=bob@b.example
case_or_skip unlabelled-passes message --from $A --to $B
case_or_skip label-within label-send --from $A --to $B --label "$NATO:4:NATO SECRET" \
	--expect-label "$NATO:4" --expect-marking "NATO SECRET"
grep '^LABEL ' "$dir/client.out" | sed 's/^/#   bob saw: /'
case_or_skip label-rewritten label-send --from $A --to $B --label "$UK:4:UK SECRET" \
	--expect-label "$NATO:4" --expect-marking "NATO SECRET"
grep '^LABEL ' "$dir/client.out" | sed 's/^/#   bob saw: /'
case_or_skip over-classified expect-reject --from $A --to $B --label "$UK:5:UK TOP SECRET" \
	--condition policy-violation --errtype cancel
grep '^ERROR ' "$dir/client.out" | sed 's/^/#   alice got: /'
case_or_skip forbidden-type expect-reject --from $A --to $B --mtype headline \
	--condition policy-violation --errtype cancel
grep '^ERROR ' "$dir/client.out" | sed 's/^/#   alice got: /'
case_or_skip label-not-understood expect-reject --from $A --to $B --label "1.2.3.4:1:WHAT" \
	--condition policy-violation --errtype cancel

# The audit file: valid JSON on every line; the refusals with their rules.
if [ "$started" = 1 ]; then
	if out=$("$LAB_PYTHON" - "$dir/audit.log" <<'EOF' 2>&1
import json, sys
lines = open(sys.argv[1]).read().splitlines()
recs = [json.loads(l) for l in lines]          # raises on any invalid line
keys = {"time", "decision", "in_peer", "out_peer", "route", "from", "to", "kind",
        "type", "id", "policy", "rule", "reason", "condition", "label"}
for r in recs:
    assert set(r) == keys, "keys %s" % sorted(r)
    assert "xtrunk-lab-secret" not in json.dumps(r), "a body in the audit log"
rej = [r for r in recs if r["decision"] == "reject"]
def one(pred, what):
    m = [r for r in rej if pred(r)]
    assert len(m) == 1, "%d rejections for %s: %s" % (len(m), what, rej)
    return m[0]
one(lambda r: r["rule"] == "clearance" and r["label"] == "uk:TOP-SECRET"
    and r["out_peer"] == "leaf-b" and r["condition"] == "policy-violation", "over-classified")
one(lambda r: r["rule"] == "no-headline" and r["type"] == "headline"
    and r["policy"] == "to-b", "forbidden-type")
one(lambda r: r["rule"] == "clearance" and r["label"].startswith("oid:1.2.3.4"),
    "label-not-understood")
rw = [r for r in recs if r["decision"] == "pass" and r["label"] == "uk:SECRET->nato:SECRET"]
assert len(rw) == 1, "no pass record for the rewrite"
assert all(r["from"].startswith("alice@a.example") for r in rej)
print("%d lines, %d rejections, all JSON" % (len(recs), len(rej)))
EOF
	); then
		lab_ok audit-log "$out"
	else
		lab_fail audit-log "$(printf '%s' "$out" | tail -n 2 | tr '\n' ' ')"
		cat "$dir/audit.log"
	fi
	# Rotation: the file is moved away, SIGHUP makes the relay reopen the
	# path; the next refusal lands in a new file.
	mv "$dir/audit.log" "$dir/audit.log.1"
	kill -HUP "$(lab_pid_of relay)"
	_end=$(($(date +%s) + 10))
	until grep -q 'event=reload' "$dir/relay.log" || [ "$(date +%s)" -ge "$_end" ]; do
		sleep 0.1
	done
	lab_case audit-reopen-send expect-reject --from $A --to $B --mtype headline \
		--condition policy-violation
	if [ -s "$dir/audit.log" ] && [ "$(wc -l <"$dir/audit.log")" -eq 1 ] &&
		grep -q '"rule":"no-headline"' "$dir/audit.log" &&
		[ "$(wc -l <"$dir/audit.log.1")" -eq 6 ]; then
		lab_ok audit-reopened-on-sighup "the refusal after SIGHUP is in the new file"
	else
		lab_fail audit-reopened-on-sighup "audit.log after SIGHUP: $(cat "$dir/audit.log" 2>&1 | head -c 300)"
	fi
	if lab_alive "$(lab_pid_of relay)"; then
		lab_ok relay-alive "$(grep -c 'event=policy-reject' "$dir/relay.log") event=policy-reject lines in the relay log"
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
