#!/bin/sh
# Run each Check unit binary; fail if any fails. Check prints its own summary.
set -u
fail=0
for t in "$@"; do
	echo "== $t"
	CK_DEFAULT_TIMEOUT=60 "$t" || fail=1
done
exit $fail
