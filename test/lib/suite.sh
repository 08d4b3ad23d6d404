# shellcheck shell=sh
# suite.sh: what the suites that do not use the Prosody lab (protocol.sh,
# ops.sh, soak.sh) share: case lines, process checks and stops by PID, and
# the checks of their arguments and tools. Source it after `set -u`; it
# defines passed/failed counters and these functions:
#   ok NAME / fail NAME WHY    one line per case
#   summary                    "N passed, M failed" (the last line)
#   alive PID                  the process is there
#   stop_pid PID TENTHS        TERM, wait up to TENTHS/10 s, then KILL;
#                              1 if it had to be killed
#   suite_relay_binary USAGE   $XTRUNKD exists and is executable (made
#                              absolute); otherwise a FAIL line, summary, 1
#   suite_certtool             certtool is installed; otherwise likewise

passed=0
failed=0

ok() { echo "ok $1"; passed=$((passed + 1)); }
fail() { echo "FAIL $1: $2"; failed=$((failed + 1)); }
summary() { echo "$passed passed, $failed failed"; }
alive() { [ -n "$1" ] && kill -0 "$1" 2>/dev/null; }

stop_pid() {
	alive "$1" || return 0
	kill -TERM "$1" 2>/dev/null
	_sp_i=0
	while alive "$1" && [ "$_sp_i" -lt "$2" ]; do
		sleep 0.1
		_sp_i=$((_sp_i + 1))
	done
	if alive "$1"; then
		kill -KILL "$1" 2>/dev/null
		return 1
	fi
	return 0
}

suite_relay_binary() {
	if [ -z "${XTRUNKD:-}" ] || [ ! -f "$XTRUNKD" ] || [ ! -x "$XTRUNKD" ]; then
		fail relay-binary "relay binary '${XTRUNKD:-}' missing or not executable; usage: $1"
		summary
		return 1
	fi
	XTRUNKD=$(cd "$(dirname "$XTRUNKD")" && pwd)/$(basename "$XTRUNKD")
}

suite_certtool() {
	command -v certtool >/dev/null && return 0
	fail pki "certtool missing (apt-get install gnutls-bin)"
	summary
	return 1
}
