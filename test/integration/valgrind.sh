#!/bin/sh
# An integration suite again, with the relay under valgrind (memcheck):
# passes only if the cases pass, valgrind reports no error and no
# definitely or indirectly lost memory when the relay exits on SIGTERM.
#
#   sh test/integration/valgrind.sh XTRUNKD            # run.sh: real Prosody leaves
#   sh test/integration/valgrind.sh XTRUNKD protocol   # protocol.sh: the adversarial cases
#   sh test/integration/valgrind.sh XTRUNKD policy     # policy.sh: policies, labels, audit
set -u
here=$(cd "$(dirname "$0")" && pwd)
vg=$(mktemp -d /tmp/xtrunk-vg.XXXXXX) || exit 1
trap 'rm -rf "$vg"' EXIT
command -v valgrind >/dev/null || { echo "FAIL valgrind: not installed"; echo "0 passed, 1 failed"; exit 1; }
export XTRUNKD_WRAPPER="valgrind --log-file=$vg/vg.%p.log --leak-check=full \
--show-leak-kinds=definite,indirect --errors-for-leak-kinds=definite,indirect \
--track-fds=no --num-callers=30"
if [ "${2:-run}" = protocol ]; then
	bash "$here/protocol.sh" "$1"
	rc=$?
elif [ "${2:-run}" = policy ]; then
	LAB_CLIENT_TIMEOUT=${LAB_CLIENT_TIMEOUT:-40} sh "$here/policy.sh" "$1"
	rc=$?
else
	# valgrind makes TLS handshakes slow: give the clients more time
	LAB_CLIENT_TIMEOUT=${LAB_CLIENT_TIMEOUT:-40} sh "$here/run.sh" "$1"
	rc=$?
fi
logs=$(ls "$vg"/vg.*.log 2>/dev/null)
if [ -z "$logs" ]; then
	echo "FAIL valgrind-clean: no valgrind log (did the relay start under valgrind?)"
	echo "0 passed, 1 failed"
	exit 1
fi
# The summary is written only when the relay exits normally (SIGTERM); a
# relay that had to be killed leaves none and fails here.
if ! grep -q "ERROR SUMMARY: 0 errors from 0 contexts" $logs; then
	echo "FAIL valgrind-clean: valgrind reported (or the relay did not exit cleanly):"
	grep -v "^==[0-9]*== *$" $logs | tail -n 80
	echo "0 passed, 1 failed"
	exit 1
fi
echo "ok valgrind-clean (no memory errors, no leaks)"
echo "1 passed, 0 failed"
exit $rc
