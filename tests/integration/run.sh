#!/bin/sh
# run.sh — runs every numbered integration test (NN-feature-case.*) against
# the real broker binary ($PLEXUS_BIN) and prints a summary. Python tests run
# with Debian's /usr/bin/python3 (python3-qpid-proton lives there).
set -u
cd "$(dirname "$0")"
: "${PLEXUS_BIN:?set PLEXUS_BIN to the broker binary}"
export PLEXUS_BIN
PY=/usr/bin/python3
pass=0
fail=0
failed=""
for t in [0-9][0-9]-*; do
    case "$t" in
    *.py) cmd="$PY $t" ;;
    *.sh) cmd="sh $t" ;;
    *.js) cmd="node $t" ;;
    *) continue ;;
    esac
    if out=$($cmd 2>&1); then
        pass=$((pass + 1))
        echo "PASS $t"
    else
        fail=$((fail + 1))
        failed="$failed $t"
        echo "FAIL $t"
        echo "$out" | sed 's/^/    /'
    fi
done
echo "integration: $pass passed, $fail failed${failed:+ ($failed )}"
[ "$fail" -eq 0 ]
