#!/bin/sh
# run_tsan.sh TEST... — runs the named integration tests against the
# ThreadSanitizer broker (`make tsan`) and fails a test whose broker (or
# plexusctl) wrote a race report, however the broker ended: each test gets
# its own TSan log_path, so a report from a broker that the test killed, or
# stopped without checking its exit status, still counts.
set -u
cd "$(dirname "$0")"
: "${PLEXUS_BIN:?set PLEXUS_BIN to the ThreadSanitizer broker binary}"
export PLEXUS_BIN
PY=/usr/bin/python3
logs=$(mktemp -d /tmp/plexus-tsan-XXXXXX)
trap 'rm -rf "$logs"' EXIT

pass=0
fail=0
failed=""
for t in "$@"; do
    d="$logs/$t"
    mkdir -p "$d"
    start=$(date +%s)
    if out=$(TSAN_OPTIONS="${TSAN_OPTIONS:-} log_path=$d/tsan" $PY "$t" 2>&1); then ok=1; else ok=0; fi
    reports=$(ls "$d" 2>/dev/null)
    if [ -n "$reports" ]; then
        ok=0
        out="$out
ThreadSanitizer reports:
$(cat "$d"/*)"
    fi
    secs=$(($(date +%s) - start))
    if [ "$ok" = 1 ]; then
        pass=$((pass + 1))
        echo "PASS $t (${secs}s)"
    else
        fail=$((fail + 1))
        failed="$failed $t"
        echo "FAIL $t (${secs}s)"
        echo "$out" | sed 's/^/    /'
    fi
done
echo "tsan: $pass passed, $fail failed${failed:+ ($failed )}"
[ "$fail" -eq 0 ]
